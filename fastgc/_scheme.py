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
    d = objective.along_directions(list(directions) * 2, np.concatenate([step, -step]))
    numeric = (d[:n] - d[n:]) / (2 * step)
    return Estimate(numeric, objective.noise / step, step)
