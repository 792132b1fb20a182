"""The driver: plan -> scheme -> verdict -> result, the same for every mode and method.

The plan selects the items (coordinates or directions), the scheme measures them through the
evaluator, the verdict rule (``fastgc._core.verdict``) judges every block, and a failing block is
diagnosed: by the pattern of its wrong coordinates, or, for directions, by a factor confirmed
on fresh directions or by localising the wrong entries. The driver never asks which engine
runs or which method was named.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastgc._core.diagnosis import describe_localisation, diagnose, diagnose_factor
from fastgc._core.estimators import BoundedObjective
from fastgc._core.kinks import find_kinks, one_sided_interval
from fastgc._core.localise import localise_block
from fastgc._core.plan import random_direction
from fastgc._core.result import BlockResult, CheckResult, EntryTable
from fastgc._core.schemes import central, central_step, coordinate_steps
from fastgc._core.verdict import (
    RESOLVABLE,
    agree,
    block_norms,
    blocks_agree,
    relative_difference,
    score,
    tolerance,
    within_interval,
)

log = logging.getLogger(__name__)  # "fastgc._core.driver": a child of "fastgc"

# A factor fitted to a failing block's directional derivatives is confirmed on this many fresh
# directions before it is reported: a few ratios can agree by chance (a wrong entry or row then
# looks like "1.476 x"), all of them together only when the factor is real.
CONFIRM_DIRECTIONS = 6


@dataclass
class Measured:
    """What the scheme measured, one entry per checked item (coordinate or direction).

    ``kinked`` items crossed a kink within the step and are judged by ``consistent`` (the
    one-sided rule) instead of the threshold; elsewhere ``consistent`` is True.
    """

    block: np.ndarray
    analytic: np.ndarray
    numeric: np.ndarray
    error: np.ndarray
    kinked: np.ndarray
    consistent: np.ndarray
    smooth: np.ndarray | None = None  # one-sided differences agree, far from the analytic
    # kinks at the point whose analytic value lies outside the one-sided slopes (low, high)
    inconclusive: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    notes: tuple = ()  # what the scheme's estimate says about its steps (a domain edge)

    def wrong(self, threshold: float) -> np.ndarray:
        """Items that fail on their own: beyond tolerance (smooth ones), or outside the
        one-sided differences (kinked ones)."""
        beyond = ~agree(self.analytic, self.numeric, self.error, threshold)
        return (beyond & ~self.kinked) | ~self.consistent


@dataclass
class Problem:
    """The validated inputs of one check (see ``fastgc._check``)."""

    layout: object
    theta: np.ndarray
    analytic: np.ndarray
    ignored_keys: list
    eps: float | None
    threshold: float
    rng: np.random.Generator
    budget: int
    bounds: tuple | None = None  # (lower, upper), flat, for method "central"


def run(plan, scheme, evaluator, problem: Problem, start: float) -> CheckResult:
    """Run one check and build its result."""
    # A lower-precision cost cannot resolve the default threshold: raise it to what it can.
    noise = evaluator.cost_noise
    threshold = noise.threshold(problem.threshold)
    raised = threshold != problem.threshold
    if raised:
        problem = dataclasses.replace(problem, threshold=threshold)
    items = plan.select(problem.layout, problem.rng)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("plan %s: %d %s of %d parameters in %d blocks; scheme %s; threshold %.3g%s",
                  plan.name, len(items), plan.items, problem.layout.size,
                  len(problem.layout.blocks), scheme.name, problem.threshold,
                  " (raised for the cost's noise)" if raised else "")
        log.debug("step: %s", scheme.step_text(problem.eps, noise.central_step))
    if plan.items == "coordinates":
        measured = _measure_coordinates(scheme, evaluator, problem, items)
        diagnose_block = _CoordinateDiagnosis(items, measured)
    else:
        measured = _measure_directions(scheme, evaluator, problem, items)
        diagnose_block = _DirectionDiagnosis(scheme, evaluator, problem, measured)
    blocks, localised = judge_blocks(problem.layout, measured, problem.threshold,
                                     diagnose_block)
    if problem.threshold >= RESOLVABLE:
        blocks = _vacuous(blocks, problem.threshold)
    smooth = ~measured.kinked
    notes = (noise.notes(problem.threshold) + list(measured.notes)
             + plan.notes(problem.layout, items))
    if problem.layout.excluded:
        notes.append(f"excluded (not checked): {', '.join(problem.layout.excluded)}")
    if plan.items == "coordinates":
        index, numeric = items, _numeric_structure(problem.layout, items, measured.numeric)
        entries = _entry_table(problem, index, measured.numeric, measured.error)
        notes += _kink_notes(problem.layout, index, measured)
        kinks = [problem.layout.coordinate_name(int(i)) for i in index[measured.kinked]]
    else:
        index, numeric, kinks = localised, None, []
        entries = _localised_table(evaluator, problem, index)
    return CheckResult(
        difference=relative_difference(measured.analytic[smooth], measured.numeric[smooth]),
        passed=all(b.passed for b in blocks.values()),
        threshold=float(problem.threshold),
        blocks=blocks,
        numeric=numeric,
        nfev=int(evaluator.nfev),
        seconds=float(time.perf_counter() - start),
        engine=evaluator.name,
        path=evaluator.path,
        method=scheme.name,
        step=scheme.step_text(problem.eps, noise.central_step),
        checked=np.asarray(index),
        ignored_keys=list(problem.ignored_keys),
        notes=notes,
        kinks=kinks,
        inconclusive=[name for name, b in blocks.items() if b.inconclusive],
        threshold_rule=scheme.rule_text(problem.threshold),
        mode=plan.name,
        description=scheme.description,
        _entries=entries,
    )


class Diagnosis(NamedTuple):
    """What explains a failing block: the words, the evaluations spent finding them, and the
    single wrong entries localised on the way (flat indices; directions mode)."""

    text: str
    nfev: int = 0
    entries: tuple = ()


class Judged(NamedTuple):
    """The blocks' verdicts (name -> BlockResult) and every single wrong entry localised
    (sorted flat indices)."""

    blocks: dict
    localised: np.ndarray


def judge_blocks(layout, measured: Measured, threshold: float, diagnose_block) -> Judged:
    """The verdict for every block with checked items; ``diagnose_block(b, block, sel, wrong)``
    explains a failing one, returning a :class:`Diagnosis`.

    Kinked items are left out of the block's norms (they are judged one by one instead)."""
    n_blocks = len(layout.blocks)
    smooth = ~measured.kinked
    g, a, err, block_of = measured.analytic, measured.numeric, measured.error, measured.block
    gap, scale, noise = block_norms(block_of, n_blocks, g, a, err, smooth)
    passed = blocks_agree(gap, scale, noise, threshold)
    counts = np.bincount(block_of, minlength=n_blocks)
    kinks = np.bincount(block_of, weights=measured.kinked, minlength=n_blocks)
    inconsistent = np.bincount(block_of, weights=~measured.consistent, minlength=n_blocks)
    undecided = (np.zeros(len(g), dtype=bool) if measured.inconclusive is None
                 else measured.inconclusive)
    n_undecided = np.bincount(block_of, weights=undecided, minlength=n_blocks)
    largest = np.zeros(n_blocks)
    np.maximum.at(largest, block_of[smooth], np.abs(g - a)[smooth])
    wrong = None
    blocks, localised = {}, set()
    for b_i, block in enumerate(layout.blocks):
        if counts[b_i] == 0:
            continue
        ok = bool(passed[b_i]) and inconsistent[b_i] == 0 and n_undecided[b_i] == 0
        found = Diagnosis("ok")
        if not ok and passed[b_i] and inconsistent[b_i] == 0:
            found = Diagnosis(_inconclusive_text(block, np.flatnonzero(
                (block_of == b_i) & undecided), measured, diagnose_block))
        elif not ok:
            wrong = measured.wrong(threshold) if wrong is None else wrong
            sel = np.flatnonzero(block_of == b_i)
            found = diagnose_block(b_i, block, sel, wrong)
            localised.update(found.entries)
        difference = float(gap[b_i] / scale[b_i]) if scale[b_i] > 0 else 0.0
        blocks[block.name] = BlockResult(
            block.name, block.shape, int(counts[b_i]), difference, ok, float(largest[b_i]),
            float(noise[b_i]), found.text, found.nfev, kinks=int(kinks[b_i]),
            inconclusive=int(n_undecided[b_i]) if not ok and found.text.startswith(
                "inconclusive") else 0,
            tolerance=float(tolerance(scale[b_i], noise[b_i], threshold) / scale[b_i])
            if scale[b_i] > 0 else float("inf"))
    return Judged(blocks, np.array(sorted(localised), dtype=np.int64))


