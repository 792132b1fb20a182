"""Front end: ``fastgc.taylor_test``, the adjoint codes' gradient check.

Along a direction ``h`` the remainder of the Taylor expansion

    r1(eps) = |J(theta + eps h) - J(theta) - eps dJ.h|                     ~ eps^2
    r2(eps) = |J(theta + eps h) - J(theta) - eps dJ.h - eps^2/2 h.H h|     ~ eps^3

shrinks at rate 2 (3 with the Hessian term) when ``dJ`` (and ``H h``) are right, and at rate 1
(2) when they are wrong along ``h``. It needs one cost evaluation per step, which is what makes
it the check of choice when each cost is a PDE solve (dolfin-adjoint/pyadjoint, tlm_adjoint).

Its weak spot is the range of steps: a remainder that has sunk to the cost's noise no longer
shrinks, and the rate computed there is garbage (pyadjoint halves 1e-2 four times, whatever the
noise). Here the cost's noise is measured first (Moré and Wild's difference table, as
``fastgc._core.noise`` does for :func:`fastgc.check`), the ladder halves from pyadjoint's start
until the remainder nears that noise floor, and the rate is fitted only where the remainder is
far above it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from fastgc._core.display import Display
from fastgc._core.layout import Layout
from fastgc._core.noise import LOW_PRECISION, _ecnoise
from fastgc._core.result import _paint, _use_color
from fastgc._core.second_order_result import same_result
from fastgc._core.validate import bool_flag, integer, random_generator
from fastgc._errors import CostError

__all__ = ["TaylorResult", "taylor_test"]

_EPS = float(np.finfo(np.float64).eps)
# pyadjoint's first step, relative to max(1, |theta|_inf) and to the direction's largest entry.
FIRST_STEP = 1e-2
# The noise floor of a remainder: this many standard deviations of the difference of two
# noisy costs.
_FLOOR_SIGMAS = 3.0
# Halving stops once the remainder is within this factor of the floor ...
_NEAR = 10.0
# ... and the rate is fitted on the steps whose remainder is at least this far above it, where
# the noise (~1.4 sigma) moves the remainder by about 1% (the rate by ~0.02 per halving).
_ABOVE = 30.0
# A ladder whose remainder has shrunk this many halvings in a row at a rate at least 0.5 below
# the expected one has shown its rate: it stops there instead of halving down to the floor.
_STEADY_SLOW = 6
# Fewest steps to fit a rate on (two consecutive rates).
_MIN_WINDOW = 3
# A rate this far below the expected one fails.
RATE_TOLERANCE = 0.2
_DEFAULT_HALVINGS = 30
# The noise table's spacing (relative, as fastgc._core.noise's) and points per side.
_TABLE_STEP = 1e-5
_SIDE = 3


@dataclass
class TaylorResult(Display):
    """What :func:`fastgc.taylor_test` returns.

    Attributes
    ----------
    passed : bool
        The fitted rate reaches the expected rate (within 0.2), also on the smallest steps of
        the window; or the remainder is at the float64 noise floor from the first step (the
        cost equals its expansion to rounding). With ``per_block=True``, every block's test
        passes too.
    message : str
        Why it passed or failed, in one line.
    order : int
        1 (gradient only) or 2 (with ``hvp``).
    expected_rate : float
        ``order + 1``.
    rate : float
        The rate fitted (least squares on log r vs log eps) over the window; NaN when no
        window was found.
    tail_rate : float
        The rate over the window's last 3 steps (where a small error shows first); NaN without
        a window.
    steps : ndarray
        The steps ``eps``, halving from ``1e-2 x max(1, |theta|_inf) / |h|_inf``.
    remainders : ndarray
        The remainder at each step.
    rates : ndarray
        ``log2(r_k / r_{k+1})`` between consecutive steps (one fewer than ``steps``).
    window : tuple of int
        ``(start, stop)``: the steps the rate was fitted on, ``steps[start:stop]`` (empty
        when no rate was fitted).
    noise : float
        The measured standard deviation of the cost's noise near ``params`` (along ``h``).
    noise_floor : float
        The remainder's noise floor, ``3 (sqrt(2) noise + eps_mach |J|)``.
    derivative : float
        ``dJ.h``, computed by fastgc from ``grad``.
    curvature : float
        ``h.H h`` from ``hvp`` (NaN without it).
    nfev : int
        Cost evaluations (the noise measurement's 8 included).
    blocks : dict of str to TaylorResult
        With ``per_block=True``: one test per block, along ``h`` restricted to it.
    seconds : float

    Two results compare equal when every field but ``seconds`` is equal.
    """

    passed: bool
    message: str
    order: int
    expected_rate: float
    rate: float
    tail_rate: float
    steps: np.ndarray
    remainders: np.ndarray
    rates: np.ndarray
    window: tuple
    noise: float
    noise_floor: float
    derivative: float
    curvature: float
    nfev: int
    blocks: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.passed)

    def __eq__(self, other) -> bool:
        if not isinstance(other, TaylorResult):
            return NotImplemented
        return same_result(self, other)

    __hash__ = None

    def report(self, color: bool | None = None) -> str:
        """The readable report, ``str(result)``: the ladder, with the fitted window marked.

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
        ok = _paint("passed", "32", color) if self.passed else _paint("FAILED", "31", color)
        lines = [f"fastgc Taylor test {ok} (order {self.order}, expected rate "
                 f"{self.expected_rate:g}): {self.message}",
                 f"  dJ.h = {self.derivative:.10g}"
                 + (f", h.Hh = {self.curvature:.10g}" if self.order == 2 else "")
                 + f"; cost noise {self.noise:.2e}, remainder floor {self.noise_floor:.2e}; "
                 f"{self.nfev} cost evaluations",
                 f"  {'step':>10}  {'remainder':>10}  {'rate':>6}"]
        start, stop = self.window
        for k, (eps, r) in enumerate(zip(self.steps, self.remainders, strict=True)):
            rate = f"{self.rates[k - 1]:6.2f}" if k else " " * 6
            mark = "  fitted" if start <= k < stop else ""
            lines.append(f"  {eps:>10.3e}  {r:>10.3e}  {rate}{mark}")
        for name, b in self.blocks.items():
            verdict = _paint("ok", "32", color) if b.passed else _paint("FAIL", "31", color)
            lines.append(f"  block {name}: {verdict}  rate {b.rate:.2f}: {b.message}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


class _Cost:
    """``cost(params, *args)`` on flat vectors, as a float, counting evaluations."""

    def __init__(self, cost, layout, args):
        self.cost, self.layout, self.args, self.nfev = cost, layout, args, 0

    def __call__(self, x: np.ndarray) -> float:
        self.nfev += 1
        value = self.cost(self.layout.unflatten(np.array(x, dtype=np.float64)), *self.args)
        if isinstance(value, tuple) and value:
            value = value[0]  # the exercise's (cost, cache)
        array = np.asarray(value)
        if array.size != 1 or not np.isrealobj(array) or array.dtype.kind not in "fiu":
            raise CostError(f"cost must return a real scalar, not {type(value).__name__} of "
                            f"shape {array.shape}")
        out = float(array.reshape(()))
        if not math.isfinite(out):
            raise CostError(f"cost returned {out} at a point of the Taylor test")
        return out


def _noise(J, theta, h, J0) -> tuple[float, int]:
    """The cost's noise along ``h`` (Moré and Wild's table) and the evaluations it took."""
    again = J(theta)
    if abs(again - J0) > 1e-10 * max(abs(J0), np.finfo(np.float64).tiny):
        raise CostError(f"the cost is not deterministic: J(params) evaluated twice gave "
                        f"{J0:.17g} and {again:.17g}; a Taylor test needs the same function "
                        "at every call (seed its randomness)")
    spacing = _TABLE_STEP * max(1.0, float(np.max(np.abs(theta)))) / float(np.max(np.abs(h)))

    def table(s):
        values = [J(theta + i * s * h) if i else J0 for i in range(-_SIDE, _SIDE + 1)]
        return _ecnoise(np.array(values) - J0)

    sigma = table(spacing)
    n = 1 + 2 * _SIDE
    if sigma > LOW_PRECISION * max(abs(J0), np.finfo(np.float64).tiny):
        # noise, or a kink crossed by the table: a finer table tells (noise stays)
        fine = table(spacing / 10)
        n += 2 * _SIDE
        # A kink's table shrinks with the spacing (to 1/10), noise's does not; a 7-point
        # estimate of noise scatters by a factor ~3 either way, so only a drop beyond 6 counts
        # as a kink, and noise is taken at the larger estimate (a floor set too low would let
        # the fit run into the noise).
        sigma = max(sigma, fine) if fine > sigma / 6 else 0.0
    return max(sigma, abs(again - J0)), n


def _ladder(J, theta, h, J0, dJ, d2, sigma, max_halvings) -> dict:
    """Halve from the first step until the remainder nears the noise floor; fit the rate."""
    order = 1 if d2 is None else 2
    expected = float(order + 1)
    first = FIRST_STEP * max(1.0, float(np.max(np.abs(theta)))) / float(np.max(np.abs(h)))
    floor0 = _FLOOR_SIGMAS * (math.sqrt(2.0) * sigma + _EPS * abs(J0))
    steps, remainders, floors = [], [], []
    for k in range(max_halvings + 1):
        eps = first / 2.0 ** k
        model = J0 + eps * dJ + (0.5 * eps * eps * d2 if order == 2 else 0.0)
        r = abs(J(theta + eps * h) - model)
        floor = floor0 + _FLOOR_SIGMAS * _EPS * (abs(eps * dJ) + (
            abs(0.5 * eps * eps * d2) if order == 2 else 0.0))
        steps.append(eps)
        remainders.append(r)
        floors.append(floor)
        if r <= _NEAR * floor:
            break
        if len(remainders) > _STEADY_SLOW and r > _ABOVE * floor:
            recent = np.log2(np.array(remainders[-_STEADY_SLOW - 1:-1]) /
                             np.array(remainders[-_STEADY_SLOW:]))
            if np.all(recent <= expected - 0.5) and np.ptp(recent) < 0.1:
                break  # a steady slower rate: failing, and more steps would not change it
    steps, remainders, floors = np.array(steps), np.array(remainders), np.array(floors)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.log2(remainders[:-1] / remainders[1:])
    above = remainders > _ABOVE * floors
    stop = int(np.argmin(above)) if not above.all() else len(above)
    start, end = _steady_window(rates, stop)
    out = dict(order=order, expected_rate=expected, steps=steps, remainders=remainders,
               rates=rates, window=(start, end), noise=float(sigma), noise_floor=float(floor0),
               rate=math.nan, tail_rate=math.nan)
    low_precision = sigma > LOW_PRECISION * max(abs(J0), np.finfo(np.float64).tiny)
    if stop < _MIN_WINDOW:
        if stop == 0 and not low_precision:
            out.update(passed=True, message=(
                f"the remainder is at the float64 noise floor from the first step "
                f"({remainders[0]:.1e}): J equals its order-{order} expansion along h to "
                "rounding (no rate to fit)"))
            return out
        halvings = len(steps) - 1
        out.update(passed=False, window=(0, 0), message=(
            f"the remainder reached the noise floor after {halvings} halving"
            f"{'s' if halvings != 1 else ''} (floor {floor0:.1e}, cost noise {sigma:.1e}, "
            f"{sigma / max(abs(J0), 1e-300):.0e} relative): the cost is too noisy for a "
            f"Taylor test at these steps (no rate can be fitted on fewer than {_MIN_WINDOW} "
            "steps well above the floor)"))
        return out
    if end - start < _MIN_WINDOW:
        shown = ", ".join(f"{x:.2f}" for x in rates[:stop - 1])
        out.update(passed=False, window=(0, 0), message=(
            f"the rates do not settle on the {stop} steps well above the noise floor "
            f"({shown}): the remainder does not shrink like a power of the step (a kink or a "
            "discontinuity along h?)"))
        return out
    stop = end
    x, y = np.log(steps[start:stop]), np.log(remainders[start:stop])
    rate = float(np.polyfit(x, y, 1)[0])
    tail = float(np.polyfit(x[-_MIN_WINDOW:], y[-_MIN_WINDOW:], 1)[0])
    out.update(rate=rate, tail_rate=tail)
    worst = min(rate, tail)
    if worst >= expected - RATE_TOLERANCE:
        out.update(passed=True, message=(
            f"rate {rate:.2f} over {stop - start} steps above the noise floor (expected "
            f"{expected:g})"))
        return out
    # what the slow rate says: r ~ eps * |delta| (gradient) or eps^2 / 2 |delta| (Hessian)
    eps_t, r_t = steps[stop - 1], remainders[stop - 1]
    shown = tail if abs(tail - round(tail)) <= abs(rate - round(rate)) else rate
    if abs(tail - 1.0) <= 0.3:
        delta = r_t / eps_t
        why = (f"the gradient is wrong along this direction: dJ.h = {dJ:.6g} is off by about "
               f"{delta:.2g} ({delta / max(abs(dJ), 1e-300):.1e} relative)")
    elif order == 2 and abs(tail - 2.0) <= 0.3:
        delta = 2 * r_t / eps_t ** 2
        why = (f"the Hessian term is wrong along this direction: h.Hh = {d2:.6g} is off by "
               f"about {delta:.2g} ({delta / max(abs(d2), 1e-300):.1e} relative)")
    else:
        why = ("the remainder does not shrink like a power of the step (a kink or a "
               "discontinuity along h, or steps still too large?)")
    out.update(passed=False, message=f"rate {shown:.1f} (expected {expected:g}): {why}")
    return out


def _steady_window(rates, stop) -> tuple[int, int]:
    """The steps ``[start, end)`` of ``steps[:stop]`` to fit the rate on: the longest run whose
    rates are positive and change by at most 1 from one halving to the next (ties: the larger
    steps, farther from the noise).

    A remainder shrinks smoothly at its leading power once the step is small enough, and
    stops shrinking smoothly in noise the table under-measured (a rate below 0, a jump of
    more than 1: a wrong gradient turns the rate from 2 to 1 over several halvings, never in
    one). Between the two, a wrong gradient's ``eps |delta|`` and the ``eps^2`` term can
    cancel at one step, a dip with wild rates around it; the run after it is the one to fit.
    """
    best, run = (0, min(stop, 1)), None
    for k in range(stop - 1):  # rates[k] joins steps k and k + 1
        if rates[k] < 0 or not np.isfinite(rates[k]):
            run = None
            continue
        if run is None or abs(rates[k] - rates[k - 1]) > 1.0:
            run = [k, k + 2]
        else:
            run[1] = k + 2
        if run[1] - run[0] > best[1] - best[0]:
            best = (run[0], run[1])
    return best


def taylor_test(cost, grad, params, *args, hvp=None, direction=None, per_block=False,
                seed=0, exclude=None, max_halvings=_DEFAULT_HALVINGS):
    """The Taylor test of ``grad`` (and ``hvp``) along a direction, on a noise-aware ladder.

    Parameters
    ----------
    cost : callable
        ``cost(params, *args)`` returning a float (or a tuple whose first item is one).
    grad : callable
        ``grad(params, *args)`` returning the gradient in the structure of ``params``. The
        directional derivative ``dJ.h`` is computed by fastgc from it (never passed in).
    params : dict, list, tuple or ndarray, or any nesting of them
        The point. Never modified; every call gets a fresh float64 copy.
    *args
        Passed to ``cost``, ``grad`` and ``hvp``.
    hvp : callable, optional
        ``hvp(params, v, *args)`` returning ``H v`` in the structure of ``params``: the
        second-order test (expected rate 3).
    direction : structure like ``params``, optional
        The direction ``h``. Default: seeded standard normal entries, scaled to
        ``|h|_inf = 1``. Excluded entries are not moved.
    per_block : bool
        Also run one test per block, along ``h`` restricted to it (``result.blocks``): tells
        which block's gradient is wrong. Reuses the noise measured along ``h``.
    seed : int, SeedSequence or Generator
        Seed of the default direction.
    exclude : str, list of str or callable, optional
        Entries held fixed (see :func:`fastgc.check`).
    max_halvings : int
        The most halvings of the step (default 30).

    Returns
    -------
    TaylorResult
        ``passed``, ``message``, ``rate`` (fitted), ``expected_rate``, ``steps``,
        ``remainders``, ``rates``, ``window``, ``noise_floor``, ``nfev``.

    Raises
    ------
    TypeError, ValueError
        Invalid arguments: a ``direction`` of the wrong structure or shape (named), a zero
        direction, a ``grad`` or ``hvp`` returning the wrong structure.
    CostError
        A cost that is not a finite real scalar, or not deterministic.

    Notes
    -----
    The first step is pyadjoint's, ``1e-2 x max(1, |theta|_inf)`` (divided by ``|h|_inf``,
    so no entry moves by more than that). The cost's noise is measured along ``h`` first (8
    evaluations, 14 for a lower-precision cost); the step halves until the remainder is within
    10 times its noise floor, and the rate is fitted (least squares in log-log) on the steps
    whose remainder is at least 30 times above the floor. Fewer than 3 such steps is a
    failure that says so (the cost is too noisy for the test), not a rate.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> from scipy.optimize import rosen, rosen_der, rosen_hess_prod
    >>> x = np.array([1.3, 0.7, 0.8, 1.9, 1.2])
    >>> result = fastgc.taylor_test(rosen, rosen_der, x)
    >>> result.passed, round(result.rate)
    (True, 2)
    >>> result = fastgc.taylor_test(rosen, rosen_der, x, hvp=rosen_hess_prod)
    >>> result.passed, round(result.rate)
    (True, 3)
    >>> wrong = lambda x: rosen_der(x) * np.array([1, 1, 1.01, 1, 1])
    >>> result = fastgc.taylor_test(rosen, wrong, x)
    >>> result.passed, round(result.tail_rate)
    (False, 1)
    """
    start = time.perf_counter()
    if not callable(cost):
        raise TypeError(f"cost must be callable, cost(params, *args) -> float; got "
                        f"{type(cost).__name__}")
    if not callable(grad):
        raise TypeError(f"grad must be callable, grad(params, *args); got "
                        f"{type(grad).__name__}")
    if hvp is not None and not callable(hvp):
        raise TypeError(f"hvp must be callable or None, not {type(hvp).__name__}")
    per_block = bool_flag(per_block, "per_block")
    max_halvings = integer(max_halvings, "max_halvings", "halvings of the step",
                           minimum=_MIN_WINDOW)
    rng = random_generator(seed)
    layout, theta = Layout.of(params, "params", exclude=exclude)
    if direction is None:
        h = rng.standard_normal(layout.size)
        h /= np.max(np.abs(h))
    else:
        if layout.kind == "array" and not isinstance(direction, (dict, list, tuple)):
            shape = np.shape(direction)
            if shape != layout.blocks[0].shape:
                raise ValueError(f"direction has shape {shape} but params has shape "
                                 f"{layout.blocks[0].shape}")
        h, _ = layout.flatten_gradient(direction, "direction")
        if not np.any(h):
            raise ValueError("direction is zero on every checked entry: nothing to test")

    def structure(flat):
        return layout.assemble([flat[b.offset:b.stop].reshape(b.shape).copy()
                                for b in layout.blocks], fill=0.0)

    g, _ = layout.flatten_gradient(grad(layout.unflatten(theta.copy()), *args),
                                   "grad(params)")

    def curvature(v):
        if hvp is None:
            return None
        Hv, _ = layout.flatten_gradient(hvp(layout.unflatten(theta.copy()), structure(v),
                                            *args), "hvp(params, v)")
        return float(v @ Hv)

    J = _Cost(cost, layout, args)
    J0 = J(theta)
    d2 = curvature(h)
    sigma, _ = _noise(J, theta, h, J0)
    out = _ladder(J, theta, h, J0, float(g @ h), d2, sigma, int(max_halvings))
    blocks = {}
    if per_block:
        for b in layout.blocks:
            hb = np.zeros_like(h)
            hb[b.offset:b.stop] = h[b.offset:b.stop]
            if not np.any(hb):
                continue
            before, d2b = J.nfev, curvature(hb)
            sub = _ladder(J, theta, hb, J0, float(g @ hb), d2b, sigma, int(max_halvings))
            blocks[b.name] = TaylorResult(
                derivative=float(g @ hb), curvature=math.nan if d2b is None else d2b,
                nfev=J.nfev - before, **sub)
        if any(not r.passed for r in blocks.values()) and out["passed"]:
            bad = [n for n, r in blocks.items() if not r.passed]
            out["passed"] = False
            out["message"] += f"; but the test fails along block(s) {', '.join(bad)}"
    return TaylorResult(derivative=float(g @ h), curvature=math.nan if d2 is None else d2,
                        nfev=J.nfev, blocks=blocks, seconds=time.perf_counter() - start, **out)
