"""Schemes: how cost evaluations become a derivative estimate and an error estimate.

A scheme asks the objective for cost differences at perturbed points and never knows which
engine answers. Each scheme is one object in ``SCHEMES`` owning everything that is particular
to it: its default threshold, how it describes its steps and its error model, how it finds
coordinates whose step crosses a kink (its *kink policy*), and any safety check of its own
(the complex step's analyticity probe). The driver and the kink module never test a method
name: adding a scheme is one class here and one line in ``SCHEMES``.

Every estimate returns an :class:`Estimate`: the numeric derivative of each requested item, an
estimate of its absolute error, and the steps used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._verdict import SAFETY, agree

_EPS = np.finfo(np.float64).eps

# The central difference's error is h^2 f'''/6 (truncation) + noise/h (rounding); the two
# balance near h = eps^(1/3) * scale, where both are about eps^(2/3) ~ 4e-11 relative.
DEFAULT_CENTRAL_STEP = float(np.cbrt(_EPS))
# First step of the extrapolation, relative to max(1, |theta_k|): large enough that rounding
# (noise / h) is ~1e-13, small enough that a ReLU kink is rarely inside the step. The measured
# choice on dense networks (README, "Sharper verdicts").
RICHARDSON_STEP = 1e-3
COMPLEX_STEP = 1e-20

# Above this many suspects, kink re-checks by a second step are capped (black-box costs).
_MAX_KINK_RECHECKS = 2000


@dataclass
class Estimate:
    """Numeric derivatives of the checked items.

    Attributes
    ----------
    numeric : ndarray
        The estimated derivative of each item (coordinate or direction).
    error : ndarray
        Estimated absolute error of each estimate (rounding, plus truncation where the scheme
        can estimate it).
    step : ndarray
        The step used for each item (the smallest, for multi-step schemes).
    first_step : ndarray
        The largest step of each item (the kink follow-ups probe at this distance).
    forward, backward : ndarray or None
        The one-sided slopes ``(J(theta + h e_k) - J(theta)) / h`` and
        ``(J(theta) - J(theta - h e_k)) / h`` at ``step``, where the scheme computed them on
        the way (central differences): they tell a kink from a wrong gradient for free.
    """

    numeric: np.ndarray
    error: np.ndarray
    step: np.ndarray
    first_step: np.ndarray | None = None
    forward: np.ndarray | None = None
    backward: np.ndarray | None = None

    def __post_init__(self):
        if self.first_step is None:
            self.first_step = self.step


def central_step(objective) -> float:
    """The central difference's relative step for ``objective``'s cost: the cube root of its
    measured relative noise for a lower-precision cost (``fastgc._noise``), else the float64
    default."""
    step = getattr(getattr(objective, "cost_noise", None), "central_step", None)
    return DEFAULT_CENTRAL_STEP if step is None else step


def coordinate_steps(theta: np.ndarray, index: np.ndarray, eps: float | None,
                     relative: float = DEFAULT_CENTRAL_STEP) -> np.ndarray:
    """Steps for the coordinates ``index``.

    A float ``eps`` is one absolute step for every coordinate (the exercise's convention);
    ``None`` scales ``relative`` with each parameter, ``h_k = relative * max(1, |theta_k|)``,
    so a large weight is not perturbed by a step below its own rounding.
    """
    if eps is not None:
        return np.full(len(index), float(eps))
    return relative * np.maximum(1.0, np.abs(theta[index]))


# ---- the estimators, as plain functions (the kink and localisation follow-ups share them) ----
def central(objective, index: np.ndarray, step: np.ndarray) -> Estimate:
    """Central differences ``(J(theta + h e_k) - J(theta - h e_k)) / (2h)``: 2 evaluations each.

    The error estimate is the rounding part, ``(noise_+ + noise_-) / 2h``; the truncation part
    ``h^2 |f'''| / 6`` is not observable from one step (Richardson estimates it).
    """
    n = len(index)
    d = objective.at_coordinates(np.concatenate([index, index]), np.concatenate([step, -step]))
    numeric = (d.values[:n] - d.values[n:]) / (2 * step)
    return Estimate(numeric, (d.noise[:n] + d.noise[n:]) / (2 * step), step,
                    forward=d.values[:n] / step, backward=-d.values[n:] / step)


def central_directions(objective, directions, step: np.ndarray) -> Estimate:
    """Central differences along sparse directions ``v``: estimates of ``g . v``."""
    n = len(directions)
    d = objective.along_directions(list(directions) * 2, np.concatenate([step, -step]))
    numeric = (d.values[:n] - d.values[n:]) / (2 * step)
    return Estimate(numeric, (d.noise[:n] + d.noise[n:]) / (2 * step), step)


def richardson_scipy(objective, theta: np.ndarray, index: np.ndarray,
                     step: np.ndarray) -> Estimate:
    """``scipy.differentiate.derivative`` driven through the batched engine.

    scipy asks for the cost at abscissae of every active coordinate at once; an elementwise
    function maps each (coordinate, abscissa) pair onto one request to the objective. scipy's
    own step sequence, order and error estimate are used (order 4, steps shrinking by 2 from
    ``step``, up to 5 iterations).
    """
    from scipy.differentiate import derivative

    def f(x, k):
        k = np.broadcast_to(k, x.shape).astype(np.int64)
        d = objective.at_coordinates(k.ravel(), (x - theta[k]).ravel())
        return d.values.reshape(x.shape)

    res = derivative(f, theta[index], args=(index.astype(np.float64),), initial_step=step,
                     order=4, maxiter=5, tolerances=dict(atol=0.0, rtol=1e-13))
    rounding = objective.noise / (step / 2 ** 4)
    return Estimate(res.df, np.abs(res.error) + rounding, step / 2 ** 4, step)


def complex_step(objective, index: np.ndarray, h: float = COMPLEX_STEP) -> Estimate:
    """``Im J(theta + i h e_k) / h`` with h = 1e-20: no subtraction, so no cancellation.

    Exact to rounding for a complex-analytic cost (truncation is ``h^2 f'''/6 ~ 1e-40``). The
    error estimate is a few ulps of the estimate's scale.
    """
    numeric = objective.complex_at_coordinates(index, h).values / h
    scale = np.abs(numeric) + np.sqrt(np.mean(numeric ** 2)) if len(numeric) else 0.0
    return Estimate(numeric, 8 * _EPS * scale, np.full(len(index), h))


def direction_steps(theta, directions, eps,
                    relative: float = DEFAULT_CENTRAL_STEP) -> np.ndarray:
    """Step per direction: ``eps``, or the relative step scaled by the RMS of the perturbed
    parameters (at least 1)."""
    if eps is not None:
        return np.full(len(directions), float(eps))
    return np.array([relative * max(1.0, float(np.sqrt(np.mean(theta[d.indices] ** 2))))
                     for d in directions])


@dataclass
class DirectionalCheck:
    """``analytic`` = g . v_eff and ``numeric`` (extrapolated central differences) for each
    direction, with the estimated absolute ``error`` of ``numeric``."""

    analytic: np.ndarray
    numeric: np.ndarray
    error: np.ndarray

    def failing(self, threshold: float) -> np.ndarray:
        return ~agree(self.analytic, self.numeric, self.error, threshold)


def two_step_directions(objective, analytic_flat, theta, directions, eps) -> DirectionalCheck:
    """Check ``directions`` (a list of :class:`~fastgc._plan.Direction`): 4 evaluations each.

    Central differences at h and h/2 along each direction, extrapolated,
    ``(4 D(h/2) - D(h)) / 3``, which cancels the h^2 term; the disagreement
    ``|R - D(h/2)|`` estimates the remaining error (large where the step crosses a kink), plus
    the rounding the combination amplifies. So the verdict can follow the numerics, well below
    the central threshold: a single entry off by 1e-3 in a block of 10^6 moves g . v by ~1e-6
    relative.

    The analytic side uses the step actually applied, ``(fl(theta + h v) - fl(theta - h v)) /
    2h`` (and the same at h/2), so the rounding of ``theta + h v`` (large when ``h v_i`` is
    tiny) cancels out of the comparison.
    """
    steps = direction_steps(theta, directions, eps, central_step(objective))
    pairs = [(d.indices, d.values) for d in directions]
    n = len(directions)
    both = central_directions(objective, pairs * 2, np.concatenate([steps, steps / 2]))
    coarse, fine = both.numeric[:n], both.numeric[n:]
    numeric = (4 * fine - coarse) / 3
    # the combination's rounding: (4 err(h/2) + err(h)) / 3
    error = np.abs(numeric - fine) + (4 * both.error[n:] + both.error[:n]) / 3
    analytic = np.empty(n)
    indices = None
    for j, d in enumerate(directions):
        if d.indices is not indices:  # a block's directions share one index array
            indices = d.indices
            t, g = theta[indices], analytic_flat[indices]
            # ((t + h v) - (t - h v)) / 2h in two reused buffers: the same operations as the
            # expression, without its five block-sized temporaries
            hv, up = np.empty_like(t), np.empty_like(t)
        values = []
        for h in (steps[j], steps[j] / 2):
            np.multiply(h, d.values, out=hv)
            np.add(t, hv, out=up)
            np.subtract(t, hv, out=hv)
            np.subtract(up, hv, out=up)
            np.divide(up, 2 * h, out=up)
            values.append(g @ up)
        # the analytic counterpart of the extrapolation: the same combination
        analytic[j] = (4 * values[1] - values[0]) / 3
    return DirectionalCheck(analytic, numeric, error)


# ---- the schemes -------------------------------------------------------------------------
class Scheme:
    """One way of estimating derivatives; subclasses fill in the class attributes.

    Attributes
    ----------
    name : str
        The ``method=`` value that selects it.
    items : str
        ``"coordinates"`` or ``"directions"``: what the scheme estimates.
    description : str
        The scheme in the report's words ("central differences").
    default_threshold : float
        The verdict's relative threshold when the user gives none.
    error_model : str
        What the error estimate stands for, in words; empty when it is only rounding (then the
        report states no tolerance rule).
    """

    name = "abstract"
    items = "coordinates"
    description = ""
    default_threshold = 1e-6
    error_model = ""

    def step_text(self, eps, relative: float | None = None) -> str:
        """The steps in words; ``relative`` is the central step chosen for a lower-precision
        cost (None: the float64 default)."""
        relative = DEFAULT_CENTRAL_STEP if relative is None else relative
        return f"eps {eps:g}" if eps is not None else f"step {relative:.2g} x max(1, |theta|)"

    def rule_text(self, threshold: float) -> str:
        if not self.error_model:
            return ""
        return (f"{threshold:.0e} relative + {SAFETY:g} x the estimated error of each "
                f"{self.error_model}")

    def estimate(self, objective, theta, index, eps) -> Estimate:
        raise NotImplementedError

    def validate(self, objective, layout, theta, index, estimate, rng) -> None:
        """Raise when the estimate cannot be trusted for this cost (default: always fine).

        ``rng`` is the check's generator: a scheme that draws from it spawns a child, so that
        the plans' random stream is the same whichever scheme runs."""

    # kink policy: which coordinates to examine, and how to tell a kink without an engine mask
    looks_for_kinks = True

    def kink_suspects(self, failing: np.ndarray, estimate: Estimate) -> np.ndarray:
        """Coordinates whose estimate may be spoilt by a kink: by default, the failing ones."""
        return failing

    def black_box_kinks(self, objective, index, estimate, suspects, analytic,
                        threshold) -> np.ndarray:
        """Which ``suspects`` (positions into ``index``) cross a kink, for a cost whose engine
        cannot tell exactly (``analytic``: the analytic values of ``index``)."""
        raise NotImplementedError