def _inconclusive_text(block, sel, measured, diagnose_block) -> str:
    """Why a block has no verdict: kinks at the point outside their one-sided slopes."""
    index = getattr(diagnose_block, "index", None)
    shown = []
    for j in sel[:3]:
        name = (block.entry_name(int(index[j] - block.offset)) if index is not None
                else f"item {int(j)}")
        shown.append(f"{name}: analytic {measured.analytic[j]:.6g}, one-sided slopes "
                     f"[{measured.low[j]:.6g}, {measured.high[j]:.6g}]")
    more = f" and {len(sel) - 3} more" if len(sel) > 3 else ""
    return (f"inconclusive: several pieces meet at the point in {len(sel)} entries (a kink at "
            "theta itself, the one-sided slopes apart at every step); the chain rule's value "
            "depends on the choice of derivative at the kink: " + "; ".join(shown) + more
            + ". For a verdict, check at a point off the kink (e.g. the inputs shifted by a "
            "small seeded random amount)")


def _vacuous(blocks: dict, threshold: float) -> dict:
    """Blocks judged at a threshold no difference can exceed get no verdict: the passed ones
    become inconclusive (the failed ones failed even so)."""
    text = (f"inconclusive: the cost's noise allows only a relative threshold of "
            f"{threshold:.2g}, which no wrong gradient short of a sign error exceeds; use a "
            "higher-precision cost, a larger eps, or method='richardson'")
    return {name: (dataclasses.replace(b, passed=False, diagnosis=text, inconclusive=b.count)
                   if b.passed else b) for name, b in blocks.items()}


