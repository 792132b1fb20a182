"""Benchmarks of the dense-network kernel: a full central check (every coordinate at +h, -h),
a full complex-step check, and central differences along 8 random directions per block.

Run with ``python -m pytest bench/bench_network_kernel.py``; sizes above ``FASTGC_BENCH_MAX``
parameters (default 300,000) are skipped. The networks are ``fastgc bench``'s workloads.
"""

import os

import numpy as np
import pytest

from bench.harness import WORKLOADS
from fastgc._network import (
    complex_step_derivatives,
    coordinate_deltas,
    direction_deltas,
)

MAX_PARAMS = int(os.environ.get("FASTGC_BENCH_MAX", "300000"))

@pytest.fixture(scope="module", params=WORKLOADS, ids=[f"workload={w.name}" for w in WORKLOADS])
def workload(request):
    w = request.param
    if w.param_count > MAX_PARAMS:
        pytest.skip(f"{w.param_count} parameters > FASTGC_BENCH_MAX={MAX_PARAMS}")
    problem = w.build()
    net, theta, X, Y = problem.net, problem.theta, problem.X, problem.Y
    P = theta.size
    index = np.tile(np.arange(P, dtype=np.int64), 2)
    step = np.repeat([1e-7, -1e-7], P)
    coordinate_deltas(net, theta, X, Y, index[:64], step[:64])  # warm the JIT
    return w.title, net, theta, X, Y, index, step


def test_full_central_check(benchmark, workload):
    name, net, theta, X, Y, index, step = workload
    benchmark.group = name
    d = benchmark(coordinate_deltas, net, theta, X, Y, index, step)
    grad = np.concatenate([g.ravel() for g in net.gradients(net.unflatten(theta), X, Y).values()])
    P = theta.size
    approx = (d[:P] - d[P:]) / 2e-7
    # The timed result is a real gradient check, not just numbers.
    assert np.linalg.norm(approx - grad) <= 1e-6 * (np.linalg.norm(grad) + 1e-12)


def _gradient(net, theta, X, Y):
    grads = net.gradients(net.unflatten(theta), X, Y)
    return np.concatenate([g.ravel() for g in grads.values()])


def test_full_complex_step_check(benchmark, workload):
    name, net, theta, X, Y, index, _ = workload
    benchmark.group = name
    index = index[: theta.size]
    complex_step_derivatives(net, theta, X, Y, index[:64])  # warm the JIT
    d = benchmark(complex_step_derivatives, net, theta, X, Y, index)
    grad = _gradient(net, theta, X, Y)
    assert np.linalg.norm(d - grad) <= 1e-13 * (np.linalg.norm(grad) + 1e-300)


def test_block_directions_central(benchmark, workload):
    name, net, theta, X, Y, _, _ = workload
    benchmark.group = name
    rng = np.random.default_rng(2)
    starts = np.cumsum([0] + [a * b for _, (a, b) in net.param_shapes()])
    directions = [(np.arange(starts[b], starts[b + 1]), rng.standard_normal(starts[b + 1] -
                                                                           starts[b]))
                  for b in range(starts.size - 1) for _ in range(8)]  # fmt: skip
    n = len(directions)
    step = np.repeat([1e-6, -1e-6], n)
    direction_deltas(net, theta, X, Y, directions[:1], step[:1])  # warm the JIT
    d = benchmark(direction_deltas, net, theta, X, Y, directions * 2, step)
    grad = _gradient(net, theta, X, Y)
    numeric = (d[:n] - d[n:]) / 2e-6
    exact = np.array([grad[i] @ v for i, v in directions])
    # Relu kinks crossed within the step spoil a few directions; the typical one is exact.
    assert np.median(np.abs(numeric - exact) / (np.abs(exact) + 1e-3)) <= 1e-8
