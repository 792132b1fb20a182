"""Result of a second-order check: the Hessian judged block pair by block pair.

The Hessian of parameters with blocks ``W1, b1, ...`` has blocks ``H[A, B] = d grad_A / d B``:
row block ``A`` (which gradient entries) and column block ``B`` (which parameters move). Each
checked pair is judged by the verdict rule of ``fastgc._core.verdict``. Results hold data only (no
closures), so they pickle and compare like :class:`fastgc.CheckResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from fastgc._core.display import Display
from fastgc._core.result import CheckResult, _paint, _same, _seconds, _use_color


def same_result(x, y) -> bool:
    """Equality for result fields, ignoring every nested result's ``seconds``."""
    if isinstance(x, CheckResult) or isinstance(y, CheckResult):
        return x == y
    if hasattr(x, "__dataclass_fields__") and type(x) is type(y):
        return all(same_result(getattr(x, f.name), getattr(y, f.name))
                   for f in fields(x) if f.name != "seconds")
    if isinstance(x, dict) and isinstance(y, dict):
        return list(x) == list(y) and all(same_result(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return (type(x) is type(y) and len(x) == len(y)
                and all(same_result(a, b) for a, b in zip(x, y, strict=True)))
    return _same(x, y)


@dataclass
class PairResult:
    """The check of one Hessian block ``H[row, column]``.

    Attributes
    ----------
    row, column : str
        The row block (gradient entries compared) and the column block (parameters moved).
    count : int
        Items compared: entries of ``H[row, column]`` (columns mode) or entries of
        ``(H v)[row]`` over the directions ``v`` supported on ``column``.
    difference : float
        ``||analytic - numeric|| / (||analytic|| + ||numeric||)`` over the items.
    passed : bool
    max_abs_error : float
        Largest ``|analytic - numeric|``.
    noise : float
        Norm of the estimated numerical error of the numeric items.
    diagnosis : str
        ``"ok"`` or what is wrong (``"H[W1, W2] is 0.5 x the numeric Hessian"``).
    """

    row: str
    column: str
    count: int
    difference: float
    passed: bool
    max_abs_error: float
    noise: float
    diagnosis: str

    @property
    def name(self) -> str:
        """The block's name, ``"H[A, B]"``."""
        return f"H[{self.row}, {self.column}]"


@dataclass
class PropertyResult:
    """A property of the user's Hessian checked without differences (symmetry, linearity).

    Attributes
    ----------
    name : str
        ``"symmetry"`` or ``"linearity"``.
    value : float
        The relative discrepancy measured (``|<u, Hv> - <Hu, v>| / (|u| |Hv| + |Hu| |v|)``,
        ``||H - H^T|| / ||H||``, ...).
    tolerance : float
        The largest value that passes.
    passed : bool
    detail : str
        What was measured, and on failure what it means.
    """

    name: str
    value: float
    tolerance: float
    passed: bool
    detail: str


@dataclass
class HessianResult(Display):
    """What :func:`fastgc.check_hvp` and :func:`fastgc.check_hessian` return.

    Attributes
    ----------
    passed : bool
        True when the gradient (if ``cost=`` was given), every checked block of the Hessian,
        and the symmetry and linearity checks pass.
    failed : tuple of str
        The parts that failed, in the order checked: ``"gradient"``, ``"hessian"``,
        ``"symmetry"``, ``"linearity"``. Empty on a pass.
    message : str
        One line: what passed, or which part failed and what that means.
    difference : float
        The relative difference over every compared item (NaN when the Hessian was not
        compared because the gradient failed).
    threshold : float
        The relative threshold of the verdict.
    pairs : dict of (str, str) to PairResult
        ``result.pairs["W1", "W2"]`` is the check of ``H[W1, W2]``, in row-major block order.
    gradient : CheckResult or None
        The gradient's own check (``cost=`` given), done first.
    symmetry : PropertyResult or None
        ``<u, Hv> = <Hu, v>`` (hvp) or ``||H - H^T|| / ||H||`` (a Hessian matrix).
    linearity : PropertyResult or None
        ``H(a u + b v) = a Hu + b Hv``, ``H 0 = 0`` and the same ``Hv`` twice (hvp and
        LinearOperator only).
    numeric : ndarray or None
        The numeric Hessian over the flattened parameters, in a full check of
        :func:`fastgc.check_hessian` (NaN in unchecked columns with ``subset=``); else None.
    ngev : int
        Gradient evaluations (the noise measurement's included).
    nhvp : int
        Calls of ``hvp`` (or products with ``hess``'s matrix).
    seconds : float
        Wall-clock time.
    kind : str
        ``"hvp"`` or ``"hessian"``.
    mode : str
        ``"directions"``, ``"full"`` (every column) or ``"subset"`` (some columns).
    method : str
        ``"central"``, ``"two-step"`` or ``"richardson"``.
    description : str
        The numeric scheme in words.
    step : str
        The step, in words.
    notes : list of str

    Two results compare equal when every field but ``seconds`` is equal (numbers to the bit).
    """

    passed: bool
    failed: tuple
    message: str
    difference: float
    threshold: float
    pairs: dict
    gradient: CheckResult | None
    symmetry: PropertyResult | None
    linearity: PropertyResult | None
    numeric: np.ndarray | None
    ngev: int
    nhvp: int
    seconds: float
    kind: str
    mode: str
    method: str
    description: str
    step: str
    notes: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.passed)

    def __eq__(self, other) -> bool:
        if not isinstance(other, HessianResult):
            return NotImplemented
        return same_result(self, other)

    __hash__ = None  # mutable, compared by value

    def failing(self) -> list[PairResult]:
        """The failing blocks of the Hessian, in order.

        Returns
        -------
        list of PairResult
            The block pairs that failed, in the order of ``pairs``.
        """
        return [p for p in self.pairs.values() if not p.passed]

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
        title = ("Hessian-vector product" if self.kind == "hvp" else "Hessian")
        ok = _paint("passed", "32", color) if self.passed else _paint("FAILED", "31", color)
        lines = [f"fastgc {title} check {ok}: {self.message}"]
        if self.gradient is not None:
            g = self.gradient
            lines.append(f"  gradient (checked first): {'ok' if g.passed else 'FAILED'}, "
                         f"difference {g.difference:.3e} ({g.mode} check, {g.nfev} cost "
                         "evaluations)")
            if not g.passed:
                lines.extend("    " + line for line in g.report(color=False).splitlines())
        if self.pairs:
            calls = "hvp calls" if self.kind == "hvp" else "calls of hess and products with it"
            lines.append(f"  {self.mode} check, {self.description} ({self.step}), "
                         f"{self.ngev} gradient evaluations, {self.nhvp} {calls}, "
                         f"{_seconds(self.seconds)}; threshold {self.threshold:.1e}")
            width = max([5, *(len(p.name) for p in self.pairs.values())])
            lines.append(f"  {'block':<{width}}  {'checked':>8}  {'difference':>10}  verdict")
            for p in self.pairs.values():
                verdict = (_paint("ok", "32", color) if p.passed
                           else _paint("FAIL", "31", color) + "  " + p.diagnosis)
                lines.append(f"  {p.name:<{width}}  {p.count:>8}  {p.difference:>10.2e}  "
                             f"{verdict}")
        for prop in (self.symmetry, self.linearity):
            if prop is not None:
                verdict = (_paint("ok", "32", color) if prop.passed
                           else _paint("FAIL", "31", color))
                lines.append(f"  {prop.name}: {verdict}  {prop.detail} ({prop.value:.2e}, "
                             f"tolerance {prop.tolerance:.1e})")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()
