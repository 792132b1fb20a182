"""Kinks: coordinates whose step crosses a point where the cost is not differentiable.

A ReLU kink (or abs, max) inside a step spoils that coordinate's finite difference: the
estimate mixes the slopes of both sides. Such a coordinate is not a wrong gradient; it is found
here and judged against the one-sided differences instead of the threshold.
"""

from __future__ import annotations

import numpy as np

from ._result import SAFETY
from ._scheme import central

# Above this many suspects, kink re-checks by a second step are capped (black-box costs).
_MAX_KINK_RECHECKS = 2000


def find_kinks(objective, analytic, index, h0, estimate, threshold: float,
               method: str) -> np.ndarray:
    """Which checked coordinates' steps cross a kink of the cost.

    Only suspects are examined: failing coordinates, and for Richardson also those whose
    error estimate is large (its extrapolation disagreed with itself, as it does across a
    kink); a kink that spoils nothing needs no report. The network engine then knows exactly
    (a ReLU pre-activation changes sign within +/-h). For a black-box cost a kink shows as
    estimates that disagree across step sizes: Richardson's large error estimate, or a failing
    central estimate that moves by more than both estimates' errors allow when the step is cut
    to h/16.
    """
    a, err = estimate.numeric, estimate.error
    g = analytic[index]
    failing = np.abs(g - a) > threshold * (np.abs(g) + np.abs(a)) + SAFETY * err
    scale = np.abs(a) + (np.sqrt(np.mean(a ** 2)) if len(a) else 0.0)
    uncertain = err > 1e-6 * scale
    suspects = failing | uncertain if method == "richardson" else failing
    kinked = np.zeros(len(index), dtype=bool)
    sel = np.flatnonzero(suspects)
    if sel.size == 0:
        return kinked
    exact = objective.kink_mask(index[sel], h0[sel])
    if exact is not None:
        kinked[sel] = exact | objective.kink_mask(index[sel], -h0[sel])
        return kinked
    if method == "richardson":
        return uncertain
    sel = sel[:_MAX_KINK_RECHECKS]
    fine = central(objective, index[sel], h0[sel] / 16)
    gap = np.abs(fine.numeric - a[sel])
    kinked[sel] = gap > SAFETY * (err[sel] + fine.error) + 1e-3 * scale[sel]
    return kinked


def one_sided_consistent(objective, analytic, index, step, threshold: float) -> np.ndarray:
    """Whether each analytic value lies within the one-sided differences around theta.

    Across a kink the derivative at theta is the one-sided derivative of the side that does not
    cross it. Each side is estimated at h and h/2 and extrapolated, ``2 D(h/2) - D(h)``, which
    removes the O(h f'') curvature error; ``|D(h/2) - D(h)|`` widens the side's interval by
    what the extrapolation may still miss (a kink inside the side, or higher-order curvature).
    4 evaluations per coordinate.
    """
    if len(index) == 0:
        return np.zeros(0, dtype=bool)
    n = len(index)
    steps = np.concatenate([step, -step, step / 2, -step / 2])
    d = objective.at_coordinates(np.tile(index, 4), steps)
    quotients = (d / steps).reshape(4, n)  # forward h, backward h, forward h/2, backward h/2
    low, high = [], []
    for coarse, fine in ((quotients[0], quotients[2]), (quotients[1], quotients[3])):
        value = 2 * fine - coarse
        spread = np.abs(fine - coarse)
        low.append(value - spread)
        high.append(value + spread)
    lo, hi = np.minimum(*low), np.maximum(*high)
    g = analytic[index]
    slack = (np.maximum(threshold, 1e-6) * (np.abs(lo) + np.abs(hi))
             + SAFETY * 4 * objective.noise / step)
    return (g >= lo - slack) & (g <= hi + slack)