def _relative_scale(a: np.ndarray) -> np.ndarray:
    return np.abs(a) + (np.sqrt(np.mean(a ** 2)) if len(a) else 0.0)


class Central(Scheme):
    """The exercise's central differences: 2 evaluations per coordinate, ~1e-10 relative.

    Default threshold 1e-6: central differences at the default step are accurate to ~1e-10
    relative on smooth costs (truncation and rounding balance near eps^(2/3)); 1e-6 leaves four
    orders of magnitude for costs with larger third derivatives. The exercise used eps=1e-7
    with threshold 2e-7: pass those to get its verdict.
    """

    name = "central"
    description = "central differences"
    default_threshold = 1e-6

    def estimate(self, objective, theta, index, eps):
        return central(objective, index,
                       coordinate_steps(theta, index, eps, central_step(objective)))

    def black_box_kinks(self, objective, index, estimate, suspects, analytic, threshold):
        # The one-sided slopes are already there: only suspects whose slopes disagree get the
        # re-check at h/16 (fastgc._kinks.one_sided_kinks).
        from ._kinks import one_sided_kinks

        return one_sided_kinks(objective, index, estimate, suspects, analytic, threshold)


class Richardson(Scheme):
    """``scipy.differentiate.derivative``: order 4, ~8-12 evaluations per coordinate, with a
    per-coordinate error estimate; the verdict follows it, with a floor of 1e-8 for what the
    error estimate cannot see (it is itself an extrapolation)."""

    name = "richardson"
    description = "Richardson extrapolation"
    default_threshold = 1e-8
    error_model = "estimate (Richardson error model)"

    def step_text(self, eps, relative=None):
        first = f"{eps:g}" if eps is not None else f"{RICHARDSON_STEP:g} x max(1, |theta|)"
        return f"first step {first}, scipy.differentiate, order 4"

    def estimate(self, objective, theta, index, eps):
        h0 = coordinate_steps(theta, index, eps, relative=RICHARDSON_STEP)
        return richardson_scipy(objective, theta, index, h0)

    @staticmethod
    def _uncertain(estimate):
        # the extrapolation disagreed with itself, as it does across a kink
        return estimate.error > 1e-6 * _relative_scale(estimate.numeric)

    def kink_suspects(self, failing, estimate):
        return failing | self._uncertain(estimate)

    def black_box_kinks(self, objective, index, estimate, suspects, analytic, threshold):
        # A kink crossed by the steps makes the extrapolation disagree with itself; a kink
        # exactly at the point does not (every step sees the same two slopes, and the symmetric
        # estimate is their average at every step): the one-sided slopes at the first step
        # tell, 2 evaluations per failing suspect and 2 more where they differ.
        from ._kinks import one_sided_kinks

        uncertain = self._uncertain(estimate)
        rest = np.flatnonzero(suspects & ~uncertain)[:_MAX_KINK_RECHECKS]
        kinked = uncertain & suspects
        if rest.size:
            coarse = central(objective, index[rest], estimate.first_step[rest])
            kinked[rest] = one_sided_kinks(objective, index[rest], coarse,
                                           np.ones(rest.size, dtype=bool), analytic, threshold)
        return kinked


