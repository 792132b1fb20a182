"""pytest-benchmark: the fixed costs around the estimate, each next to what it is added to.

``python -m pytest bench/test_overhead.py``. Two groups:

- **progress**: a full ``fastgc.check`` of the MNIST-sized network (784-256-128-10, relu,
  softmax/CE, m=64, ``params = net.init(seed=0)``, seeded standard normal ``X``, one-hot ``Y``:
  the ``mnist`` workload of ``fastgc bench``) with ``progress=False`` and ``progress=True``,
  central and Richardson. With the bar on, the check's coordinates are cut into chunks and a
  line is written after each; the bar goes to ``os.devnull`` so that it is drawn (a write per
  chunk, as to a terminal) but not shown. ``extra_info["ratio_to_progress_off"]`` on the
  ``progress=True`` rows is their median over the ``progress=False`` median of the same run.
- **small check**: a full ``fastgc.check(net, grads, params, X, Y)`` of the exercise's
  47-parameter network (4-5-3-1, relu/sigmoid/bce, the exercise's own data), and the network
  kernel alone (``coordinate_deltas`` on every +h/-h pair, the bench's ``kernel`` contender)
  on the same problem: the difference is the per-call cost of validation, layout, the
  engine's set-up and the result.

Every timed call is warmed up first (JIT compile or cache load outside the timing) and its
result asserted. Richardson rows above ``FASTGC_BENCH_RICHARDSON_MAX`` parameters are skipped:
the default, 100,000, skips the MNIST-sized network (P = 235,146), whose Richardson check took
about 19 s a call on the 2-core development VM under load;
``FASTGC_BENCH_RICHARDSON_MAX=300000`` runs it.
"""

import contextlib
import io
import os

import numpy as np
import pytest

import fastgc
from bench import harness as _bench

RICHARDSON_MAX = int(os.environ.get("FASTGC_BENCH_RICHARDSON_MAX", "100000"))
ROUNDS = int(os.environ.get("FASTGC_BENCH_ROUNDS", "3"))


@pytest.fixture(scope="module")
def mnist():
    return _bench.workload("mnist").build()


@pytest.fixture(scope="module")
def exercise():
    return _bench.workload("exercise").build()


@pytest.fixture(scope="module")
def medians():
    """Medians of the progress=False rows, for the progress=True rows' ratio."""
    return {}


def _check(problem, method, progress, stream):
    # The bar captures sys.stderr when the check starts: redirect around the whole call.
    with contextlib.redirect_stderr(stream):
        return fastgc.check(problem.net, problem.grads, problem.params, problem.X, problem.Y,
                            method=method, progress=progress)


@pytest.mark.parametrize("method", ["central", "richardson"], ids=lambda m: f"method={m}")
@pytest.mark.parametrize("progress", [False, True], ids=lambda p: f"progress={p}")
def test_progress(benchmark, mnist, medians, method, progress):
    if method == "richardson" and mnist.P > RICHARDSON_MAX:
        pytest.skip(f"P = {mnist.P:,} > FASTGC_BENCH_RICHARDSON_MAX={RICHARDSON_MAX:,}")
    seen = io.StringIO()
    warm = _check(mnist, method, progress, seen)  # warm-up, and proof the bar is drawn
    assert warm.passed, warm.report()
    assert ("fastgc [" in seen.getvalue()) == progress
    benchmark.group = f"progress: full {method} check, {mnist.workload.title}"
    with open(os.devnull, "w") as devnull:
        result = benchmark.pedantic(_check, args=(mnist, method, progress, devnull),
                                    rounds=ROUNDS, iterations=1, warmup_rounds=0)
    assert result.passed, result.report()
    assert result.nfev == warm.nfev
    np.testing.assert_array_equal(mnist.net.flatten(result.numeric),
                                  mnist.net.flatten(warm.numeric))  # the bar changes nothing
    benchmark.extra_info.update(params=mnist.P, nfev=result.nfev)
    if benchmark.stats is None:  # --benchmark-disable: nothing was timed
        return
    median = benchmark.stats.stats.median
    if not progress:
        medians[method] = median
    elif method in medians:
        benchmark.extra_info["ratio_to_progress_off"] = median / medians[method]


def test_small_check(benchmark, exercise):
    p = exercise
    assert p.P == 47

    def run():
        return fastgc.check(p.net, p.grads, p.params, p.X, p.Y)

    warm = run()  # warm-up: JIT compile or cache load outside the timing
    assert warm.passed, warm.report()
    benchmark.group = f"small check: {p.workload.title}"
    result = benchmark.pedantic(run, rounds=max(ROUNDS, 200), iterations=1, warmup_rounds=5)
    assert result.passed, result.report()
    assert result.nfev == 2 * p.P + 1
    np.testing.assert_allclose(p.net.flatten(result.numeric), p.reference, rtol=1e-6,
                               atol=1e-9)
    benchmark.extra_info.update(params=p.P, nfev=result.nfev)


def test_small_kernel_alone(benchmark, exercise):
    p = exercise
    kernel = next(c for c in _bench.CONTENDERS if c.name == "kernel")
    plan = _bench.plan(kernel, p)
    _bench.verify(plan, plan.run())  # warm-up, verified
    benchmark.group = f"small check: {p.workload.title}"
    outcome = benchmark.pedantic(plan.run, rounds=max(ROUNDS, 200), iterations=1,
                                 warmup_rounds=5)
    _bench.verify(plan, outcome)
    assert outcome.nfev == 2 * p.P
    benchmark.extra_info.update(params=p.P, nfev=outcome.nfev)
