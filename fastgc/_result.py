"""Result: analytic against numeric for every checked item, per block and overall.

The metric is the exercise's relative difference ``||g - a|| / (||g|| + ||a||)`` (g: the
analytic gradient, a: the numeric one), overall and per parameter block. A block passes when
``||g - a|| <= threshold (||g|| + ||a||) + SAFETY * ||error||``: within the relative threshold
plus ``SAFETY`` times the estimated numerical error of ``a`` (a block whose gradient is tiny
cannot reach a relative threshold, but its discrepancy is then explained by noise).
The check passes when every block passes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np

from ._diagnosis import diagnose

# How many times the estimated numerical error a discrepancy may be and still count as noise.
SAFETY = 10.0


def block_passes(g: np.ndarray, a: np.ndarray, noise: float, threshold: float) -> bool:
    """``||g - a|| <= threshold (||g|| + ||a||) + SAFETY * noise``: the block's discrepancy is
    within the relative threshold plus what the numerical error explains. The same sum as each
    entry's tolerance, so a failing block always has a discrepancy beyond noise."""
    gap = np.linalg.norm(g - a)
    return bool(gap <= threshold * (np.linalg.norm(g) + np.linalg.norm(a)) + SAFETY * noise)


def relative_difference(g: np.ndarray, a: np.ndarray) -> float:
    """The exercise's ``||g - a|| / (||g|| + ||a||)``; 0 when both are zero."""
    numerator = np.linalg.norm(g - a)
    denominator = np.linalg.norm(g) + np.linalg.norm(a)
    return float(numerator / denominator) if denominator > 0 else 0.0


@dataclass
class Entry:
    """One checked coordinate: ``name`` (``"W2[1, 3]"``), ``analytic``, ``numeric``,
    ``abs_error`` = |analytic - numeric|, ``rel_error`` = abs_error / (|analytic| + |numeric|),
    and ``noise``, the estimated numerical error of ``numeric``."""

    name: str
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    noise: float

    def __str__(self):
        return (f"{self.name}: analytic {self.analytic:.10g}, numeric {self.numeric:.10g}, "
                f"abs error {self.abs_error:.3g}, rel error {self.rel_error:.3g}")


@dataclass
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
        Largest |analytic - numeric| in the block.
    noise : float
        Norm of the estimated numerical error of the block's numeric gradient.
    diagnosis : str
        ``"ok"``, or what is wrong ("dW2 is 2 x the numeric gradient", rows, entries).
    localisation_nfev : int
        Cost evaluations spent localising the wrong entries (``directions`` mode).
    kinks : int
        Checked coordinates whose step crosses a kink (judged by one-sided differences).
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


