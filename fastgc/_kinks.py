"""Kinks: coordinates whose step crosses a point where the cost is not differentiable.

A ReLU kink (or abs, max) inside a step spoils that coordinate's finite difference: the
estimate mixes the slopes of both sides. Such a coordinate is not a wrong gradient; it is found
here and judged against the one-sided differences instead of the threshold.
"""

from __future__ import annotations

import numpy as np

from ._verdict import agree, within_interval

# The one-sided judgement's relative floor: one-sided differences are first-order accurate, so
# they cannot support a threshold below this.
_ONE_SIDED_FLOOR = 1e-6


def find_kinks(objective, scheme, analytic, index, estimate, threshold: float) -> np.ndarray:
    """Which checked coordinates' steps cross a kink of the cost.

    Only suspects are examined (the scheme says which: failing coordinates, and for Richardson
    also those whose error estimate is large); a kink that spoils nothing needs no report. The
    network engine then knows exactly (a ReLU pre-activation changes sign within +/-h, either
    side). For a black-box cost the scheme's own policy decides (estimates that disagree
    across step sizes).
    """
    failing = ~agree(analytic[index], estimate.numeric, estimate.error, threshold)
    suspects = scheme.kink_suspects(failing, estimate)
    kinked = np.zeros(len(index), dtype=bool)
    sel = np.flatnonzero(suspects)
    if sel.size == 0:
        return kinked
    h0 = estimate.first_step
    exact = objective.kink_mask(index[sel], h0[sel])
    if exact is not None:
        kinked[sel] = exact | objective.kink_mask(index[sel], -h0[sel])
        return kinked
    return scheme.black_box_kinks(objective, index, estimate, suspects)


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
    quotients = (d.values / steps).reshape(4, n)  # forward h, backward h, forward h/2, backward h/2
    noise = d.noise.reshape(4, n).max(axis=0)
    low, high = [], []
    for coarse, fine in ((quotients[0], quotients[2]), (quotients[1], quotients[3])):
        value = 2 * fine - coarse
        spread = np.abs(fine - coarse)
        low.append(value - spread)
        high.append(value + spread)
    lo, hi = np.minimum(*low), np.maximum(*high)
    # the extrapolated one-sided quotients carry up to ~4 noise / h of rounding
    return within_interval(analytic[index], lo, hi, 4 * noise / step,
                           max(threshold, _ONE_SIDED_FLOOR))
