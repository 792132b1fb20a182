"""The verdict: one rule, in one place, for blocks, entries, kinks and localisation.

An estimate ``a`` of a derivative agrees with the analytic value ``g`` when

    gap <= threshold * scale + SAFETY * error

with ``gap = |g - a|`` and ``scale = |g| + |a|`` for one item, or their norms over a block
(``||g - a||`` and ``||g|| + ||a||``, the exercise's relative difference), and ``error`` the
estimated numerical error of ``a`` (its norm, for a block). The relative threshold is what the
scheme resolves on a well-behaved cost; ``SAFETY x error`` keeps noise from passing for a wrong
gradient where the gradient is tiny. An entry's tolerance is the same sum, so a failing block
always has a discrepancy beyond noise to show.
"""

from __future__ import annotations

import numpy as np

# How many times the estimated numerical error a discrepancy may be and still count as noise.
SAFETY = 10.0
# A relative threshold at or above this lets through every wrong gradient short of a sign
# error (a relative difference is at most 1, a factor 2 gives 1/3): a check that needs one (a
# cost too noisy for its step) is inconclusive, never passed.
RESOLVABLE = 0.25
_TINY = float(np.finfo(np.float64).tiny)


def tolerance(scale, error, threshold: float):
    """``threshold * scale + SAFETY * error``: the largest gap that counts as agreement."""
    return threshold * scale + SAFETY * error


def agree(g, a, error, threshold: float):
    """Item by item: ``|g - a| <= threshold (|g| + |a|) + SAFETY * error`` (bool array)."""
    return np.abs(g - a) <= tolerance(np.abs(g) + np.abs(a), error, threshold)


def block_norms(block: np.ndarray, n_blocks: int, g, a, error, include) -> tuple:
    """Per block, over the items where ``include``: ``||g - a||``, ``||g|| + ||a||`` and
    ``||error||`` (arrays of ``n_blocks``; one pass over the items, however many blocks)."""
    w = include.astype(np.float64)

    def norms(x):
        return np.sqrt(np.bincount(block, weights=w * (x * x), minlength=n_blocks))

    return norms(g - a), norms(g) + norms(a), norms(error)


def blocks_agree(gap, scale, error_norm, threshold: float) -> np.ndarray:
    """The block rule on :func:`block_norms`' output (bool array)."""
    return gap <= tolerance(scale, error_norm, threshold)


def within_interval(g, low, high, error, threshold: float):
    """``low - tol <= g <= high + tol``, ``tol`` the rule's tolerance on ``|low| + |high|``:
    the one-sided judgement across a kink (the analytic value between the one-sided slopes)."""
    slack = tolerance(np.abs(low) + np.abs(high), error, threshold)
    return (g >= low - slack) & (g <= high + slack)


def score(g, a, error, threshold: float):
    """``|g - a|`` over its tolerance: how far each item is from passing (> 1 fails)."""
    tol = tolerance(np.abs(g) + np.abs(a), error, threshold)
    return np.abs(g - a) / np.where(tol > 0, tol, _TINY)


def relative_difference(g: np.ndarray, a: np.ndarray) -> float:
    """The exercise's ``||g - a|| / (||g|| + ||a||)``; 0 when both are zero."""
    numerator = np.linalg.norm(g - a)
    denominator = np.linalg.norm(g) + np.linalg.norm(a)
    return float(numerator / denominator) if denominator > 0 else 0.0
