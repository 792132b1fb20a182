"""Localisation of wrong entries by bisection, in directions mode.

Each part is checked along a random direction supported on it (the two-step directional
scheme, ``fastgc._core.estimators.two_step_directions``: 4 evaluations whatever the part's
size). When a block fails, its coordinates are split into groups (rows of a matrix, or single
entries), and groups are bisected: a random direction supported on each half is checked, and
only failing halves are split further. A single wrong entry among n is found with about
``8 log2(n)`` evaluations instead of ``2n``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastgc._core.estimators import TWO_STEP_NFEV, two_step_directions
from fastgc._core.plan import random_direction

# When more than this many groups fail at one level of the bisection, the wrong entries are
# spread out (a whole row zeroed, a scaled block): stop splitting and report the groups.
MAX_FAILING_GROUPS = 4
DEFAULT_BUDGET = 400  # cost evaluations per failing block
RETRIES = 2  # fresh directions for a level where no half shows the parent's error


@dataclass
class Localisation:
    """What the bisection of one failing block found.

    Attributes
    ----------
    groups : list of ndarray
        The wrong groups (single entries, or rows/columns when the block is bisected by rows
        or columns), as arrays of flat coordinates.
    kind : str
        ``"entries"``, ``"rows"`` or ``"columns"``.
    broad : bool
        True when more than a few groups failed at one level: the error is spread out and the
        listed groups are the failing parts at that level, not single culprits.
    nfev : int
        Cost evaluations the localisation took.
    exhausted : bool
        True when the budget ran out before the bisection finished.
    """

    groups: list = field(default_factory=list)
    kind: str = "entries"
    broad: bool = False
    nfev: int = 0
    exhausted: bool = False


def bisect_groups(objective, analytic_flat, theta, block_index, groups, threshold, eps, rng,
                  budget) -> Localisation:
    """Find the failing groups among ``groups`` (lists of flat coordinates) by bisection.

    A level's halves are checked only when their checks fit in what is left of ``budget``
    (``TWO_STEP_NFEV`` evaluations per half, every retry included), so ``nfev``, the sum of
    what the checks report, never exceeds ``budget``.
    """
    result = Localisation()

    def joined(level):
        return [np.concatenate([groups[g] for g in h]) for h in level]

    level = [list(range(len(groups)))]
    while level:
        halves = []
        for members in level:
            if len(members) == 1:
                halves.append(members)
            else:
                mid = len(members) // 2
                halves.extend([members[:mid], members[mid:]])
        cost = TWO_STEP_NFEV * len(halves)
        failing, tries = None, 0
        # A part that failed has at least one failing half; when none shows (a direction nearly
        # blind to the error, by chance), draw new directions before giving up on the level.
        while tries < 1 + RETRIES and result.nfev + cost <= budget:
            directions = [random_direction(rng, block_index,
                                           np.concatenate([groups[g] for g in h]))
                          for h in halves]
            check = two_step_directions(objective, analytic_flat, theta, directions, eps)
            result.nfev += check.nfev
            failing, tries = check.failing(threshold), tries + 1
            if failing.any():
                break
        if failing is None or (not failing.any() and tries < 1 + RETRIES):
            # the budget ran out before this level was decided
            result.exhausted = True
            result.groups = joined(level)
            break
        level = [h for h, bad in zip(halves, failing, strict=True) if bad]
        if len(level) > MAX_FAILING_GROUPS:
            result.broad = True
            result.groups = joined(level)
            break
        done = [h for h in level if len(h) == 1]
        result.groups.extend(groups[h[0]] for h in done)
        level = [h for h in level if len(h) > 1]
    return result


def localise_block(objective, analytic_flat, theta, block_index, block, threshold, eps, rng,
                   budget=DEFAULT_BUDGET) -> Localisation:
    """Name the wrong entries of a failing block (or its wrong rows/columns).

    A matrix is bisected by rows first; a wrong row is then bisected by entries, unless the
    error is spread along it (then the row is reported). When most rows fail, the error runs
    along columns (or the whole block): columns are bisected instead.
    """
    offsets = block.offset + np.arange(block.size).reshape(block.shape if block.shape else (1,))
    if offsets.ndim != 2 or min(offsets.shape) == 1:
        entries = [np.array([i]) for i in offsets.ravel()]
        return bisect_groups(objective, analytic_flat, theta, block_index, entries, threshold,
                             eps, rng, budget)
    rows = bisect_groups(objective, analytic_flat, theta, block_index, list(offsets), threshold,
                         eps, rng, budget)
    spent = rows.nfev
    if rows.broad or rows.exhausted:
        cols = bisect_groups(objective, analytic_flat, theta, block_index, list(offsets.T),
                             threshold, eps, rng, budget - spent)
        cols.nfev += spent
        cols.kind = "columns"
        if cols.broad or cols.exhausted or not cols.groups:
            rows.kind, rows.nfev = "rows", cols.nfev
            return rows
        return cols
    found = Localisation(kind="entries")
    for row in rows.groups:
        inner = bisect_groups(objective, analytic_flat, theta, block_index,
                              [np.array([i]) for i in row], threshold, eps, rng,
                              budget - spent)
        spent += inner.nfev
        if inner.broad:
            # The error runs along the row (a zeroed or scaled row): the row is the culprit.
            found.groups.append(row)
        else:
            found.groups.extend(inner.groups)
        found.exhausted |= inner.exhausted
    found.nfev = spent
    return found
