"""Kinks: coordinates whose step crosses a point where the cost is not differentiable.

A ReLU kink (or abs, max) inside a step spoils that coordinate's finite difference: the
estimate mixes the slopes of both sides. Such a coordinate is not a wrong gradient; it is found
here and judged against the one-sided differences instead of the threshold.
"""

from __future__ import annotations

import numpy as np

from fastgc._core.estimators import central
from fastgc._core.verdict import SAFETY, agree, within_interval

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
    return scheme.black_box_kinks(objective, index, estimate, suspects, analytic[index],
                                  threshold)


# The re-check cuts the step by this factor: a smooth coordinate's one-sided slopes then differ
# 16 times less (their gap is h J''), a kink's by a jump that does not shrink.
_RECHECK = 16
# Above this many suspects, kink re-checks by a second step are capped (black-box costs).
MAX_RECHECKS = 2000


def one_sided_kinks(objective, index, coarse, suspects, analytic, threshold: float):
    """Which ``suspects`` (a bool mask over ``index``) are not smooth within the step.

    ``coarse`` is the central :class:`~fastgc._core.schemes.Estimate` of ``index`` at step h, with
    its one-sided slopes ``forward`` and ``backward``; ``analytic`` the analytic values.

    From one step alone ``forward - backward = h J''`` exactly, so curvature and a kink look
    alike. A suspect whose slopes agree (by the verdict's rule) is smooth: no kink explains its
    failure, and it costs nothing more. The others get the central difference at h/16 (2
    evaluations each), and a kink shows in one of two ways:

    - *within the step*: the estimate moves, beyond the noise and enough to explain the
      failure, when a side stops crossing the kink (a smooth estimate moves by h^2 J'''/6);
    - *at the point* (a zero pre-activation, a tie in a max): the slopes stay apart at h/16,
      a jump, where a smooth coordinate's gap shrinks 16-fold. The central estimate is the
      average of the two slopes at every step there, so only this test sees it.
    """
    n = len(index)
    kinked = np.zeros(n, dtype=bool)
    f, b = coarse.forward, coarse.backward
    # a one-sided slope's rounding error is twice the central estimate's
    apart = suspects & ~agree(f, b, 2 * coarse.error, threshold)
    sel = np.flatnonzero(apart)[:MAX_RECHECKS]
    if sel.size == 0:
        return kinked
    c = coarse.numeric[sel]
    fine = central(objective, index[sel], coarse.step[sel] / _RECHECK)
    scale = np.abs(c) + np.sqrt(np.mean(coarse.numeric ** 2))
    # The move must explain the failure (half the discrepancy will do); 1e-3 relative always
    # does (a smooth estimate never moves that far at a sane step).
    explains = np.minimum(1e-3 * scale, 0.5 * np.abs(c - analytic[sel]))
    moved = np.abs(fine.numeric - c) > SAFETY * (coarse.error[sel] + fine.error) + explains
    gap = np.abs(f[sel] - b[sel])
    fine_gap = np.abs(fine.forward - fine.backward)
    stays = ~agree(fine.forward, fine.backward, 2 * fine.error, threshold) & (fine_gap > gap / 4)
    kinked[sel] = moved | stays
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