# ---- coordinates (full and subset plans) ---------------------------------------------------
def _measure_coordinates(scheme, evaluator, problem: Problem, index) -> Measured:
    layout, theta, analytic = problem.layout, problem.theta, problem.analytic
    if problem.bounds is not None:
        evaluator = BoundedObjective(evaluator, theta, *problem.bounds)
    estimate = scheme.estimate(evaluator, theta, index, problem.eps)
    scheme.validate(evaluator, layout, theta, index, estimate, problem.rng)
    n = len(index)
    kinked, inconclusive = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    consistent = np.ones(n, dtype=bool)
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    if scheme.looks_for_kinks:
        found = find_kinks(evaluator, scheme, analytic, index, estimate, problem.threshold)
        kinked, estimate = found.kinked, found.estimate
        consistent[kinked], low[kinked], high[kinked] = one_sided_interval(
            evaluator, analytic, index[kinked], estimate.step[kinked], problem.threshold)
        # Several pieces meet at the point (a kink at theta itself, the slopes apart at every
        # step) and the analytic value lies outside them but between them and 0: what the
        # chain rule gives with derivative 0 at each of several kinks (relu'(0) = 0 on an
        # all-zero input row: units switched on by +h and by -h, none by the chain rule). Its
        # value depends on the choice at the kink, so no verdict, not a failure; beyond 0 and
        # the slopes no choice explains it, and it fails.
        g = analytic[index]
        inconclusive = (found.at_point & ~consistent
                        & within_interval(g, np.minimum(low, 0.0), np.maximum(high, 0.0),
                                          0.0, max(problem.threshold, 1e-6)))
        consistent |= inconclusive
    smooth = None
    if estimate.forward is not None:
        # the one-sided slopes agree with each other ten times better than with the analytic
        # value: the cost is smooth there, whatever the analytic value is
        gap = np.abs(estimate.forward - estimate.backward)
        smooth = gap <= 0.1 * np.abs(analytic[index] - estimate.numeric)
    return Measured(layout.block_index(index), analytic[index], estimate.numeric,
                    estimate.error, kinked, consistent, smooth, inconclusive, low, high,
                    estimate.notes)


class _CoordinateDiagnosis:
    """A failing block of coordinates: kinked entries outside their one-sided differences, or
    the pattern of its wrong entries (factor, transpose, rows, columns, entries)."""

    def __init__(self, index, measured):
        self.index, self.m = index, measured

    def __call__(self, b_i, block, sel, wrong):
        local = self.index[sel] - block.offset
        inconsistent = ~self.m.consistent[sel]
        if inconsistent.any():
            bad = [block.entry_name(int(i)) for i in local[inconsistent][:5]]
            return Diagnosis(f"{int(inconsistent.sum())} entries lie outside the one-sided "
                             f"differences across a kink: {', '.join(bad)}")
        smooth = None if self.m.smooth is None else self.m.smooth[sel]
        return Diagnosis(diagnose(block, self.m.analytic[sel], self.m.numeric[sel], wrong[sel],
                                  local, smooth))


