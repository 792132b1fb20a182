"""pytest-benchmark: every contender of ``bench.harness.CONTENDERS`` on every workload.

Run with ``python -m pytest bench/`` (outside the default test run). One benchmark per
(contender, workload), grouped per workload; each call is warmed up first and its result is
verified against the reference backprop. Rows whose full check would take too long are timed on
a subset of coordinates: ``extra_info["extrapolated"]`` is then true and
``extra_info["full_check_seconds"]`` is the median scaled by ``P / subset``. A peer that is not
installed is skipped with the reason. ``FASTGC_BENCH_FULL=1`` uses the full-mode caps.
"""

import os

import pytest

from bench import harness as _bench

FULL = os.environ.get("FASTGC_BENCH_FULL") == "1"
ROUNDS = int(os.environ.get("FASTGC_BENCH_ROUNDS", "3"))

CASES = [(c, w) for w in _bench.WORKLOADS for c in _bench.CONTENDERS]


def _id(case):
    contender, workload = case[0].name, case[1].name
    return f"{contender=}-{workload=}"


@pytest.fixture(scope="module")
def problems():
    return {}


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_check(benchmark, problems, case):
    contender, workload = case
    if contender.requires is not None:
        pytest.importorskip(contender.requires)
    if workload.name not in problems:
        problems[workload.name] = workload.build()
    problem = problems[workload.name]
    reason = contender.skip_reason(problem)
    if reason is not None:
        pytest.skip(reason)
    plan = _bench.plan(contender, problem, full=FULL)
    try:
        _bench.verify(plan, plan.run())  # warm-up (JIT compile / cache load), verified
    except NotImplementedError as exc:
        pytest.skip(str(exc))
    benchmark.group = f"{workload.name}: {workload.title}"
    outcome = benchmark.pedantic(plan.run, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    _bench.verify(plan, outcome)
    scale = problem.P / len(outcome.index) if plan.extrapolated else 1.0
    benchmark.extra_info.update(params=problem.P, nfev=outcome.nfev,
                                extrapolated=plan.extrapolated, scale=scale)
    if benchmark.stats is not None:  # None under --benchmark-disable: nothing was timed
        benchmark.extra_info["full_check_seconds"] = benchmark.stats.stats.median * scale