@dataclass
class CheckResult:
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
        The scheme (``"central"``, ...).
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
    threshold_rule : str
        How the verdict's tolerance was set, in words.
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
    threshold_rule: str = ""
    _entries: tuple = field(default=(), repr=False)

    def __bool__(self) -> bool:
        return bool(self.passed)

    def worst(self, k: int = 5) -> list[Entry]:
        """The ``k`` checked coordinates that disagree most, relative to their tolerance."""
        if int(k) < 0:
            raise ValueError(f"k must be >= 0, not {k}")
        if not self._entries:
            return []
        names, g, a, err, score = self._entries
        order = np.argsort(-score, kind="stable")[: int(k)]
        out = []
        for j in order:
            abs_error = abs(g[j] - a[j])
            denom = abs(g[j]) + abs(a[j])
            out.append(Entry(names(j), float(g[j]), float(a[j]), float(abs_error),
                             float(abs_error / denom) if denom else 0.0, float(err[j])))
        return out

    def report(self, color: bool | None = None) -> str:
        """The readable report (``str(result)``); ANSI colour only on a terminal without
        ``NO_COLOR``."""
        if color is None:
            color = _use_color()
        ok = _paint("passed", "32", color) if self.passed else _paint("FAILED", "31", color)
        failing = sum(not b.passed for b in self.blocks.values())
        verdict = (f"{failing} of {len(self.blocks)} blocks fail; " if failing else "")
        lines = [
            f"fastgc check {ok}: {verdict}difference {self.difference:.3e} (threshold "
            f"{self.threshold:.1e})",
            f"  {self.method} differences ({self.step}), engine {self.engine}, "
            f"{self.nfev} cost evaluations, {_seconds(self.seconds)}",
        ]
        if self.threshold_rule:
            lines.append(f"  tolerance: {self.threshold_rule}")
        width = max([5, *(len(n) for n in self.blocks)])  # max(5) alone would raise
        lines.append(f"  {'block':<{width}}  {'checked':>8}  {'difference':>10}  verdict")
        for b in self.blocks.values():
            verdict = (_paint("ok", "32", color) if b.passed
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


def build_result(layout, index, analytic, estimate, threshold, *, nfev, seconds, engine, method,
                 step, ignored_keys=(), notes=(), kinked=None, kink_consistent=None,
                 threshold_rule="") -> CheckResult:
    """Assemble a :class:`CheckResult` from a coordinate-wise estimate.

    ``kinked`` (bool, aligned with ``index``) marks coordinates whose step crosses a kink: they
    are left out of the differences and verdicts, and judged by ``kink_consistent`` (whether the
    analytic value lies within the one-sided differences) instead.
    """
    a, err = estimate.numeric, estimate.error
    g = analytic[index]
    if kinked is None:
        kinked = np.zeros(len(index), dtype=bool)
    consistent = np.ones(len(index), dtype=bool)
    if kink_consistent is not None:
        consistent[kinked] = kink_consistent
    smooth = ~kinked
    abs_err = np.abs(g - a)
    tolerance = threshold * (np.abs(g) + np.abs(a)) + SAFETY * err
    wrong = (abs_err > tolerance) & smooth | ~consistent
    block_of = layout.block_index(index)
    blocks = {}
    for b_i, block in enumerate(layout.blocks):
        sel = np.flatnonzero(block_of == b_i)
        if sel.size == 0:
            continue
        ok = sel[smooth[sel]]
        gb, ab, eb = g[ok], a[ok], err[ok]
        diff = relative_difference(gb, ab)
        noise = float(np.linalg.norm(eb))
        passed = block_passes(gb, ab, noise, threshold) and bool(consistent[sel].all())
        local = index[sel] - block.offset
        if passed:
            diagnosis = "ok"
        elif not consistent[sel].all():
            bad = [block.entry_name(int(i)) for i in local[~consistent[sel]][:5]]
            diagnosis = (f"{int((~consistent[sel]).sum())} entries lie outside the one-sided "
                         f"differences across a kink: {', '.join(bad)}")
        else:
            diagnosis = diagnose(block, g[sel], a[sel], wrong[sel], local)
        blocks[block.name] = BlockResult(block.name, block.shape, int(sel.size), diff,
                                         bool(passed), float(abs_err[ok].max(initial=0.0)),
                                         noise, diagnosis, kinks=int(kinked[sel].sum()))
    numeric_flat = np.full(layout.size, np.nan)
    numeric_flat[index] = a
    notes = list(notes)
    n_kinks = int(kinked.sum())
    if n_kinks:
        names = [layout.coordinate_name(int(i)) for i in index[kinked][:5]]
        more = f" and {n_kinks - 5} more" if n_kinks > 5 else ""
        verdict = ("all consistent" if consistent.all()
                   else f"{int((~consistent).sum())} inconsistent")
        notes.append(f"{n_kinks} coordinate(s) not differentiable within the step (a kink is "
                     f"crossed): {', '.join(names)}{more}; judged against the one-sided "
                     f"differences instead: {verdict}")
    return CheckResult(
        difference=relative_difference(g[smooth], a[smooth]),
        passed=all(b.passed for b in blocks.values()),
        threshold=float(threshold),
        blocks=blocks,
        numeric=layout.unflatten(numeric_flat),
        nfev=int(nfev),
        seconds=float(seconds),
        engine=engine,
        method=method,
        step=step,
        checked=np.asarray(index),
        ignored_keys=list(ignored_keys),
        notes=notes,
        kinks=[layout.coordinate_name(int(i)) for i in index[kinked]],
        threshold_rule=threshold_rule,
        _entries=entries_table(layout, index, analytic, estimate, threshold),
    )


def entries_table(layout, index, analytic, estimate, threshold) -> tuple:
    """The per-coordinate table behind :meth:`CheckResult.worst`: names, analytic, numeric,
    error estimate, and a score (discrepancy over tolerance) to rank by."""
    g, a, err = analytic[index], estimate.numeric, estimate.error
    tolerance = threshold * (np.abs(g) + np.abs(a)) + SAFETY * err
    score = np.abs(g - a) / np.where(tolerance > 0, tolerance, np.finfo(float).tiny)
    return (lambda j: layout.coordinate_name(int(index[j])), g, a, err, score)


def _use_color() -> bool:
    if os.environ.get("NO_COLOR"):  # no-color.org: set and not empty
        return False
    stream = sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def _paint(text: str, code: str, color: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if color else text


def _seconds(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"
