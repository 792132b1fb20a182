"""Estimators: the difference formulas, and the steps they use.

Central differences per coordinate and along directions, the two-step extrapolation along
directions, scipy's Richardson extrapolation and the complex step. Each asks the objective (an
engine, through ``fastgc._engines.base.Objective``'s interface) for cost differences at
perturbed points and returns an :class:`Estimate`: the numeric derivative of each requested
item, an estimate of its absolute error, and the steps used. Which formula a check uses, and
what it does around kinks, is the schemes' policy (``fastgc._core.schemes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastgc._core.verdict import agree
from fastgc._errors import CostError

_EPS = np.finfo(np.float64).eps

# The central difference's error is h^2 f'''/6 (truncation) + noise/h (rounding); the two
# balance near h = eps^(1/3) * scale, where both are about eps^(2/3) ~ 4e-11 relative.
DEFAULT_CENTRAL_STEP = float(np.cbrt(_EPS))
# First step of the extrapolation, relative to max(1, |theta_k|): large enough that rounding
# (noise / h) is ~1e-13, small enough that a ReLU kink is rarely inside the step. The measured
# choice on dense networks (README, "Sharper verdicts").
RICHARDSON_STEP = 1e-3
COMPLEX_STEP = 1e-20



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
    nfev : int
        Cost evaluations the estimate took, as the objective reported them (0 where the
        estimator does not count them).
    one_sided : ndarray of bool or None
        Coordinates estimated from one side only (the cost is not finite on the other, within
        any step): no kink follow-up steps there.
    notes : tuple of str
        What the report should say about the steps (a domain edge met).
    """

    numeric: np.ndarray
    error: np.ndarray
    step: np.ndarray
    first_step: np.ndarray | None = None
    forward: np.ndarray | None = None
    backward: np.ndarray | None = None
    nfev: int = 0
    one_sided: np.ndarray | None = None
    notes: tuple = ()

    def __post_init__(self):
        if self.first_step is None:
            self.first_step = self.step


def central_step(objective) -> float:
    """The central difference's relative step for ``objective``'s cost: the cube root of its
    measured relative noise for a lower-precision cost (``fastgc._core.noise``), else the float64
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
                    forward=d.values[:n] / step, backward=-d.values[n:] / step, nfev=d.nfev)


class BoundedObjective:
    """An objective restricted to ``lower <= theta <= upper`` (``bounds=``, as in
    ``scipy.optimize.approx_derivative``): a point outside the bounds is answered as a cost
    that is not finite there, so :func:`central_at_edges` steps within them (one-sided at an
    active bound). Everything else is the wrapped objective's."""

    bounded = True

    def __init__(self, objective, theta, lower, upper):
        self._objective, self._theta = objective, theta
        self._lower, self._upper = lower, upper

    def __getattr__(self, name):
        return getattr(self._objective, name)

    def at_coordinates(self, index, step):
        moved = self._theta[index] + step
        outside = (moved < self._lower[index]) | (moved > self._upper[index])
        if np.any(outside):
            raise CostError("a step leaves the bounds")
        return self._objective.at_coordinates(index, step)


# Halvings of a step towards a domain edge before the side is taken as closed (2^-60 h).
_EDGE_HALVINGS = 60


