"""Schemes: the policy of each ``method=``, on top of the difference formulas.

Each scheme is one object in ``SCHEMES`` owning everything that is particular to it: which
estimator it runs (``fastgc._core.estimators``), its default threshold, how it describes its
steps and its error model, how it finds coordinates whose step crosses a kink (its *kink
policy*), and any safety check of its own (the complex step's analyticity probe). A scheme
never knows which engine answers; what it needs to know of one is data on the engine
(``exact_complex``). The driver and the kink module never test a method name: adding a scheme
is one class here and one line in ``SCHEMES``.
"""

from __future__ import annotations

import numpy as np

from fastgc._core.estimators import (
    COMPLEX_STEP,
    DEFAULT_CENTRAL_STEP,
    RICHARDSON_STEP,
    DirectionalCheck,
    Estimate,
    central,
    central_at_edges,
    central_directions,
    central_step,
    complex_step,
    coordinate_steps,
    direction_steps,
    richardson_scipy,
    two_step_directions,
)
from fastgc._core.kinks import MAX_RECHECKS, KinkFinding, refine_suspects
from fastgc._core.verdict import SAFETY
from fastgc._errors import CostError

__all__ = [
    "COMPLEX_STEP", "DEFAULT_CENTRAL_STEP", "RICHARDSON_STEP", "SCHEMES", "DirectionalCheck",
    "Estimate", "Scheme", "central", "central_directions", "central_step", "complex_step",
    "coordinate_steps", "direction_steps", "richardson_scipy", "two_step_directions",
]

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
        steps = coordinate_steps(theta, index, eps, central_step(objective))
        if eps is not None and not getattr(objective, "bounded", False):
            # the user's step is kept: a cost undefined within it is reported, not avoided
            return central(objective, index, steps)
        return central_at_edges(objective, index, steps,
                                getattr(objective, "coordinate_name", None))

    def black_box_kinks(self, objective, index, estimate, suspects, analytic, threshold):
        # The one-sided slopes are already there; smaller steps tell a kink from curvature and
        # remove the truncation of smooth suspects (fastgc._core.kinks.refine_suspects).
        return refine_suspects(objective, index, estimate, suspects, analytic, threshold)


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
        # Kinks are decided at the central step, where curvature cannot pass for one: at the
        # first step (1e-3) the one-sided slopes of a smooth coordinate differ by 1e-3 J'' and
        # bracket small errors. A kink crossed by the larger steps only spoils the
        # extrapolation (its error estimate says so): the central estimate at the finer steps
        # is then the better one, and each smooth suspect keeps whichever estimate has the
        # smaller error.
        n = len(index)
        kinked, at_point = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        sel = np.flatnonzero(suspects)[:MAX_RECHECKS]
        if sel.size == 0:
            return KinkFinding(kinked, at_point, estimate)
        h = estimate.first_step[sel] * (central_step(objective) / RICHARDSON_STEP)
        coarse = central(objective, index[sel], h)
        found = refine_suspects(objective, index[sel], coarse, np.ones(sel.size, dtype=bool),
                                analytic[sel], threshold)
        kinked[sel], at_point[sel] = found.kinked, found.at_point
        # Smooth at the central step, but the extrapolation disagreed with itself and with the
        # (far more precise) central estimate: its larger steps crossed a kink
        gap = np.abs(estimate.numeric[sel] - found.estimate.numeric)
        spoilt = (self._uncertain(estimate)[sel]
                  & (gap > SAFETY * found.estimate.error
                     + threshold * (np.abs(estimate.numeric[sel])
                                    + np.abs(found.estimate.numeric))))
        kinked[sel] |= spoilt
        numeric, error, step = estimate.numeric.copy(), estimate.error.copy(), estimate.step.copy()
        better = kinked[sel] | (found.estimate.error < error[sel])
        numeric[sel[better]] = found.estimate.numeric[better]
        error[sel[better]] = found.estimate.error[better]
        step[sel[better]] = h[better]  # the one-sided rule steps from the central step
        return KinkFinding(kinked, at_point, Estimate(numeric, error, step, estimate.first_step))


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
        if objective.exact_complex or len(index) == 0:
            return  # an engine whose complex evaluation is analytic by construction
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