def _numeric_structure(layout, index, numeric):
    flat = np.full(layout.size, np.nan)
    flat[index] = numeric
    # NaN where not checked, excluded entries included
    return layout.assemble([flat[b.offset : b.stop].reshape(b.shape) for b in layout.blocks],
                           fill=np.nan)


def _entry_table(problem, index, numeric, error) -> EntryTable:
    g = problem.analytic[index]
    return EntryTable(problem.layout, np.asarray(index), g, numeric, error,
                      score(g, numeric, error, problem.threshold))


def _kink_notes(layout, index, measured) -> list[str]:
    kinked, consistent = measured.kinked, measured.consistent
    n_kinks = int(kinked.sum())
    if not n_kinks:
        return []
    names = [layout.coordinate_name(int(i)) for i in index[kinked][:5]]
    more = f" and {n_kinks - 5} more" if n_kinks > 5 else ""
    undecided = (0 if measured.inconclusive is None
                 else int(np.count_nonzero(measured.inconclusive)))
    parts = [f"{int((~consistent).sum())} inconsistent"] if not consistent.all() else []
    if undecided:
        parts.append(f"{undecided} inconclusive (kinks at the point, the analytic value outside "
                     "the slopes)")
    verdict = "; ".join(parts) if parts else "all consistent"
    return [f"{n_kinks} coordinate(s) not differentiable within the step (a kink crossed by "
            "the step or at the point itself, result.kinks lists each): "
            f"{', '.join(names)}{more}; judged against the one-sided differences instead: "
            f"{verdict}"]


# ---- directions ------------------------------------------------------------------------------
def _measure_directions(scheme, evaluator, problem: Problem, directions) -> Measured:
    checked = scheme.estimate_directions(evaluator, problem.analytic, problem.theta,
                                         directions, problem.eps)
    n = len(directions)
    return Measured(np.array([d.block for d in directions], dtype=np.int64), checked.analytic,
                    checked.numeric, checked.error, np.zeros(n, dtype=bool),
                    np.ones(n, dtype=bool))


class _DirectionDiagnosis:
    """A failing block in directions mode: a constant factor when fresh directions confirm
    it, else the wrong entries (or rows, columns) found by bisection within ``budget``."""

    def __init__(self, scheme, evaluator, problem, measured):
        self.scheme, self.evaluator, self.p, self.m = scheme, evaluator, problem, measured

    def __call__(self, b_i, block, sel, wrong):
        p = self.p
        g, a = self.m.analytic[sel], self.m.numeric[sel]
        factor = self._confirmed_factor(b_i, block, g, a)
        if factor is not None:
            return Diagnosis(factor)
        if p.budget <= 0:
            return Diagnosis("the directional derivatives disagree (localisation disabled)")
        # A part holding the error shows at least about the block's relative difference (more
        # as parts shrink); a correct part only noise. A tenth of the block's difference
        # separates the two better than the verdict threshold, which a small error barely
        # crosses.
        local_threshold = min(p.threshold, relative_difference(g, a) / 10)
        found = localise_block(self.evaluator, p.analytic, p.theta, b_i, block, local_threshold,
                               p.eps, p.rng, p.budget)
        return Diagnosis(describe_localisation(block, found), found.nfev,
                         tuple(int(i) for grp in found.groups if len(grp) == 1 for i in grp))

    def _confirmed_factor(self, b_i, block, g, a) -> str | None:
        text = diagnose_factor(block, g, a, min_items=2)
        if text is None:
            return None
        p = self.p
        indices = np.arange(block.offset, block.stop, dtype=np.int64)
        fresh = [random_direction(p.rng, b_i, indices) for _ in range(CONFIRM_DIRECTIONS)]
        more = self.scheme.estimate_directions(self.evaluator, p.analytic, p.theta, fresh, p.eps)
        return diagnose_factor(block, np.concatenate([g, more.analytic]),
                               np.concatenate([a, more.numeric]), min_items=2)


def _localised_table(evaluator, p: Problem, index) -> EntryTable | None:
    """The localised single entries, estimated by central differences for the report."""
    if not index.size:
        return None
    estimate = central(evaluator, index,
                       coordinate_steps(p.theta, index, p.eps, central_step(evaluator)))
    return _entry_table(p, index, estimate.numeric, estimate.error)
