"""Plans: which derivatives to estimate.

- every coordinate (the exercise's check; 2 evaluations per parameter);
- a seeded, per-block stratified subset of coordinates (``subset=k`` or a fraction);
- random directions per block (``directions=k``): each direction perturbs one block and costs one
  +/- pair whatever the block's size.

Randomness is drawn here, in Python, from a seeded ``numpy.random.Generator`` and handed to the
engines as arrays: the same seed gives the same coordinates and directions on every engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Every block gets at least this many checked coordinates in subset mode (a block this small is
# checked whole), so that a small block (a bias) is never left out by proportional allocation.
MIN_PER_BLOCK = 8


@dataclass
class Direction:
    """A random direction supported on some coordinates of one block.

    ``indices`` are flat coordinates, ``values`` the direction's entries on them (unit norm).
    """

    block: int
    indices: np.ndarray
    values: np.ndarray


def full_plan(layout) -> np.ndarray:
    """Every coordinate, in order."""
    return np.arange(layout.size, dtype=np.int64)


def subset_sizes(layout, subset) -> list[int]:
    """Coordinates to check per block for ``subset`` (an int count or a float fraction).

    The total is shared in proportion to block size, with at least ``MIN_PER_BLOCK`` per block
    (or the whole block when it is smaller), so the result can exceed an int ``subset`` by the
    minimums.
    """
    total = layout.size
    target = subset if isinstance(subset, int) else math.ceil(subset * total)
    sizes = []
    for b in layout.blocks:
        share = math.ceil(target * b.size / total)
        sizes.append(min(b.size, max(MIN_PER_BLOCK, share)))
    return sizes


def subset_plan(layout, subset, rng: np.random.Generator) -> np.ndarray:
    """A stratified random subset of coordinates, drawn without replacement per block, sorted."""
    chosen = []
    for b, k in zip(layout.blocks, subset_sizes(layout, subset), strict=True):
        local = np.arange(b.size) if k == b.size else rng.choice(b.size, size=k, replace=False)
        chosen.append(b.offset + np.sort(local))
    return np.concatenate(chosen).astype(np.int64)


def miss_probability(block_size: int, checked: int, fraction: float) -> float:
    """Probability that a subset of ``checked`` of ``block_size`` coordinates, drawn without
    replacement, contains none of the ``ceil(fraction * block_size)`` wrong ones."""
    wrong = max(1, math.ceil(fraction * block_size))
    if checked + wrong > block_size:
        return 0.0
    # C(n - w, k) / C(n, k) = prod_{j<k} (n - w - j) / (n - j), in logs to avoid overflow
    log_p = sum(math.log1p(-wrong / (block_size - j)) for j in range(checked))
    return math.exp(log_p)


def random_direction(rng: np.random.Generator, block: int, indices: np.ndarray) -> Direction:
    """A direction on ``indices`` with iid standard normal entries, scaled to unit norm.

    Gaussian entries make the directional test blind only on a set of measure zero: for any
    fixed nonzero error e, e . v = 0 has probability 0 (with +/-1 entries two equal and
    opposite errors cancel half of the time). Unit norm keeps the step's size, and so the
    truncation error, that of a single-coordinate step.
    """
    values = rng.standard_normal(len(indices))
    norm = np.linalg.norm(values)
    if norm == 0.0:  # probability zero; keep the direction well defined anyway
        values[0], norm = 1.0, 1.0
    values /= norm  # in place: a block-sized array less
    return Direction(block, np.asarray(indices, dtype=np.int64), values)


def directions_plan(layout, k: int, rng: np.random.Generator) -> list[Direction]:
    """``k`` random directions per block, each supported on the whole block."""
    plan = []
    for b_i, b in enumerate(layout.blocks):
        indices = np.arange(b.offset, b.stop, dtype=np.int64)
        plan.extend(random_direction(rng, b_i, indices) for _ in range(k))
    return plan


# ---- the plans -------------------------------------------------------------------------------
# A plan is a mode of checking: it selects the items (coordinates or directions) and says what
# the report must add about its coverage. The driver runs every plan the same way.
class FullPlan:
    """Every coordinate: the exercise's check, 2 evaluations per parameter with central."""

    name = "full"
    items = "coordinates"

    def select(self, layout, rng) -> np.ndarray:
        return full_plan(layout)

    def notes(self, layout, index) -> list[str]:
        return []


class SubsetPlan:
    """A seeded, per-block stratified subset of ``subset`` coordinates (an int count, or a
    float fraction in (0, 1])."""

    name = "subset"
    items = "coordinates"

    def __init__(self, subset):
        self.subset = subset

    def select(self, layout, rng) -> np.ndarray:
        return subset_plan(layout, self.subset, rng)

    def notes(self, layout, index) -> list[str]:
        counts = np.bincount(layout.block_index(index), minlength=len(layout.blocks))
        parts = []
        for b, k in zip(layout.blocks, counts, strict=True):
            if k == b.size:
                parts.append(f"{b.name} whole")
            else:
                # a single wrong entry is checked with probability k/n, whatever the seed
                parts.append(f"{b.name} {k}/{b.size}: {miss_probability(b.size, int(k), 0.01):.2g}"
                             f" (1%), {1 - k / b.size:.2g} (one entry)")
        return ["subset check, so a pass is probabilistic: the chance that a bug touching 1% "
                "of a block's entries, or a single wrong entry, goes unseen is "
                + "; ".join(parts)]


class DirectionsPlan:
    """``directions`` Gaussian directions per block, each a +/- pair at two steps."""

    name = "directions"
    items = "directions"

    def __init__(self, directions: int):
        self.directions = directions

    def select(self, layout, rng) -> list[Direction]:
        return directions_plan(layout, self.directions, rng)

    def notes(self, layout, directions) -> list[str]:
        return [f"directions mode: {self.directions} Gaussian direction(s) per block; g.v is "
                "compared with central differences along v at h and h/2, extrapolated (4 "
                "evaluations per direction). A wrong gradient goes unseen only on a set of "
                "directions of measure zero, or when its error along v is within the tolerance "
                "(roughly threshold x ||g_block|| in norm, or the estimated error)"]


def make_plan(subset=None, directions=None):
    """The plan for ``check``'s ``subset=``/``directions=`` options (both None: every
    coordinate)."""
    if directions is not None:
        return DirectionsPlan(directions)
    if subset is not None:
        return SubsetPlan(subset)
    return FullPlan()