def central_at_edges(objective, index: np.ndarray, step: np.ndarray, names=None) -> Estimate:
    """:func:`central`, where the cost may be undefined (NaN, inf) close to theta.

    A cost undefined on one side of a coordinate within the step (``log(sigma)`` at
    ``sigma = 1e-7``, a probability next to 0) gets the step cut: the open side's distance to
    the edge is found by halving, and the central difference is taken at the default relative
    step of that distance, which sees the function on its own scale. A coordinate with no
    finite point on one side at any distance (theta on the edge) gets a one-sided difference
    on the other, extrapolated, ``2 D(h/4) - D(h/2)``, with a third of its difference from
    ``2 D(h/2) - D(h)`` added to its rounding as the truncation it may still miss (3
    evaluations). Near the edge, the estimate with the smaller error of the two is kept. Without an
    edge this is :func:`central` (one batched request); with one, the evaluations are made one
    point at a time. Raises the first ``CostError`` when a coordinate has no finite side.
    ``names(i)`` names a coordinate in the notes.
    """
    try:
        return central(objective, index, step)
    except CostError as exc:
        first = exc
    nfev = [0]

    def value(k, s):
        try:
            d = objective.at_coordinates(np.array([k], dtype=np.int64), np.array([s]))
        except CostError:
            nfev[0] += 1
            return None
        nfev[0] += d.nfev
        return float(d.values[0]), float(d.noise[0])

    n = len(index)
    theta = getattr(objective, "theta", None)
    step = np.array(step, dtype=np.float64)
    side = np.zeros(n)  # 0: both sides; +1 / -1: only that side is open
    on_edge = np.zeros(n, dtype=bool)  # no finite point on one side at any distance
    shrunk = []
    for j in range(n):
        k, h = int(index[j]), float(step[j])
        closed = [s for s in (1.0, -1.0) if value(k, s * h) is None]
        if not closed:
            continue
        if len(closed) == 2:
            raise first
        s, t, found = closed[0], h, False
        for _ in range(_EDGE_HALVINGS):
            t /= 2
            if theta is not None and theta[k] + s * t == theta[k]:
                break  # no representable step left on that side: theta is on the edge
            if value(k, s * t) is not None:
                found = True
                break
        if not found:
            side[j], on_edge[j] = -s, True  # theta on the edge: the other side only
            continue
        step[j] = DEFAULT_CENTRAL_STEP * t  # t: a finite point within 2x of the edge
        shrunk.append((j, -s, h))
    numeric, error = np.zeros(n), np.zeros(n)
    forward, backward = np.zeros(n), np.zeros(n)
    two = np.flatnonzero(side == 0)
    if two.size:
        est = central(objective, index[two], step[two])
        nfev[0] += est.nfev
        numeric[two], error[two] = est.numeric, est.error
        forward[two], backward[two] = est.forward, est.backward

    def one_sided(k, h):
        # D(h) = g + h J''/2 + h^2 J'''/6 + ...: 2 D(h/2) - D(h) cancels the first-order term,
        # and the same one level finer leaves an h^2 term a quarter the size, which their
        # difference measures
        (v1, _), (v2, n2), (v4, n4) = value(k, h), value(k, h / 2), value(k, h / 4)
        d1, d2, d4 = v1 / h, v2 / (h / 2), v4 / (h / 4)
        r1, r2 = 2 * d2 - d1, 2 * d4 - d2
        rounding = (8 * n4 + 2 * n2) / abs(h)
        return r2, rounding + abs(r2 - r1) / 3

    # Near the edge, the smaller central step sees a function that varies on the scale of the
    # distance (log sigma at sigma = 1e-7), the one-sided difference at the default step on
    # the open side one that does not (a bound on a smooth cost, 1e-9 away): the estimate with
    # the smaller error is kept.
    for j, open_side, h in list(shrunk):
        value_b, error_b = one_sided(int(index[j]), open_side * h)
        if error_b < error[j]:
            numeric[j], error[j], step[j], side[j] = value_b, error_b, h, open_side
            forward[j] = backward[j] = value_b
            shrunk.remove((j, open_side, h))
    shrunk = [j for j, _, _ in shrunk]
    one = np.flatnonzero(side != 0)
    for j in np.flatnonzero(on_edge):
        numeric[j], error[j] = one_sided(int(index[j]), float(side[j] * step[j]))
        forward[j] = backward[j] = numeric[j]
    label = names if names is not None else (lambda i: f"coordinate {i}")
    notes = []
    if shrunk:
        listed = ", ".join(f"{label(int(index[j]))} (step {step[j]:.2g})" for j in shrunk[:5])
        notes.append(f"the cost is not finite (or a bound ends) within the default step of "
                     f"{len(shrunk)} "
                     "coordinate(s): central steps there at the scale of the distance to "
                     f"where it is undefined: {listed}")
    if one.size:
        listed = ", ".join(f"{label(int(index[j]))} ({'+' if side[j] > 0 else '-'} side)"
                           for j in one[:5])
        notes.append(f"one-sided differences (extrapolated over h, h/2 and h/4) at {one.size} "
                     "coordinate(s) where the cost is not finite (or a bound ends) on the "
                     f"other side: {listed}")
    return Estimate(numeric, error, step, forward=forward, backward=backward, nfev=nfev[0],
                    one_sided=side != 0, notes=tuple(notes))


def central_directions(objective, directions, step: np.ndarray) -> Estimate:
    """Central differences along sparse directions ``v``: estimates of ``g . v``."""
    n = len(directions)
    d = objective.along_directions(list(directions) * 2, np.concatenate([step, -step]))
    numeric = (d.values[:n] - d.values[n:]) / (2 * step)
    return Estimate(numeric, (d.noise[:n] + d.noise[n:]) / (2 * step), step, nfev=d.nfev)


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
    direction, with the estimated absolute ``error`` of ``numeric`` and the cost evaluations
    ``nfev`` the check took."""

    analytic: np.ndarray
    numeric: np.ndarray
    error: np.ndarray
    nfev: int = 0

    def failing(self, threshold: float) -> np.ndarray:
        return ~agree(self.analytic, self.numeric, self.error, threshold)


# Evaluations per direction of the two-step check: J(theta +/- h v) and J(theta +/- h/2 v).
TWO_STEP_NFEV = 4


def two_step_directions(objective, analytic_flat, theta, directions, eps) -> DirectionalCheck:
    """Check ``directions`` (a list of :class:`~fastgc._core.plan.Direction`): 4 evaluations each.

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
    return DirectionalCheck(analytic, numeric, error, both.nfev)
