"""The user's gradient as a vector-valued function: its noise, and its differences along
directions. This is the numeric side of every second-order check.

A Hessian-vector product ``H v`` is the derivative of the gradient along ``v``,
``d/dt g(theta + t v)`` at ``t = 0``; a Hessian column is the same with ``v = e_j``. So the
gradient plays the role the cost plays in a first-order check: it is evaluated at perturbed
points, its own noise is measured first (as ``fastgc._core.noise`` does for the cost: a difference
table along a fixed direction), and the step follows from that noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastgc._core.noise import LOW_PRECISION, CostNoise
from fastgc._core.schemes import DEFAULT_CENTRAL_STEP, RICHARDSON_STEP
from fastgc._errors import CostError

_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)
# The noise table: 3 points each side of theta, spacing relative to max(1, |theta|) (the
# cost's table uses the same numbers, for the same reasons: see fastgc._core.noise).
_SIDE = 3
_TABLE_STEP = 1e-5
_FINER = 10
# g(theta) twice may differ in the last bits (a threaded reduction); beyond this relative
# difference the gradient is not a function of theta.
_NONDETERMINISTIC = 1e-10
# A central difference whose second difference is above this fraction of the first crossed a
# kink, or is far from smooth at this step (a smooth gradient's ratio is ~h |g''| / |g'|: at
# most 3e-4 on a 784-256-128-10 tanh network, and 1.0 across a relu kink there); it is
# differenced again at 1/KINK_SHRINK of the step.
_KINK_JUMP = 1e-3
KINK_SHRINK = 16.0

METHODS = ("central", "two-step", "richardson")
# The verdict's relative threshold per method (the first-order schemes' own defaults).
DEFAULT_THRESHOLDS = {"central": 1e-6, "two-step": 1e-9, "richardson": 1e-8}
DESCRIPTIONS = {
    "central": "central differences of grad",
    "two-step": "two-step extrapolated central differences of grad",
    "richardson": "Richardson extrapolation of grad (scipy.differentiate, order 4)",
}


@dataclass(frozen=True)
class GradientNoise:
    """The measured noise of the gradient near the point.

    Attributes
    ----------
    sigma : float
        Standard deviation of the noise of one gradient entry (pooled over entries).
    scale : float
        The RMS of the gradient's entries, what ``sigma`` is relative to.
    nfev : int
        Gradient evaluations the measurement took.
    """

    sigma: float
    scale: float
    nfev: int

    @property
    def _cost_noise(self) -> CostNoise:
        return CostNoise(self.sigma, self.scale, self.nfev)

    @property
    def relative(self) -> float:
        """Relative noise, at least float64's machine epsilon."""
        return self._cost_noise.relative

    @property
    def low_precision(self) -> bool:
        return self._cost_noise.low_precision

    @property
    def step(self) -> float:
        """The relative central step: the cube root of the relative noise (float64's default
        for a float64 gradient)."""
        step = self._cost_noise.central_step
        return DEFAULT_CENTRAL_STEP if step is None else step

    def threshold(self, threshold: float) -> float:
        """``threshold`` raised to what a lower-precision gradient can resolve."""
        return self._cost_noise.threshold(threshold)

    def notes(self, threshold: float) -> list[str]:
        if not self.low_precision:
            return []
        return [f"the gradient computes in {self._cost_noise.precision()} precision (measured "
                f"noise {self.relative:.1e} relative): step {self.step:.2g} x max(1, |theta|), "
                f"verdict threshold {threshold:.1e}"]


