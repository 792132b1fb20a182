"""Kinks: coordinates whose step crosses a point where the cost is not differentiable.

A ReLU kink (or abs, max) inside a step spoils that coordinate's finite difference: the
estimate mixes the slopes of both sides. Such a coordinate is not a wrong gradient; it is found
here and judged against the one-sided differences instead of the threshold. A failing
coordinate that is smooth is re-estimated at smaller steps instead, which removes the central
difference's truncation error (the error that fails a correct gradient of ~0 at a minimiser).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from fastgc._core.estimators import central
from fastgc._core.verdict import SAFETY, agree, within_interval

_EPS = float(np.finfo(np.float64).eps)
# The one-sided judgement's relative floor: one-sided differences are first-order accurate, so
# they cannot support a threshold below this.
_ONE_SIDED_FLOOR = 1e-6


@dataclass
class KinkFinding:
    """What the kink follow-ups found, one entry per checked coordinate.

    Attributes
    ----------
    kinked : ndarray of bool
        Not differentiable within the step: judged by the one-sided rule.
    at_point : ndarray of bool
        Of those, a kink at theta itself (the one-sided slopes stay apart as the step shrinks):
        several pieces meet there, and the chain rule's value is a choice among them.
    estimate : Estimate
        The scheme's estimate, with smooth failing coordinates re-estimated at smaller steps.
    """

    kinked: np.ndarray
    at_point: np.ndarray
    estimate: object


def find_kinks(objective, scheme, analytic, index, estimate, threshold: float) -> KinkFinding:
    """Which checked coordinates' steps cross a kink of the cost, and for the smooth failing
    ones an estimate without the central difference's truncation error.

    Only suspects are examined (the scheme says which: failing coordinates, and for Richardson
    also those whose error estimate is large); a kink that spoils nothing needs no report. The
    network engine then knows exactly (a ReLU pre-activation changes sign within +/-h, either
    side). For a black-box cost the scheme's own policy decides (:func:`refine_suspects` for
    the central schemes).
    """
    failing = ~agree(analytic[index], estimate.numeric, estimate.error, threshold)
    suspects = scheme.kink_suspects(failing, estimate)
    if estimate.one_sided is not None:
        suspects = suspects & ~estimate.one_sided  # no steps towards the closed side
    none = np.zeros(len(index), dtype=bool)
    sel = np.flatnonzero(suspects)
    if sel.size == 0:
        return KinkFinding(none, none.copy(), estimate)
    h0 = estimate.first_step
    exact = objective.kink_mask(index[sel], h0[sel])
    if exact is not None:
        kinked = none.copy()
        kinked[sel] = exact | objective.kink_mask(index[sel], -h0[sel])
        if estimate.forward is None:
            return KinkFinding(kinked, none.copy(), estimate)
        # the smooth failing coordinates: their truncation error measured and removed
        found = refine_suspects(objective, index, estimate, suspects & ~kinked,
                                analytic[index], threshold)
        return KinkFinding(kinked, none.copy(), found.estimate)
    found = scheme.black_box_kinks(objective, index, estimate, suspects, analytic[index],
                                   threshold)
    if isinstance(found, KinkFinding):
        return found
    return KinkFinding(np.asarray(found, dtype=bool), none.copy(), estimate)


# Above this many suspects, the follow-ups at smaller steps are capped (black-box costs).
MAX_RECHECKS = 2000
# A smooth coordinate's central estimate moves by (1 - 4^-k) h^2 J'''/6 when the step is cut by
# 2^k, so its moves from h to h/2 and from h/2 to h/4 are in the ratio 4; they count as h^2
# scaling when the ratio is 4 within this fraction of the larger move (an h^4 term, noise).
_RATIO_SLACK = 0.1
# A kink is at the point when the one-sided slopes stay apart at h / _AT_POINT too.
_AT_POINT = 1024


def refine_suspects(objective, index, coarse, suspects, analytic, threshold: float):
    """Kinks among ``suspects`` (a bool mask over ``index``), and an estimate of the smooth
    ones without the truncation error: a :class:`KinkFinding`.

    ``coarse`` is the central :class:`~fastgc._core.schemes.Estimate` of ``index`` at step h,
    with its one-sided slopes ``forward`` and ``backward``; ``analytic`` the analytic values
    of ``index``. From one step alone ``forward - backward = h J''`` exactly, so
    curvature and a kink look alike; smaller steps tell them apart:

    - every suspect gets the central difference at h/4 (2 evaluations). A smooth coordinate's
      slopes come 4 times closer (curvature: ``h J''``); a kink *at the point* (a zero
      pre-activation, a tie in a max) keeps them apart at every step, h/1024 too (2 more
      evaluations where they stay apart at h/4: a kink 1e-7 away is not at the point);
    - where the estimate moved enough to matter (half the failure, or 1e-3 relative), h/2 too
      (2 more): a smooth estimate moves as ``h^2`` (its moves from h to h/2 and from h/2 to
      h/4 are in the ratio 4); one whose larger steps cross a kink *within the step* does not;
    - a smooth suspect is re-estimated by extrapolating its finer steps, which removes the
      ``h^2 J'''/6`` truncation; the error estimate adds a quarter of the last correction (what
      the extrapolation may still miss) to the rounding the combination amplifies.
    """
    n = len(index)
    kinked = np.zeros(n, dtype=bool)
    at_point = np.zeros(n, dtype=bool)
    sel = np.flatnonzero(suspects)[:MAX_RECHECKS]
    if sel.size == 0:
        return KinkFinding(kinked, at_point, coarse)
    g = analytic[sel]
    h = coarse.step[sel]
    f1, b1 = coarse.forward[sel], coarse.backward[sel]
    # theta + h is rounded to a float: the step taken differs from h by up to eps |theta + h|,
    # which moves each one-sided slope by that fraction of itself. Negligible where the
    # gradient is (slopes ~ g), it dominates at a minimiser (slopes ~ +-h J''/2 >> g ~ 0).
    theta = getattr(objective, "theta", None)
    size = np.abs(theta[index[sel]]) + h if theta is not None else h * 1e5  # |theta + h|
    slip = _EPS * size / h * (np.abs(f1) + np.abs(b1))
    d1, e1 = coarse.numeric[sel], coarse.error[sel] + slip
    quarter = central(objective, index[sel], h / 4)
    d4, e4 = quarter.numeric, quarter.error + 4 * slip
    # a one-sided slope's rounding error is twice the central estimate's
    gap1, gap4 = np.abs(f1 - b1), np.abs(quarter.forward - quarter.backward)
    point = (~agree(f1, b1, 2 * e1, threshold)
             & ~agree(quarter.forward, quarter.backward, 2 * e4, threshold)
             & (gap4 > gap1 / 2))
    # The move matters when it explains half the failure, or 1e-3 relative (a smooth estimate
    # moves less at a sane step; the ratio test below decides either way)
    scale = np.abs(d1) + np.sqrt(np.mean(coarse.numeric ** 2))
    explains = np.minimum(1e-3 * scale, 0.5 * np.abs(d1 - g))
    moved = np.abs(d1 - d4) > SAFETY * (e1 + e4) + explains
    # A kink near theta but not at it (1e-7 away, inside h/4) also keeps the slopes apart at
    # h/4; at h/1024 it no longer does, one at theta itself still does (2 evaluations each).
    near = np.zeros(sel.size, dtype=bool)
    cand = np.flatnonzero(point)
    if cand.size:
        tiny = central(objective, index[sel[cand]], h[cand] / _AT_POINT)
        stays = (~agree(tiny.forward, tiny.backward, 2 * (tiny.error + _AT_POINT * slip[cand]),
                        threshold)
                 & (np.abs(tiny.forward - tiny.backward) > gap1[cand] / 2))
        near[cand] = ~stays
        point[cand] = stays
    # (16 D(h/4) - D(h)) / 15 cancels the h^2 term
    numeric, error = d4 + (d4 - d1) / 15, (16 * e4 + e1) / 15
    correction = np.abs(d4 - d1) / 15
    within = np.zeros(sel.size, dtype=bool)
    second = np.flatnonzero(moved & ~point)
    if second.size:
        half = central(objective, index[sel[second]], h[second] / 2)
        d2, e2 = half.numeric, half.error + 2 * slip[second]
        m1, m2 = d1[second] - d2, d2 - d4[second]
        noise = SAFETY * (e1[second] + 5 * e2 + 4 * e4[second])
        within[second] = (np.abs(m1 - 4 * m2)
                          > _RATIO_SLACK * np.maximum(np.abs(m1), 4 * np.abs(m2)) + noise)
        # and the slopes' gap (h J'' + O(h^3)) shrinks in proportion to the step: a kink that
        # only the larger steps cross adds a jump to their gap alone
        g1 = f1[second] - b1[second]
        g4 = quarter.forward[second] - quarter.backward[second]
        gap_noise = SAFETY * 2 * (e1[second] + 4 * e4[second])
        within[second] |= (np.abs(g1 - 4 * g4)
                           > _RATIO_SLACK * np.maximum(np.abs(g1), 4 * np.abs(g4)) + gap_noise)
        # (4 D(h/4) - D(h/2)) / 3: the finest pair
        numeric[second] = d4[second] + (d4[second] - d2) / 3
        error[second] = (4 * e4[second] + e2) / 3
        correction[second] = np.abs(d4[second] - d2) / 3
    within |= near
    kinked[sel] = point | within
    at_point[sel] = point
    error = error + 0.25 * correction
    # The finer steps' rounding is larger: the extrapolation replaces the estimate at h only
    # where it is the more accurate one, counting the truncation at h that the finer steps
    # resolved (their move beyond the noise).
    truncation = np.maximum(0.0, np.abs(d1 - d4) - (e1 + e4)) * 16 / 15
    better = ~(point | within) & (error < e1 + truncation)
    new_numeric, new_error = coarse.numeric.copy(), coarse.error.copy()
    new_numeric[sel[better]] = numeric[better]
    new_error[sel] = np.where(better, error, e1)  # e1: with the step's own rounding
    return KinkFinding(kinked, at_point,
                       dataclasses.replace(coarse, numeric=new_numeric, error=new_error))


def one_sided_consistent(objective, analytic, index, step, threshold: float) -> np.ndarray:
    """Whether each analytic value lies within the one-sided differences around theta
    (:func:`one_sided_interval`'s first result)."""
    return one_sided_interval(objective, analytic, index, step, threshold)[0]


def one_sided_interval(objective, analytic, index, step, threshold: float) -> tuple:
    """``(consistent, low, high)``: whether each analytic value lies within the one-sided
    differences around theta, and the interval they span.

    Across a kink the derivative at theta is the one-sided derivative of the side that does not
    cross it. Each side is estimated at h and h/2 and extrapolated, ``2 D(h/2) - D(h)``, which
    removes the O(h f'') curvature error; ``|D(h/2) - D(h)|`` widens the side's interval by
    what the extrapolation may still miss (a kink inside the side, or higher-order curvature).
    4 evaluations per coordinate.
    """
    if len(index) == 0:
        empty = np.zeros(0)
        return np.zeros(0, dtype=bool), empty, empty
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
    consistent = within_interval(analytic[index], lo, hi, 4 * noise / step,
                                 max(threshold, _ONE_SIDED_FLOOR))
    return consistent, lo, hi
