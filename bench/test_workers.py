"""pytest-benchmark: one check against ``workers=``.

``python -m pytest bench/test_workers.py``. The ``mnist`` workload of ``fastgc bench``
(784-256-128-10, relu, softmax/CE, m=64, ``params = net.init(seed=0)``). Groups:

- **workers-loop**: a black-box numpy cost (the network's numpy forward, one call per perturbed
  point: the exercise's loop) on a seeded subset of ``FASTGC_BENCH_WORKERS_COORDINATES``
  coordinates (default 400), central differences;
- **workers-network**: the network engine's full check.

Worker counts come from ``FASTGC_BENCH_WORKERS`` (default ``1,2``; 1 is in this process).
Each case is warmed up first (pool started, kernels compiled, engines built) and its result
asserted bit-identical to the in-process check. ``fastgc bench --workers 1,2,4`` prints the
same measurement as a table with speed-up and efficiency.
"""

import os

import numpy as np
import pytest

import fastgc
from bench import harness as _bench

WORKERS = [int(w) for w in os.environ.get("FASTGC_BENCH_WORKERS", "1,2").split(",")]
COORDINATES = int(os.environ.get("FASTGC_BENCH_WORKERS_COORDINATES", "400"))
ROUNDS = int(os.environ.get("FASTGC_BENCH_ROUNDS", "3"))


@pytest.fixture(scope="module")
def mnist():
    return _bench.workload("mnist").build()


def _numpy_cost(net):
    return lambda p, X, Y: net(p, X, Y)  # a plain callable: fastgc cannot see inside


@pytest.fixture(scope="module")
def references(mnist):
    p = mnist
    return {
        "loop": fastgc.check(_numpy_cost(p.net), p.grads, p.params, p.X, p.Y, engine="loop",
                             subset=COORDINATES),
        "network": fastgc.check(p.net, p.grads, p.params, p.X, p.Y),
    }


@pytest.mark.parametrize("workers", WORKERS, ids=[f"workers={w}" for w in WORKERS])
@pytest.mark.parametrize("engine", ["loop", "network"], ids=["engine=loop", "engine=network"])
def test_check_time_against_workers(benchmark, mnist, references, engine, workers):
    p = mnist
    benchmark.group = f"workers-{engine}"
    cost = _numpy_cost(p.net) if engine == "loop" else p.net
    options = {"subset": COORDINATES} if engine == "loop" else {}

    def run():
        return fastgc.check(cost, p.grads, p.params, p.X, p.Y, engine=engine,
                            workers=None if workers == 1 else workers, **options)

    run()  # warm-up
    result = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    assert result.passed
    assert np.array_equal(p.net.flatten(result.numeric),
                          p.net.flatten(references[engine].numeric), equal_nan=True)
