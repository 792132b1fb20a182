"""Planning, measuring and verifying: how a contender is timed on a problem, and the run.

:func:`plan` decides between a full check and a seeded subset to extrapolate from;
:func:`measure` warms up, times, verifies every timed result against the reference backprop
and records memory; :func:`run_bench` runs the table of every workload and returns the raw
numbers that ``--json`` writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bench.harness.contenders import CONTENDERS, Contender, Outcome
from bench.harness.machine import dgemm_gflops, flop_floor_seconds, machine_info, startup_rows
from bench.harness.report import fmt_seconds, format_table, plot, targets
from bench.harness.workloads import WORKLOADS, Problem

__all__ = ["Plan", "Row", "main", "measure", "plan", "run_bench", "subset_index", "verify"]

# Quick mode: a row whose first timed call takes longer than this is timed once, without the
# memory run (keeps ``fastgc bench`` within a few minutes on two cores).
SLOW_SECONDS = 1.5

# How many coordinates are compared with the reference backprop after a timed call.
SAMPLE = 200


def subset_index(problem: Problem, size: int, seed: int = 0) -> np.ndarray:
    """A seeded subset of about ``size`` coordinates spread over every block (sorted).

    fastgc's own stratified plan (``fastgc.check(..., subset=size, seed=seed)`` checks the
    same coordinates): each block gets a share proportional to its size and at least
    ``fastgc._core.plan.MIN_PER_BLOCK`` coordinates (or all of a smaller block), so the count can
    exceed ``size`` by those minimums.

    Parameters
    ----------
    problem : Problem
    size : int
    seed : int

    Returns
    -------
    ndarray of int64
        Indices into ``problem.theta``.
    """
    from fastgc._core.layout import Layout
    from fastgc._core.plan import subset_plan

    # The layout in the network's flat order (W1, b1, W2, ...), the order of problem.theta.
    layout, _ = Layout.of({name: problem.params[name] for name, _ in problem.net.param_shapes()})
    return subset_plan(layout, int(size), np.random.default_rng(seed))


@dataclass
class Plan:
    """How a contender is timed on a problem: ``run()`` and the factor to a full check."""

    contender: Contender
    problem: Problem
    call: Callable
    index: np.ndarray | None
    scale: float

    @property
    def extrapolated(self) -> bool:
        """Whether the time is scaled from a subset of coordinates."""
        return self.index is not None

    def run(self) -> Outcome:
        """One timed call."""
        return self.call(self.index)


def plan(contender: Contender, problem: Problem, full: bool = False) -> Plan:
    """Prepare ``contender`` on ``problem``: a full check, or a subset to extrapolate from.

    Parameters
    ----------
    contender : Contender
    problem : Problem
    full : bool
        Full mode: caps 10 x higher and subsets 4 x larger than quick mode.

    Returns
    -------
    Plan
    """
    call = contender.make(problem)
    cap = contender.full_cap
    if cap is not None and full:
        cap *= 10
    if cap is None or problem.P <= cap or not contender.subsettable:
        return Plan(contender, problem, call, None, 1.0)
    index = subset_index(problem, contender.subset * (4 if full else 1))
    return Plan(contender, problem, call, index, problem.P / index.size)


def verify(plan_: Plan, outcome: Outcome) -> None:
    """Assert that a timed call's result is right.

    The numeric gradient matches the reference backprop on a sample of coordinates (98 % of
    them within ``1e-4`` relative plus ``1e-6 x max|g|`` absolute: a step across a relu kink
    may spoil a coordinate), and a contender's own verdict is "passed" (the exercise's loop
    excepted: its verdict is reported, not asserted, since eps = 1e-7 cannot reach its
    threshold on large costs).

    Raises
    ------
    AssertionError
        With the contender, the workload and what disagreed.
    """
    c, p = plan_.contender, plan_.problem
    where = f"{c.name} on {p.workload.name}"
    if outcome.numeric is not None:
        index = np.arange(p.P) if outcome.index is None else np.asarray(outcome.index)
        numeric = np.asarray(outcome.numeric, dtype=np.float64)
        assert numeric.shape == index.shape, f"{where}: numeric has shape {numeric.shape}"
        pick = np.random.default_rng(0).choice(index.size, min(SAMPLE, index.size),
                                               replace=False)
        g, a = p.reference[index[pick]], numeric[pick]
        tol = 1e-4 * np.abs(g) + 1e-6 * max(np.abs(p.reference).max(), 1e-12)
        good = np.abs(g - a) <= tol
        assert good.mean() >= 0.98, (
            f"{where}: numeric gradient disagrees with the reference at "
            f"{int((~good).sum())} of {good.size} sampled coordinates "
            f"(worst abs error {np.abs(g - a).max():.3g})"
        )
    if outcome.error_norm is not None:
        assert outcome.passed, f"{where}: ||g - a|| = {outcome.error_norm:.3g} too large"
    if outcome.passed is not None and not c.exercise_threshold:
        assert outcome.passed, f"{where}: verdict 'failed' on a correct gradient"


@dataclass
class Row:
    """One measured row: a contender on a workload (all times in seconds)."""

    workload: str
    contender: str
    label: str
    params: int
    status: str = "ok"
    seconds: float = math.nan
    times: list = field(default_factory=list)
    extrapolated: bool = False
    subset: int | None = None
    nfev: int | None = None
    peak_bytes: int | None = None
    memory_traced: bool = True
    passed: bool | None = None
    speedup: float | None = None


def _peak_bytes(plan_: Plan) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        plan_.run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(contender: Contender, problem: Problem, repeat: int = 3, full: bool = False,
            memory: bool = True, strict: bool = False) -> Row:
    """Time ``contender`` on ``problem``: warm-up, ``repeat`` timed calls, verified results.

    Parameters
    ----------
    contender : Contender
    problem : Problem
    repeat : int
        Timed calls; the row's ``seconds`` is their median (scaled to a full check when
        extrapolated).
    full : bool
        Full mode (see :func:`plan`).
    memory : bool
        Also measure the tracemalloc peak of one more (untimed) call.
    strict : bool
        Raise when a result is wrong (see :func:`verify`); otherwise the row's status says
        ``"WRONG RESULT: ..."`` and the run goes on.

    Returns
    -------
    Row
    """
    w = problem.workload
    row = Row(w.name, contender.name, contender.label, problem.P,
              memory_traced=contender.traced_memory)
    reason = contender.skip_reason(problem)
    if reason is not None:
        row.status = f"skipped: {reason}"
        return row
    p = plan(contender, problem, full=full)
    try:
        outcome = p.run()  # warm-up: JIT compile or cache load outside the timing
    except NotImplementedError as exc:  # an engine without this method or mode
        row.status = f"skipped: {exc}"
        return row
    times = []
    try:
        verify(p, outcome)
        for _ in range(repeat):
            start = time.perf_counter()
            outcome = p.run()
            times.append(time.perf_counter() - start)
            verify(p, outcome)
            # Quick mode: a slow row is timed once, without a memory run. Judged on a timed
            # call, not on the warm-up, which includes the JIT compile of a fresh install.
            if not full and times[-1] > SLOW_SECONDS:
                memory = False
                break
    except AssertionError as exc:
        if strict:
            raise
        row.status = f"WRONG RESULT: {exc}"
        return row
    scale = p.scale
    if p.extrapolated and outcome.index is not None:
        scale = problem.P / len(outcome.index)  # what was really checked (fastgc's subset)
    row.times = times
    row.seconds = float(np.median(times)) * scale
    row.extrapolated = p.extrapolated
    row.subset = None if not p.extrapolated else int(round(problem.P / scale))
    row.nfev = int(round(outcome.nfev * scale))
    row.passed = outcome.passed
    if memory:
        row.peak_bytes = _peak_bytes(p)
    return row


def run_bench(workloads=None, repeat: int = 3, full: bool = False, contenders=None,
              startup: bool = True, memory: bool = True, out=print) -> dict:
    """Run the comparison and print a table per workload.

    Parameters
    ----------
    workloads : sequence of str, optional
        Names from :data:`WORKLOADS` (default: all).
    repeat : int
        Timed calls per row (median).
    full : bool
        Full mode: larger caps and subsets (slower, fewer extrapolated rows).
    contenders : sequence of str, optional
        Names from :data:`CONTENDERS` (default: all; the exercise's loop always runs, as the
        baseline).
    startup : bool
        Also measure import time, cold JIT compile and the first check in a fresh process.
    memory : bool
        Measure the tracemalloc peak of each row (one more untimed call).
    out : callable
        Where lines go (``print``; ``lambda s: None`` for silence).

    Returns
    -------
    dict
        The raw numbers (what ``--json`` writes): ``machine``, ``dgemm_gflops``, ``rows``,
        ``floors``, ``startup``, ``targets``.
    """
    names = [w.name for w in WORKLOADS]
    chosen = list(names if workloads is None else workloads)
    unknown = [w for w in chosen if w not in names]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {names}")
    table = [c for c in CONTENDERS
             if contenders is None or c.name in contenders or c.name == "exercise-loop"]
    machine = machine_info()
    gflops = max(dgemm_gflops() for _ in range(3))  # best of 3 processes: the VM is noisy
    gflops_1 = dgemm_gflops(threads=1)
    out(f"machine: {machine['cpu']}, {machine['cores']} cores; numpy {machine['numpy']} with "
        f"{machine['blas']} (BLAS threads in this run: {machine['blas_threads']}); numba "
        f"{machine.get('numba', '?')} with {machine.get('numba_threads', '?')} threads")
    out(f"DGEMM (2000x2000 np.matmul, float64): {gflops:.1f} GFLOP/s all cores, "
        f"{gflops_1:.1f} GFLOP/s one thread")
    out(f"times: median of {repeat} after a warm-up; * = extrapolated from a subset of "
        "coordinates (time x P / subset); peak MiB = tracemalloc peak of one call "
        "(numpy/Python allocations; † = not traced: torch's allocator)\n")
    rows, floors = [], {}
    for w in WORKLOADS:
        if w.name not in chosen:
            continue
        problem = w.build()
        wrows = [measure(c, problem, repeat=repeat, full=full, memory=memory) for c in table]
        base = wrows[0]
        for r in wrows:
            if r.status == "ok" and base.status == "ok":
                r.speedup = base.seconds / r.seconds
        floors[w.name] = flop_floor_seconds(w.dims, w.m, gflops)
        out(format_table(w, wrows, floors[w.name]) + "\n")
        rows += wrows
    starts = startup_rows(repeat) if startup else []
    if starts:
        out("startup (subprocesses, median):")
        for s in starts:
            out(f"  {s['name']:<44}{fmt_seconds(s['seconds']):>15}  {s['note']}")
        out("")
    goals = targets(rows, floors, starts)
    out("issue targets:")
    for t in goals:
        v = t["measured"]
        verdict = "n/a (not run)" if t["met"] is None else ("met" if t["met"] else "NOT met")
        shown = "-" if v is None else f"{v:.3g}"
        out(f"  {t['target']:<62} measured {shown:>8}  {verdict}")
    return {
        "machine": machine,
        "dgemm_gflops": gflops,
        "dgemm_gflops_one_thread": gflops_1,
        "repeat": repeat,
        "full": full,
        "workloads": {w.name: {"dims": list(w.dims), "loss": w.loss, "m": w.m,
                               "params": w.param_count, "title": w.title}
                      for w in WORKLOADS if w.name in chosen},
        "rows": [dataclasses.asdict(r) for r in rows],
        "floors": floors,
        "startup": starts,
        "targets": goals,
    }


def main(workloads=None, repeat=3, full=False, json_path=None, plot_path=None,
         contenders=None, startup=True) -> int:
    """``fastgc bench``: run, print, and write ``--json`` / ``--plot``; returns 0."""
    if plot_path is not None:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise SystemExit("fastgc bench: --plot needs matplotlib: pip install \".[plot]\"")
    data = run_bench(workloads=workloads, repeat=repeat, full=full, contenders=contenders,
                     startup=startup)
    if json_path is not None:
        with open(json_path, "w") as fh:
            json.dump(data, fh, indent=1, default=float)
        print(f"wrote {json_path}")
    if plot_path is not None:
        plot(data, plot_path)
        print(f"wrote {plot_path}")
    return 0
