"""Result: what a check found, per block and overall, and its report.

The metric is the exercise's relative difference ``||g - a|| / (||g|| + ||a||)`` (g: the
analytic gradient, a: the numeric one), overall and per parameter block; the verdict is the
rule of ``fastgc._core.verdict``. Results hold data only (no closures), so they pickle and compare.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field, fields

import numpy as np

from fastgc._core.display import Display


@dataclass(frozen=True)
class Entry:
    """One checked coordinate, as :meth:`CheckResult.worst` lists it.

    ``name`` (``"W2[1, 3]"``), ``analytic``, ``numeric``,
    ``abs_error = |analytic - numeric|``, ``rel_error = abs_error / (|analytic| + |numeric|)``,
    and ``noise``, the estimated numerical error of ``numeric``.
    """

    name: str
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    noise: float

    def __str__(self):
        return (f"{self.name}: analytic {self.analytic:.10g}, numeric {self.numeric:.10g}, "
                f"abs error {self.abs_error:.3g}, rel error {self.rel_error:.3g}")


@dataclass(frozen=True)
class BlockResult:
    """The check of one parameter block.

    Attributes
    ----------
    name : str
        The block's name (``"W2"``).
    shape : tuple
        The block's shape.
    count : int
        Items checked in the block (coordinates, or directions in ``directions`` mode).
    difference : float
        The relative difference over the block's checked items.
    passed : bool
        Whether the block passes (see the module notes).
    max_abs_error : float
        Largest ``|analytic - numeric|`` in the block.
    noise : float
        Norm of the estimated numerical error of the block's numeric gradient.
    diagnosis : str
        ``"ok"``, or what is wrong ("dW2 is 2 x the numeric gradient", rows, entries).
    localisation_nfev : int
        Cost evaluations spent localising the wrong entries (``directions`` mode).
    kinks : int
        Checked coordinates whose step crosses a kink (judged by one-sided differences).
    inconclusive : int
        Items with no verdict (``passed`` is False, but nothing was shown wrong): kinks at the
        point whose analytic value lies outside the one-sided slopes, or every item when the
        cost's noise allows no threshold that a wrong gradient could exceed. 0 otherwise.
    tolerance : float
        The block's effective relative tolerance: the largest ``difference`` that passes,
        ``threshold`` plus the error term (10 x the error norm over ``||g|| + ||a||``); inf
        where both gradients are zero, NaN where not computed.
    """

    name: str
    shape: tuple
    count: int
    difference: float
    passed: bool
    max_abs_error: float
    noise: float
    diagnosis: str
    localisation_nfev: int = 0
    kinks: int = 0
    inconclusive: int = 0
    tolerance: float = float("nan")


@dataclass
class CheckResult(Display):
    """What :func:`fastgc.check` returns.

    Attributes
    ----------
    difference : float
        The exercise's relative difference over every checked item.
    passed : bool
        True when every block passes.
    threshold : float
        The relative-difference threshold used for the verdict.
    blocks : dict of str to BlockResult
        Per-block results, in parameter order.
    numeric : structure
        The numeric gradient in the user's structure (NaN where a coordinate was not checked).
    nfev : int
        Cost evaluations performed (perturbed points plus the base point).
    seconds : float
        Wall-clock time of the check.
    engine : str
        The engine that evaluated the cost (``"loop"``, ``"stacked"``, ``"numba"``,
        ``"network"``).
    method : str
        The scheme that estimated the derivatives: ``"central"``, ``"richardson"``,
        ``"complex"``, or ``"two-step"`` (directions mode's extrapolated central differences).
    description : str
        The scheme in words, as the report shows it.
    step : str
        The step(s) used, in words.
    checked : ndarray of int
        Flat indices of the checked coordinates (all of them for a full check).
    ignored_keys : list of str
        Gradient keys recognised as backprop intermediates (``"dZ1"``) and ignored.
    notes : list of str
        What the report should say besides the numbers (kinks, coverage).
    kinks : list of str
        Coordinates not differentiable within the step (a ReLU kink crossed), judged against
        one-sided differences instead of the threshold.
    inconclusive : list of str
        Blocks with no verdict (their diagnosis says why and what would give one); such a
        block does not pass, so neither does the check, but the report says INCONCLUSIVE for
        a check where nothing failed.
    threshold_rule : str
        How the verdict's tolerance was set, in words.
    mode : str
        Which items were checked: ``"full"`` (every coordinate), ``"subset"`` or
        ``"directions"``.
    path : str
        How the engine ran, where it has more than one way: ``"compiled"`` (numba kernels)
        or ``"numpy"`` (the network engine's kernels interpreted, no JIT: a small check on a
        machine that has not compiled them), ``"compiled+numpy"`` for both; ``""`` for an
        engine with one way. Both paths compute the same bits.

    Two results compare equal when every field but ``seconds`` is equal (numbers to the bit).
    """

    difference: float
    passed: bool
    threshold: float
    blocks: dict
    numeric: object
    nfev: int
    seconds: float
    engine: str
    method: str
    step: str
    checked: np.ndarray
    ignored_keys: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    kinks: list = field(default_factory=list)
    inconclusive: list = field(default_factory=list)
    threshold_rule: str = ""
    mode: str = "full"
    description: str = ""
    path: str = ""
    _entries: EntryTable | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return bool(self.passed)

    def __eq__(self, other) -> bool:
        """Equal when every field but ``seconds`` is: the same verdicts, numbers (to the
        bit; NaN equals NaN), counts and words."""
        if not isinstance(other, CheckResult):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name))
                   for f in fields(self) if f.name != "seconds")

    __hash__ = None  # mutable, compared by value

    def with_failures(self, failures: dict) -> CheckResult:
        """A new result in which each block named in ``failures`` fails.

        For a failure the relative difference cannot show (a backward that is not zero for a
        zero cotangent, two calls that differ): the block's numbers stay what was measured.
        This result is left as it is.

        Parameters
        ----------
        failures : dict of str to str
            Block name to the diagnosis the failing block shows.

        Returns
        -------
        CheckResult
            The same fields, with those blocks failing; ``passed`` follows the blocks.
        """
        blocks = {name: dataclasses.replace(b, passed=False, diagnosis=failures[name])
                  if name in failures else b for name, b in self.blocks.items()}
        return dataclasses.replace(self, blocks=blocks,
                                   passed=all(b.passed for b in blocks.values()))

    def worst(self, k: int = 5) -> list[Entry]:
        """The ``k`` checked coordinates that disagree most, relative to their tolerance.

        Parameters
        ----------
        k : int, optional
            How many entries (default 5); fewer when fewer coordinates were checked.

        Returns
        -------
        list of Entry
            Worst first: each with its ``name`` (``"W2[1, 3]"``), ``analytic`` and ``numeric``
            values, absolute and relative errors and the estimate's ``noise``.
        """
        if int(k) < 0:
            raise ValueError(f"k must be >= 0, not {k}")
        t = self._entries
        if t is None or len(t.index) == 0:
            return []
        order = np.argsort(-t.score, kind="stable")[: int(k)]
        out = []
        for j in order:
            abs_error = abs(t.g[j] - t.a[j])
            denom = abs(t.g[j]) + abs(t.a[j])
            out.append(Entry(t.layout.coordinate_name(int(t.index[j])), float(t.g[j]),
                             float(t.a[j]), float(abs_error),
                             float(abs_error / denom) if denom else 0.0, float(t.error[j])))
        return out

    def report(self, color: bool | None = None) -> str:
        """The readable report, ``str(result)``.

        Parameters
        ----------
        color : bool, optional
            ANSI colours for passed and FAILED; by default only on a terminal without
            ``NO_COLOR`` set.

        Returns
        -------
        str
            The report, one line per block (or section), as ``print(result)`` shows it.
        """
        if color is None:
            color = _use_color()
        failing = sum(not b.passed and not b.inconclusive for b in self.blocks.values())
        undecided = sum(bool(b.inconclusive) for b in self.blocks.values())
        ok = (_paint("passed", "32", color) if self.passed
              else _paint("FAILED", "31", color) if failing
              else _paint("INCONCLUSIVE", "33", color))
        verdict = (f"{failing} of {len(self.blocks)} blocks fail; " if failing else "")
        if undecided:
            verdict += f"{undecided} of {len(self.blocks)} blocks inconclusive; "
        # The error term decides where it adds more than the threshold itself: say how much
        tolerances = [b.tolerance for b in self.blocks.values() if np.isfinite(b.tolerance)]
        allowed = (f" + error term, up to {max(tolerances):.1e} relative"
                   if tolerances and max(tolerances) > 2 * self.threshold else "")
        kinked = (f"; {len(self.kinks)} kinked coordinates judged by their one-sided slopes, "
                  "not in the difference" if self.kinks else "")
        lines = [
            f"fastgc check {ok}: {verdict}difference {self.difference:.3e} (threshold "
            f"{self.threshold:.1e}{allowed}){kinked}",
            f"  {self.mode} check, {self.description} ({self.step}), engine "
            f"{self.engine}{_path_words(self.path)}, "
            f"{self.nfev} cost evaluations, {_seconds(self.seconds)}",
        ]
        if self.threshold_rule:
            lines.append(f"  tolerance: {self.threshold_rule}")
        width = max([5, *(len(n) for n in self.blocks)])  # max(5) alone would raise
        lines.append(f"  {'block':<{width}}  {'checked':>8}  {'difference':>10}  verdict")
        for b in self.blocks.values():
            verdict = (_paint("ok", "32", color) if b.passed
                       else _paint("INCONCLUSIVE", "33", color) + "  " + b.diagnosis
                       if b.inconclusive
                       else _paint("FAIL", "31", color) + "  " + b.diagnosis)
            lines.append(f"  {b.name:<{width}}  {b.count:>8}  {b.difference:>10.2e}  {verdict}")
        if not self.passed:
            worst = self.worst(3)
            if worst:
                lines.append("  worst entries:")
                lines.extend(f"    {e}" for e in worst)
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.ignored_keys:
            lines.append(f"  ignored gradient keys (backprop intermediates): "
                         f"{', '.join(self.ignored_keys)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


@dataclass
class EntryTable:
    """The checked coordinates behind :meth:`CheckResult.worst`: flat ``index``, analytic
    ``g``, numeric ``a``, error estimate ``error`` and ``score`` (discrepancy over tolerance,
    to rank by). Names are made from ``layout`` only for the entries shown."""

    layout: object
    index: np.ndarray
    g: np.ndarray
    a: np.ndarray
    error: np.ndarray
    score: np.ndarray


def nonzero_failures(layout, marks) -> dict:
    """``{block name: diagnosis}`` for :meth:`CheckResult.with_failures`: each ``(flat values,
    reason)`` of ``marks`` fails the blocks where its values are not zero, naming the largest
    entry; a later mark's reason replaces an earlier one's."""
    failures = {}
    for flat, reason in marks:
        for b in layout.blocks:
            part = flat[b.offset:b.stop]
            if np.any(part != 0):
                k = int(np.argmax(np.abs(part)))
                failures[b.name] = (f"{reason} (max {np.abs(part).max():.3g} at "
                                    f"{b.entry_name(k)})")
    return failures


def _use_color() -> bool:
    if os.environ.get("NO_COLOR"):  # no-color.org: set and not empty
        return False
    stream = sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def _paint(text: str, code: str, color: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if color else text


def _seconds(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _same(x, y) -> bool:
    """Structural equality for result fields: arrays bit for bit (NaN equal to NaN)."""
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype
                and np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
    if isinstance(x, dict) or isinstance(y, dict):
        return (isinstance(x, dict) and isinstance(y, dict) and list(x) == list(y)
                and all(_same(x[k], y[k]) for k in x))
    if isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)):
        return (type(x) is type(y) and len(x) == len(y)
                and all(_same(a, b) for a, b in zip(x, y, strict=True)))
    if hasattr(x, "__dataclass_fields__") and type(x) is type(y) and not isinstance(x, CheckResult):
        return all(_same(getattr(x, f.name), getattr(y, f.name)) for f in fields(x))
    if type(x) is type(y) and hasattr(x, "__dict__") and not callable(x):
        return _same(vars(x), vars(y))  # plain data objects (the layout)
    if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
        return True  # NaN
    return x == y


def _path_words(path: str) -> str:
    """The report's words for ``CheckResult.path`` (nothing for the usual compiled path)."""
    if "numpy" not in path:
        return ""
    return " (numpy, no JIT)" if path == "numpy" else " (numpy and compiled)"