class Gradient:
    """``grad(params, *args)`` on flat float64 vectors, counting its calls.

    Every call gets a fresh structure built from a copy of the flat vector, so the user's
    arrays are never touched, whatever ``grad`` does with its arguments.
    """

    def __init__(self, grad, layout, theta: np.ndarray, args: tuple, name: str = "grad"):
        self.grad, self.layout, self.theta, self.args, self.name = grad, layout, theta, args, name
        self.nfev = 0
        self.kinks = 0  # directions differenced again at a smaller step (a kink crossed)
        self.base = self(theta)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.nfev += 1
        value = self.grad(self.layout.unflatten(np.array(x, dtype=np.float64)), *self.args)
        try:
            flat, _ = self.layout.flatten_gradient(value, f"{self.name}(params)")
        except ValueError as exc:
            if x is not self.theta and "non-finite" in str(exc):
                raise CostError(f"{exc}, at a perturbed point (|x - theta|_inf = "
                                f"{np.max(np.abs(x - self.theta)):.3g})") from None
            raise
        return flat

    # -- noise -----------------------------------------------------------------------------
    def measure_noise(self) -> GradientNoise:
        """The gradient's noise from a difference table along a fixed direction (7 gradient
        evaluations; 6 more when the first table sees more than float64 noise).

        Raises
        ------
        CostError
            When ``grad(params)`` twice gives two different vectors.
        """
        start = self.nfev
        again = self(self.theta)
        scale = float(np.sqrt(np.mean(self.base ** 2)))
        gap = float(np.max(np.abs(again - self.base)))
        if gap > _NONDETERMINISTIC * max(float(np.max(np.abs(self.base))), _TINY):
            k = int(np.argmax(np.abs(again - self.base)))
            raise CostError(
                f"{self.name} is not deterministic: two calls at params gave "
                f"{self.base[k]:.17g} and {again[k]:.17g} at "
                f"{self.layout.coordinate_name(k)}. Fix its randomness (a seeded generator, "
                "eval mode): a Hessian check differences the gradient.")
        direction = np.random.default_rng(0x5EED).standard_normal(len(self.theta))
        direction *= np.maximum(1.0, np.abs(self.theta))
        sigma = self._table(direction, _TABLE_STEP)
        if sigma > LOW_PRECISION * max(scale, _TINY):
            # noise, or a kink crossed by the table: a kink's differences shrink with the
            # spacing, noise's do not
            fine = self._table(direction, _TABLE_STEP / _FINER)
            sigma = fine if fine > sigma / 3 else 0.0
        sigma = max(sigma, float(np.sqrt(np.mean((again - self.base) ** 2))))
        return GradientNoise(sigma, scale, self.nfev - start)

    def _table(self, direction, spacing) -> float:
        rows = [self.theta_plus(i * spacing, direction) if i else self.base
                for i in range(-_SIDE, _SIDE + 1)]
        return pooled_ecnoise(np.array(rows))

    def theta_plus(self, t: float, v: np.ndarray) -> np.ndarray:
        return self(self.theta + t * v)

    # -- differences -----------------------------------------------------------------------
    def step_for(self, v: np.ndarray, eps: float | None, relative: float) -> float:
        """The step along ``v``: ``eps``, or ``relative x max(1, rms theta)`` over ``v``'s
        support divided by the RMS of ``v`` there (each entry moves by about the relative
        step, as in a coordinate check)."""
        if eps is not None:
            return float(eps)
        support = np.flatnonzero(v)
        rms_theta = float(np.sqrt(np.mean(self.theta[support] ** 2))) if support.size else 0.0
        rms_v = float(np.sqrt(np.mean(v[support] ** 2))) if support.size else 1.0
        return relative * max(1.0, rms_theta) / rms_v

    def derivative(self, v: np.ndarray, method: str, eps: float | None,
                   noise: GradientNoise) -> Difference:
        """``d/dt g(theta + t v)`` at 0 and its estimated absolute error, per entry."""
        if method == "richardson":
            return self._richardson(v, self.step_for(v, eps, RICHARDSON_STEP), noise)
        h = self.step_for(v, eps, noise.step)
        coarse = self._central(v, h, noise)
        if eps is None and not noise.low_precision and coarse.jump > _KINK_JUMP:
            # A kink of the gradient (a relu unit changing sign) between theta - h v and
            # theta + h v: g jumps, and the second difference stays the size of the first
            # instead of shrinking like h. At a smaller step the kink is most likely outside
            # (a smooth gradient's second difference shrinks 16x: harmless in float64).
            smaller = self._central(v, h / KINK_SHRINK, noise)
            if smaller.jump < coarse.jump / 4:  # smoother at the smaller step: use it
                if smaller.jump < coarse.jump / (4 * KINK_SHRINK):
                    self.kinks += 1  # far below a smooth gradient's 1/16: a kink left out
                h, coarse = h / KINK_SHRINK, smaller
        if method == "central":
            return coarse
        fine = self._central(v, h / 2, noise)
        numeric = (4 * fine.numeric - coarse.numeric) / 3
        error = np.abs(numeric - fine.numeric) + (4 * fine.error + coarse.error) / 3
        return Difference(numeric, error, h)

    def _central(self, v, h, noise) -> Difference:
        up, down = self.theta_plus(h, v), self.theta_plus(-h, v)
        numeric = (up - down) / (2 * h)
        # rounding: each gradient entry carries the measured noise, relative to its size
        error = (noise.relative * (np.abs(up) + np.abs(down)) + 2 * noise.sigma) / (2 * h)
        first = float(np.linalg.norm(up - down))
        jump = float(np.linalg.norm(up + down - 2 * self.base)) / first if first > 0 else 0.0
        return Difference(numeric, error, h, jump)

    def _richardson(self, v, h, noise) -> Difference:
        from scipy.differentiate import derivative

        cache = {0.0: self.base}

        def f(t, k):
            # every entry k is on the same schedule of steps: one gradient per distinct t
            k = np.broadcast_to(k, t.shape).astype(np.int64)
            out = np.empty(t.shape)
            for value in np.unique(t):
                key = float(value)
                if key not in cache:
                    cache[key] = self.theta_plus(key, v)
                at = t == value
                out[at] = cache[key][k[at]]
            return out

        n = len(self.theta)
        res = derivative(f, np.zeros(n), args=(np.arange(n, dtype=np.float64),),
                         initial_step=h, order=4, maxiter=5,
                         tolerances=dict(atol=0.0, rtol=1e-13))
        smallest = h / 2 ** 4
        rounding = (noise.relative * np.abs(self.base) + noise.sigma) / smallest
        return Difference(np.asarray(res.df, dtype=np.float64), np.abs(res.error) + rounding,
                          h)


