"""pytest-benchmark: randomised modes on a dense network of about 10^6 parameters.

``python -m pytest bench/test_modes.py``. The workload is 784-1024-128-10 (relu, softmax/CE,
m=32, 936,330 parameters). Rows: ``directions=2`` on the correct gradient; ``directions=2`` with
one wrong entry (detection plus localisation); ``subset=k`` for k = 1,000, 10,000 and 100,000,
to show that subset mode's cost follows k, not P. Each timed call is warmed up and its verdict
asserted.
"""

import numpy as np
import pytest

import fastgc
from bench.harness import Workload

# Seeded as fastgc bench's workloads: params init(0), data seed 1.
WORKLOAD = Workload("modes", (784, 1024, 128, 10), "ce", 32)


@pytest.fixture(scope="module")
def problem():
    p = WORKLOAD.build()
    net, params, X, Y, grads = p.net, p.params, p.X, p.Y, p.grads
    wrong = {k: v.copy() for k, v in grads.items()}
    W = wrong["dW1"]
    entry = np.unravel_index(np.argmax(np.abs(W)), W.shape)
    W[entry] *= 1 + 1e-3
    return net, params, X, Y, grads, wrong, entry


def _run(benchmark, fn):
    fn()  # warm-up: JIT compile or cache load outside the timing
    return benchmark.pedantic(fn, rounds=5, iterations=1)


def test_directions_correct(benchmark, problem):
    net, params, X, Y, grads, _, _ = problem
    benchmark.group = "modes on 784-1024-128-10 (936k params)"
    result = _run(benchmark, lambda: fastgc.check(net, grads, params, X, Y, directions=2))
    assert result.passed
    benchmark.extra_info.update(nfev=result.nfev, params=net.param_count)


def test_directions_wrong_entry_localised(benchmark, problem):
    net, params, X, Y, _, wrong, entry = problem
    benchmark.group = "modes on 784-1024-128-10 (936k params)"
    result = _run(benchmark, lambda: fastgc.check(net, wrong, params, X, Y, directions=2))
    assert not result.passed
    assert result.blocks["W1"].diagnosis.startswith(f"localised to W1[{entry[0]}, {entry[1]}]")
    benchmark.extra_info.update(nfev=result.nfev, params=net.param_count)


@pytest.mark.parametrize("k", [1_000, 10_000, 100_000], ids=lambda k: f"subset={k}")
def test_subset(benchmark, problem, k):
    net, params, X, Y, grads, _, _ = problem
    benchmark.group = "modes on 784-1024-128-10 (936k params)"
    result = _run(benchmark, lambda: fastgc.check(net, grads, params, X, Y, subset=k))
    assert result.passed
    assert result.nfev == 2 * result.checked.size + 1
    benchmark.extra_info.update(nfev=result.nfev, params=net.param_count,
                                checked=int(result.checked.size))