class ComplexStep(Scheme):
    """``Im J(theta + i h e_k) / h``, h = 1e-20: one complex evaluation per coordinate, exact to
    rounding for a complex-analytic cost; floor 1e-11 (the analytic gradient's own rounding is
    ~1e-15). A cost that is not complex-analytic is detected and refused."""

    name = "complex"
    description = "complex step"
    default_threshold = 1e-11
    error_model = "estimate (complex-step error model)"
    looks_for_kinks = False  # Re theta does not move: a kink is never crossed

    def step_text(self, eps, relative=None):
        return f"complex step h = {COMPLEX_STEP:g}"

    def estimate(self, objective, theta, index, eps):
        return complex_step(objective, index)

    def validate(self, objective, layout, theta, index, estimate, rng):
        """Cross-check a few complex-step estimates in every block against central differences.

        A cost that uses abs, conj or |z|^2 (``np.var`` takes ``|x - mean|**2``) runs on
        complex input without dropping the imaginary part but is not complex-analytic: its
        complex step is wrong, and often in one block only (a batch norm's input, not its scale
        and shift). So ``_PROBES`` random coordinates of each block are compared with central
        differences, 2 evaluations each, drawn from a child of the check's generator.
        """
        from ._objective import CostError

        if objective.name == "network" or len(index) == 0:
            return  # fastgc's own network: analytic by construction (ReLU branches on Re z)
        try:
            child = rng.spawn(1)[0]
        except (AttributeError, TypeError, ValueError):  # a generator without a SeedSequence
            child = np.random.default_rng(0)
        block_of = layout.block_index(index)
        probe = np.concatenate([
            np.sort(child.choice(where, size=min(_PROBES, where.size), replace=False))
            for where in (np.flatnonzero(block_of == b) for b in range(len(layout.blocks)))
            if where.size])
        check = central(objective, index[probe],
                        coordinate_steps(theta, index[probe], None, central_step(objective)))
        gap = np.abs(check.numeric - estimate.numeric[probe])
        scale = np.abs(check.numeric) + np.sqrt(np.mean(estimate.numeric ** 2))
        allowed = SAFETY * check.error + 1e-6 * scale
        bad = np.flatnonzero(gap > allowed)
        if bad.size:
            k = int(bad[np.argmax((gap - allowed)[bad])])
            j = int(probe[k])
            block = layout.blocks[int(block_of[j])]
            raise CostError(
                f"method='complex': the cost is not complex-analytic in block {block.name} (it "
                "uses abs, conj, |z|**2 such as np.var, or a branch on the imaginary part): at "
                f"{layout.coordinate_name(int(index[j]))} the complex step gives "
                f"{estimate.numeric[j]:.10g} but central differences give "
                f"{check.numeric[k]:.10g}. Use method='richardson'."
            )


# Coordinates per block that the complex step's analyticity probe compares with central
# differences.
_PROBES = 3


class TwoStepDirections(Scheme):
    """Central differences along each random direction at h and h/2, extrapolated (4
    evaluations per direction); the verdict follows the extrapolation's error estimate, with a
    floor of 1e-9."""

    name = "two-step"
    items = "directions"
    description = "two-step extrapolated central differences along random directions"
    default_threshold = 1e-9
    error_model = "extrapolated directional derivative"
    looks_for_kinks = False  # a kink shows in the extrapolation's error estimate instead

    def step_text(self, eps, relative=None):
        return super().step_text(eps, relative) + " and half of it"

    def estimate_directions(self, objective, analytic_flat, theta, directions, eps):
        return two_step_directions(objective, analytic_flat, theta, directions, eps)


SCHEMES = {s.name: s for s in (Central(), Richardson(), ComplexStep(), TwoStepDirections())}