@dataclass
class Difference:
    """A numeric derivative of the gradient along one direction: ``numeric`` and ``error``
    (flat, one entry per parameter), the (first) step ``h``, and ``jump``, the second
    difference ``|g(+h) + g(-h) - 2 g(0)|`` over the first ``|g(+h) - g(-h)|`` (``~h`` for a
    smooth gradient, ``~1`` across a jump)."""

    numeric: np.ndarray
    error: np.ndarray
    h: float
    jump: float = 0.0


def pooled_ecnoise(rows: np.ndarray) -> float:
    """The noise of one entry of equally spaced vector values ``rows`` (points x entries),
    Moré and Wild's rule on the difference table pooled over entries: the first level whose
    estimate agrees within a factor 4 with the next two and whose differences change sign;
    else the smallest estimate above level 2."""
    from math import factorial

    levels = rows.shape[0] - 1
    sigma = np.zeros(levels + 1)
    tables = []
    table = rows
    for k in range(1, levels + 1):
        table = np.diff(table, axis=0)
        tables.append(table)
        gamma = factorial(k) ** 2 / factorial(2 * k)
        sigma[k] = np.sqrt(gamma * float(np.mean(table ** 2)))
    for k in range(1, levels - 1):
        trio = sigma[k:k + 3]
        level = tables[k - 1]
        if (trio.min() > 0 and trio.max() <= 4 * trio.min() and np.any(level > 0)
                and np.any(level < 0)):
            return float(sigma[k])
    return float(sigma[3:].min())


def step_text(method: str, eps, noise: GradientNoise) -> str:
    if method == "richardson":
        first = f"{eps:g}" if eps is not None else f"{RICHARDSON_STEP:g} x max(1, |theta|)"
        return f"first step {first}"
    step = f"eps {eps:g}" if eps is not None else f"step {noise.step:.2g} x max(1, |theta|)"
    return step + (" and half of it" if method == "two-step" else "")
