"""The cost's own noise, measured: what a finite difference of this cost can see.

A float64 cost carries rounding noise of a few ulps of its value; a cost computed in float32
(float32 data, an explicit cast, a float32 framework underneath) carries ~1e-7 relative, and a
central difference at the float64 step (6e-6) then sees noise / h ~ 1e-2: every coordinate
looks wrong. A cost that draws random numbers (unseeded dropout) gives no derivative at all.

So before any step is chosen the noise is measured, in the manner of Moré and Wild's ECnoise
(SIAM J. Sci. Comput. 33, 2011): the cost at a few equally spaced points along a fixed
direction, and the table of their differences. The k-th differences of a smooth function
shrink like h^k, those of noise do not: where successive levels of the table agree (and
change sign), they measure the noise, ``sigma_k^2 = gamma_k mean((Delta^k f)^2)`` with
``gamma_k = (k!)^2 / (2k)!``. One more evaluation at the point itself tells a
nondeterministic cost. ``NOISE_NFEV`` evaluations in all, once per check; 6 more where
the table sees more than float64 noise: a kink crossed by the table also fills its higher
differences, but in proportion to the spacing, so a second table 10 times finer tells noise
(which stays) from a kink (which shrinks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fastgc._errors import CostError

_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)
# Points of the difference table on each side of theta (7 points, theta's own included).
_SIDE = 3
# The table's spacing, relative to max(1, |theta_k|): large enough that float32 rounding of
# the parameters changes the cost even in the finer table, small enough that the smooth part
# of the 3rd and higher differences (~h^k) stays far below float32 noise.
_TABLE_STEP = 1e-5
_FINER = 10
# Evaluations: theta once more and the table's 6 new points; 6 more where the first table sees
# more than float64 noise (a lower-precision cost, or a kink).
NOISE_NFEV = 2 * _SIDE + 1
# A cost whose relative noise is above this is "lower precision": its central step and the
# verdict's accuracy floor are chosen for the noise (float64 sums stay far below it).
LOW_PRECISION = 1e-11
# J(theta) twice may differ in the last bits (a threaded reduction); beyond this relative
# difference the cost is not a function of theta.
_NONDETERMINISTIC = 1e-10


@dataclass(frozen=True)
class CostNoise:
    """The measured noise of the cost near the point.

    Attributes
    ----------
    sigma : float
        Standard deviation of the noise of one cost value (0 when the table saw none).
    cost : float
        The largest ``|J|`` the measurement saw (``J(theta)`` and the table's points): the
        scale the noise is relative to. Not ``|J(theta)|`` alone: at a zero-residual minimiser
        ``J(theta)`` is ~0 while the differences a check takes are not, and noise read
        relative to ~0 would call a float64 cost low-precision.
    nfev : int
        Cost evaluations the measurement took (0 when it was skipped).
    """

    sigma: float
    cost: float
    nfev: int = 0

    @property
    def relative(self) -> float:
        """Relative noise, at least float64's machine epsilon."""
        return max(_EPS, self.sigma / max(self.cost, self.sigma, _TINY))

    @property
    def low_precision(self) -> bool:
        return self.relative > LOW_PRECISION

    @property
    def central_step(self) -> float | None:
        """The central difference's relative step for this noise: the cube root of it, where
        truncation (h^2 J'''/6) and rounding (noise / h) balance; None for float64 noise (the
        schemes' own default)."""
        return float(np.cbrt(self.relative)) if self.low_precision else None

    @property
    def accuracy(self) -> float:
        """The relative accuracy a central difference reaches at that step, noise^(2/3)."""
        return self.relative ** (2 / 3)

    def threshold(self, threshold: float) -> float:
        """The verdict's relative threshold: ``threshold``, raised to what the cost can resolve
        (a threshold below the accuracy would fail every correct coordinate)."""
        return max(threshold, 2 * self.accuracy) if self.low_precision else threshold

    def precision(self) -> str:
        """The floating-point type the noise is nearest to, on a log scale ("~float32"): a
        cost summed with cancellation is noisier relative to its value than its type's eps."""
        eps = {"float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
        name = min(eps, key=lambda k: abs(math.log(self.relative / eps[k])))
        return f"~{name}"

    def notes(self, threshold: float) -> list[str]:
        """What the report says about the noise (nothing for a float64 cost)."""
        if not self.low_precision:
            return []
        return [f"the cost computes in {self.precision()} precision (measured noise "
                f"{self.relative:.1e} relative): step {self.central_step:.2g} x max(1, |theta|), "
                f"accuracy ~{self.accuracy:.0e}; verdict threshold {threshold:.1e}"]


def measure_noise(objective, theta: np.ndarray, base_cost: float) -> CostNoise:
    """Measure the cost's noise near ``theta`` with ``NOISE_NFEV`` evaluations.

    ``objective`` answers ``at_coordinates`` and ``along_directions`` with cost differences
    from ``J(theta)`` (``base_cost``); the result's ``nfev`` adds up the evaluations those
    answers report.

    Raises
    ------
    CostError
        When ``J(theta)`` evaluated again differs from the first time: the cost is not a
        function of the parameters (dropout, an unseeded random draw).
    """
    repeat = objective.at_coordinates(np.zeros(1, dtype=np.int64), np.zeros(1))
    again, nfev = repeat.values[0], repeat.nfev
    scale = max(abs(base_cost), _TINY)
    if abs(again) > _NONDETERMINISTIC * scale:
        raise CostError(
            f"the cost is not deterministic: J(params) evaluated twice gave {base_cost:.17g} "
            f"and {base_cost + float(again):.17g}. Dropout, or an unseeded random draw? Fix "
            "the randomness for the check (a seeded generator, eval mode): a gradient check "
            "needs the same function at every call."
        )
    # A fixed direction (not the check's rng: the plans' random stream stays untouched), each
    # coordinate moving by about the table's spacing, relative.
    direction = np.random.default_rng(0x5EED).standard_normal(len(theta))
    direction *= np.maximum(1.0, np.abs(theta))
    try:
        coarse, seen, used = _table(objective, direction, _TABLE_STEP)
        nfev += used
        # The noise is relative to the costs actually computed, not to |J(theta)| alone.
        scale = max(scale, abs(base_cost) + seen)
        if coarse / scale > LOW_PRECISION:
            # Noise, or a kink the table crossed (a ReLU at the point): the k-th differences
            # of a kink scale with the spacing, noise does not. A table 10 times finer tells.
            fine, _, used = _table(objective, direction, _TABLE_STEP / _FINER)
            nfev += used
            coarse = fine if fine > coarse / 3 else 0.0
    except CostError:
        # A NaN, inf or non-scalar at a perturbed point: the check reports it itself, with the
        # coordinate and step (the table's points move every coordinate at once).
        return CostNoise(abs(again), abs(base_cost), nfev)
    except Exception as exc:
        # The user's own error propagates (nothing is retried or hidden), saying where.
        if hasattr(exc, "add_note"):
            exc.add_note("fastgc: raised while measuring the cost's noise, at theta + t v: "
                         "every coordinate moved along a fixed random direction v by about "
                         f"{_TABLE_STEP:g} x max(1, |theta|)")
        raise
    # the repeat's difference is noise too (a threaded sum's last bits)
    return CostNoise(max(coarse, abs(again)), scale, nfev)


def _table(objective, direction, spacing) -> tuple[float, float, int]:
    """The noise level of the cost at theta + i spacing direction, i = -3..3, the largest
    ``|J(theta + i spacing direction) - J(theta)|`` of the table, and the evaluations it
    took."""
    indices = np.arange(len(direction), dtype=np.int64)
    multiples = np.array([i for i in range(-_SIDE, _SIDE + 1) if i != 0], dtype=np.float64)
    d = objective.along_directions([(indices, direction)] * len(multiples), spacing * multiples)
    # J(theta)'s own difference is 0
    return (_ecnoise(np.insert(d.values, _SIDE, 0.0)), float(np.max(np.abs(d.values))),
            d.nfev)


def _ecnoise(values: np.ndarray) -> float:
    """The noise level of equally spaced ``values`` from their difference table (Moré and
    Wild's rule: the first level whose estimate agrees within a factor 4 with the next two and
    whose differences change sign; else the smallest estimate above level 2)."""
    levels = len(values) - 1
    sigma = np.zeros(levels + 1)
    table = values
    for k in range(1, levels + 1):
        table = np.diff(table)
        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
        sigma[k] = math.sqrt(gamma * float(np.mean(table ** 2)))
    table = values
    for k in range(1, levels - 1):
        table = np.diff(table)
        trio = sigma[k : k + 3]
        signs = np.sign(table[table != 0])
        if trio.min() > 0 and trio.max() <= 4 * trio.min() and len(set(signs)) > 1:
            return float(sigma[k])
    return float(sigma[3:].min())
