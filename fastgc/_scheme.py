"""Schemes: how cost evaluations become a derivative estimate and an error estimate.

A scheme asks the objective for cost differences at perturbed points and never knows which
engine answers. Each scheme returns an :class:`Estimate`: the numeric derivative of every
requested item, an estimate of its absolute error, and the steps used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = np.finfo(np.float64).eps

# The central difference's error is h^2 f'''/6 (truncation) + noise/h (rounding); the two
# balance near h = eps^(1/3) * scale, where both are about eps^(2/3) ~ 4e-11 relative.
DEFAULT_CENTRAL_STEP = float(np.cbrt(_EPS))


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
    """

    numeric: np.ndarray
    error: np.ndarray
    step: np.ndarray


def coordinate_steps(theta: np.ndarray, index: np.ndarray, eps: float | None) -> np.ndarray:
    """Steps for the coordinates ``index``.

    A float ``eps`` is one absolute step for every coordinate (the exercise's convention);
    ``None`` scales the default step with each parameter, ``h_k = h0 * max(1, |theta_k|)``,
    so a large weight is not perturbed by a step below its own rounding.
    """
    if eps is not None:
        return np.full(len(index), float(eps))
    return DEFAULT_CENTRAL_STEP * np.maximum(1.0, np.abs(theta[index]))


def central(objective, index: np.ndarray, step: np.ndarray) -> Estimate:
    """Central differences ``(J(theta + h e_k) - J(theta - h e_k)) / (2h)``: 2 evaluations each.

    The error estimate is the rounding part, ``noise / h``; the truncation part
    ``h^2 |f'''| / 6`` is not observable from one step (Richardson estimates it).
    """
    n = len(index)
    d = objective.at_coordinates(np.concatenate([index, index]), np.concatenate([step, -step]))
    numeric = (d[:n] - d[n:]) / (2 * step)
    return Estimate(numeric, objective.noise / step, step)


def central_directions(objective, directions, step: np.ndarray) -> Estimate:
    """Central differences along sparse directions ``v``: estimates of ``g . v``."""
    n = len(directions)
    objective.last_noise = None
    d = objective.along_directions(list(directions) * 2, np.concatenate([step, -step]))
    numeric = (d[:n] - d[n:]) / (2 * step)
    noise = objective.last_noise
    error = (objective.noise / step if noise is None
             else (noise[:n] + noise[n:]) / (2 * step))
    return Estimate(numeric, error, step)


# ---- Richardson extrapolation --------------------------------------------------------------
# First step of the extrapolation, relative to max(1, |theta_k|): large enough that rounding
# (noise / h) is ~1e-13, small enough that a ReLU kink is rarely inside the step. The measured
# choice on dense networks (README, "Sharper verdicts").
RICHARDSON_STEP = 1e-3


def richardson(objective, index: np.ndarray, step: np.ndarray) -> Estimate:
    """Central differences at h, h/2, h/4 extrapolated to h -> 0: 6 evaluations each.

    ``D(h) = f' + c1 h^2 + c2 h^4 + ...``; the quadratic in ``h^2`` through the three points,
    evaluated at 0, cancels the ``h^2`` and ``h^4`` terms (the last column of a Richardson
    table). Its error is estimated as the distance to the extrapolation from the two smaller
    steps alone, plus the rounding that the extrapolation amplifies.
    """
    n = len(index)
    steps = np.concatenate([step, step / 2, step / 4])
    idx3 = np.tile(index, 3)
    d = objective.at_coordinates(np.concatenate([idx3, idx3]), np.concatenate([steps, -steps]))
    D = ((d[: 3 * n] - d[3 * n :]) / (2 * steps)).reshape(3, n)
    r1_coarse = (4 * D[1] - D[0]) / 3
    r1_fine = (4 * D[2] - D[1]) / 3
    r2 = (16 * r1_fine - r1_coarse) / 15
    # Rounding: each D carries noise/h_i; the weights of the final combination sum in
    # magnitude to about 2.2 / (h/4) relative to D(h/4)'s noise.
    rounding = 2.2 * objective.noise / (step / 4)
    return Estimate(r2, np.abs(r2 - r1_fine) + rounding, step / 4)


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
        return d.reshape(x.shape)

    res = derivative(f, theta[index], args=(index.astype(np.float64),), initial_step=step,
                     order=4, maxiter=5, tolerances=dict(atol=0.0, rtol=1e-13))
    rounding = objective.noise / (step / 2 ** 4)
    return Estimate(res.df, np.abs(res.error) + rounding, step / 2 ** 4)


# ---- complex step --------------------------------------------------------------------------
COMPLEX_STEP = 1e-20


def complex_step(objective, index: np.ndarray, h: float = COMPLEX_STEP) -> Estimate:
    """``Im J(theta + i h e_k) / h`` with h = 1e-20: no subtraction, so no cancellation.

    Exact to rounding for a complex-analytic cost (truncation is ``h^2 f'''/6 ~ 1e-40``). The
    error estimate is a few ulps of the estimate's scale.
    """
    imag = objective.complex_at_coordinates(index, h)
    numeric = imag / h
    scale = np.abs(numeric) + np.sqrt(np.mean(numeric ** 2)) if len(numeric) else 0.0
    return Estimate(numeric, 8 * _EPS * scale, np.full(len(index), h))
