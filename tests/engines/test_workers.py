"""``workers=``: fastgc's own pool, any Executor and a dask.distributed cluster.

The reference is the same check with ``workers=None``: a check on workers must compute the same
bits (numeric gradient, differences, diagnosis, kinks, nfev), since the chunks are the same and
are joined by index. Problems are small but span several chunks, so assembly is exercised.
"""

import concurrent.futures
import dataclasses
import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest
from problems import network_problem

import fastgc
from fastgc import WorkerError
from fastgc._engines import workers as _workers

loky = pytest.importorskip("loky")

DIMS = [20, 12, 1]  # 265 parameters: a full central check is 3 chunks, richardson about 11


def numpy_net(params, X, Y):
    """The exercise's forward pass with a tanh hidden layer (complex-safe), mean squared loss."""
    A1 = np.tanh(params["W1"] @ X + params["b1"])
    A2 = params["W2"] @ A1 + params["b2"]
    return 0.5 * np.sum((A2 - Y) ** 2) / X.shape[1]


def numpy_net_grad(params, X, Y):
    m = X.shape[1]
    A1 = np.tanh(params["W1"] @ X + params["b1"])
    dZ2 = (params["W2"] @ A1 + params["b2"] - Y) / m
    dZ1 = (params["W2"].T @ dZ2) * (1 - A1**2)
    return {"W1": dZ1 @ X.T, "b1": dZ1.sum(1, keepdims=True), "W2": dZ2 @ A1.T,
            "b2": dZ2.sum(1, keepdims=True)}


@pytest.fixture(scope="module")
def loop_problem():
    params, X, Y = network_problem(DIMS, 16, "normal", 0, 1)
    grad = numpy_net_grad(params, X, Y)
    grad["W2"] = 1.5 * grad["W2"]  # a factor, confirmed on fresh directions
    grad["W1"][3, 5] += 0.1  # one wrong entry: localised in directions mode
    # A lambda closing over nothing picklable by reference: only cloudpickle can send it.
    return (lambda p, X, Y: numpy_net(p, X, Y)), grad, params, X, Y


@pytest.fixture(scope="module")
def network_problem_():
    net = fastgc.MLP(DIMS, loss="mse")  # relu hidden layer: kinks, exactly detected
    params, X, Y = network_problem(DIMS, 16, "normal", 2, 3)
    X[0, :4] = 0.0  # zero inputs: perturbations that change nothing
    grad = net.gradients(params, X, Y)
    grad = {k: v.copy() for k, v in grad.items()}  # "dW1", ... as the exercise names them
    grad["db1"][2] += 1e-3
    return net, grad, params, X, Y


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def fingerprint(r):
    """Everything a check reports, except the time it took."""
    numeric = r.numeric
    if isinstance(numeric, dict):
        numeric = [np.asarray(v).tobytes() for v in numeric.values()]
    elif numeric is not None:
        numeric = np.asarray(numeric).tobytes()
    blocks = [(b.name, b.count, b.difference, b.passed, b.max_abs_error, b.noise, b.diagnosis,
               b.localisation_nfev, b.kinks) for b in r.blocks.values()]
    return (r.passed, r.difference, r.nfev, numeric, blocks, r.checked.tolist(), r.kinks,
            r.notes, r.method, r.mode, [dataclasses.astuple(e) for e in r.worst(5)])


MODES = [("full", {}), ("subset", {"subset": 0.5}), ("directions", {"directions": 4})]
CASES = [(mode, method, options) for mode, options in MODES
         for method in (("central",) if mode == "directions"
                        else ("central", "richardson", "complex"))]
CASE_IDS = [f"{mode}-{method}" for mode, method, _ in CASES]


def _same_as_in_process(problem, workers, method, options):
    cost, grad, params, X, Y = problem
    alone = fastgc.check(cost, grad, params, X, Y, method=method, **options)
    spread = fastgc.check(cost, grad, params, X, Y, method=method, workers=workers, **options)
    assert fingerprint(spread) == fingerprint(alone)
    return alone


@pytest.mark.parametrize("mode, method, options", CASES, ids=CASE_IDS)
def test_own_pool_loop_engine_is_bit_identical(loop_problem, mode, method, options):
    r = _same_as_in_process(loop_problem, 2, method, options)
    assert r.engine == "loop" and not r.passed  # the wrong entry is seen


@pytest.mark.parametrize("mode, method, options", CASES, ids=CASE_IDS)
def test_own_pool_network_engine_is_bit_identical(network_problem_, mode, method, options):
    r = _same_as_in_process(network_problem_, 2, method, options)
    assert r.engine == "network"


@pytest.mark.parametrize("mode, method, options", CASES, ids=CASE_IDS)
def test_dask_cluster_is_bit_identical(cluster, loop_problem, network_problem_, mode, method,
                                       options):
    _same_as_in_process(loop_problem, cluster, method, options)
    _same_as_in_process(network_problem_, cluster, method, options)


@pytest.mark.parametrize("backend", ["own", "dask"])
def test_engine_is_built_once_per_worker(request, loop_problem, tmp_path, backend):
    _, grad, params, X, Y = loop_problem
    workers = 2 if backend == "own" else request.getfixturevalue("cluster")
    log, parent, base = str(tmp_path / "builds"), os.getpid(), params["W1"].copy()

    def cost(p, X, Y):
        if os.getpid() != parent and all(np.array_equal(p[k], params[k]) for k in params):
            with open(log, "a") as f:  # a worker building its engine evaluates J(theta)
                f.write(f"{os.getpid()}\n")
        return numpy_net(p, X, Y)

    # (central: richardson's scipy stencil evaluates the centre point too)
    r = fastgc.check(cost, grad, params, X, Y, workers=workers)
    assert np.array_equal(params["W1"], base)
    builds = open(log).read().split()
    assert 1 <= len(builds) <= 2 and len(set(builds)) == len(builds)  # <= once per worker
    assert r.nfev == fastgc.check(numpy_net, grad, params, X, Y).nfev
    assert not _workers._ENGINES  # nothing was built in the parent


def test_numba_and_stacked_engines_on_workers():
    import numba

    rng = np.random.default_rng(4)
    A = rng.standard_normal((40, 300)) / 20
    theta = rng.standard_normal(300)

    def quartic(t, A):
        return 0.25 * np.sum((A @ t) ** 4)

    @fastgc.batched
    def stacked(t, A):
        return 0.25 * np.sum(np.matmul(A, t[..., None])[..., 0] ** 4, axis=-1)

    grad = A.T @ (A @ theta) ** 3
    for cost in (numba.njit(quartic), stacked):
        alone = fastgc.check(cost, grad, theta, A)
        spread = fastgc.check(cost, grad, theta, A, workers=2)
        assert spread.engine == alone.engine != "loop"
        assert fingerprint(spread) == fingerprint(alone)


def test_any_executor_is_used_and_not_shut_down(loop_problem):
    cost, grad, params, X, Y = loop_problem
    alone = fastgc.check(cost, grad, params, X, Y)
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as processes, \
            concurrent.futures.ThreadPoolExecutor(2) as threads:
        for executor in (processes, threads):
            spread = fastgc.check(cost, grad, params, X, Y, workers=executor)
            assert fingerprint(spread) == fingerprint(alone)
            assert executor.submit(int, "7").result() == 7  # still open


def test_user_arrays_are_never_touched(loop_problem):
    cost, grad, params, X, Y = loop_problem
    before = [a.copy() for a in (*params.values(), X, Y)]
    with concurrent.futures.ThreadPoolExecutor(2) as threads:  # shares memory with the user
        fastgc.check(cost, grad, params, X, Y, method="richardson", workers=threads)
    for a, b in zip((*params.values(), X, Y), before, strict=True):
        assert np.array_equal(a, b) and a.flags.writeable


def test_progress_follows_completed_chunks(loop_problem, capfd):
    cost, grad, params, X, Y = loop_problem
    fastgc.check(cost, grad, params, X, Y, workers=2, progress=True)
    err = capfd.readouterr().err
    n = 2 * 265
    assert "256/530 evaluations" in err or "512/530 evaluations" in err
    assert f"{n}/{n} evaluations" in err


# ---- validation and pickling ---------------------------------------------------------------
@pytest.mark.parametrize("workers, match", [(0, "positive int or -1"),
                                            (-2, "positive int or -1")])
def test_bad_worker_counts(workers, match):
    with pytest.raises(ValueError, match=match):
        fastgc.check(np.sum, np.ones(2), np.ones(2), workers=workers)


@pytest.mark.parametrize("workers", [True, 2.0, "2", [2]])
def test_bad_worker_types(workers):
    with pytest.raises(TypeError, match="workers must be None, an int"):
        fastgc.check(np.sum, np.ones(2), np.ones(2), workers=workers)


def test_worker_counts_normalised():
    assert _workers.validate_workers(None) is None
    assert _workers.validate_workers(1) is None
    assert _workers.validate_workers(np.int64(3)) == 3
    assert _workers.validate_workers(-1) in (None, _workers.cores())


def test_unpicklable_cost_is_named():
    lock = threading.Lock()

    def cost(x):
        with lock:
            return float(np.sum(x**2))

    with pytest.raises(TypeError, match="the cost's closure variable 'lock' cannot be sent"):
        fastgc.check(cost, lambda x: 2 * x, np.ones(3), workers=2)


def test_unpicklable_argument_is_named():
    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"args\[1\] cannot be sent to worker processes"):
        fastgc.check(lambda x, a, b: float(np.sum(a * x**2)), lambda x, a, b: 2 * a * x,
                     np.ones(3), 1.0, lock, workers=2)


# ---- dead workers and Ctrl-C -----------------------------------------------------------------
def _dying_cost(marker, victim, parent, once):
    """A cost that kills the worker process evaluating a perturbation of ``victim`` (once, or
    every time), never the parent."""

    def cost(p, X, Y):
        if os.getpid() != parent and p["W1"][0, 0] != victim and (
                not once or not os.path.exists(marker)):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return numpy_net(p, X, Y)

    return cost


def test_worker_killed_mid_check_loses_nothing(loop_problem, tmp_path):
    _, grad, params, X, Y = loop_problem
    alone = fastgc.check(numpy_net, grad, params, X, Y)
    cost = _dying_cost(str(tmp_path / "died"), params["W1"][0, 0], os.getpid(), once=True)
    spread = fastgc.check(cost, grad, params, X, Y, workers=2)
    assert (tmp_path / "died").exists()  # a worker did die
    assert fingerprint(spread) == fingerprint(alone)


def test_a_chunk_that_kills_its_worker_twice_is_reported(loop_problem, tmp_path):
    _, grad, params, X, Y = loop_problem
    cost = _dying_cost(str(tmp_path / "died"), params["W1"][0, 0], os.getpid(), once=False)
    # Both chunks holding W1[0, 0] (its +h and its -h) kill their worker: one is reported.
    with pytest.raises(WorkerError, match=r"died 2 times while evaluating coordinates "
                                          r"\w+\[.+\] to \w+\[.+\] \(256 points\)"):
        fastgc.check(cost, grad, params, X, Y, workers=2)
    # fastgc's pool is usable again afterwards
    r = fastgc.check(numpy_net, grad, params, X, Y, workers=2)
    assert r.nfev == fastgc.check(numpy_net, grad, params, X, Y).nfev


def _slow_cost(p, X, Y):
    time.sleep(0.002)  # 530 evaluations: about half a second per worker per full check
    return numpy_net(p, X, Y)


def _interrupt_after(seconds):
    sent = []

    def send():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(seconds, send)
    timer.start()
    return sent


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="SIGINT is delivered to the main thread")
def test_ctrl_c_returns_promptly_and_kills_own_pool(loop_problem):
    _, grad, params, X, Y = loop_problem
    fastgc.check(numpy_net, grad, params, X, Y, workers=2)  # the pool is up
    processes = list(_workers._OWN_POOL["executor"]._processes.values())
    sent = _interrupt_after(0.5)
    with pytest.raises(KeyboardInterrupt):
        fastgc.check(_slow_cost, grad, params, X, Y, method="richardson", workers=2)
    assert time.perf_counter() - sent[0] < 1.0
    deadline = time.perf_counter() + 5
    while any(p.is_alive() for p in processes) and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert not any(p.is_alive() for p in processes)  # no worker left busy


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="SIGINT is delivered to the main thread")
def test_ctrl_c_cancels_dask_work(cluster, loop_problem):
    _, grad, params, X, Y = loop_problem
    sent = _interrupt_after(1.0)
    with pytest.raises(KeyboardInterrupt):
        fastgc.check(_slow_cost, grad, params, X, Y, method="richardson", workers=cluster)
    assert time.perf_counter() - sent[0] < 1.0
    # Queued chunks are cancelled; a running one (at most one per worker) finishes on its own.
    deadline = time.perf_counter() + 10
    while any(cluster.processing().values()) and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert not any(cluster.processing().values())


def _pid(_):
    time.sleep(0.05)  # long enough that both processes take some
    return os.getpid()


class _CountingExecutor(concurrent.futures.ProcessPoolExecutor):
    """Counts the chunks submitted, and those that carry the check's spec (the data sent to a
    worker)."""

    specs = 0
    chunks = 0

    def submit(self, fn, *args, **kwargs):
        if fn is _workers.evaluate_chunk:
            type(self).chunks += 1
            type(self).specs += args[1] is not None
        return super().submit(fn, *args, **kwargs)


def test_spec_is_sent_about_once_per_worker(loop_problem):
    cost, grad, params, X, Y = loop_problem
    with _CountingExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        # Both processes started first: a spawn start takes seconds on a loaded machine, and a
        # worker still starting leaves its first chunks to the other.
        executor_pids = set(executor.map(_pid, range(8)))
        assert executor_pids
        # richardson: a dozen chunks in several requests
        r = fastgc.check(cost, grad, params, X, Y, method="richardson", workers=executor)
    assert r.nfev > 3000
    # One per worker, plus one for each chunk that reached a worker before its spec did: at
    # most the chunks in flight at once (2 per worker) when a worker starts late (a loaded
    # machine). Far fewer than one per chunk either way.
    assert 2 <= _CountingExecutor.specs <= 2 + 2 * 2
    assert _CountingExecutor.specs < _CountingExecutor.chunks


def test_scaling_bench_rows():
    from bench.harness.scaling import format_scaling, scaling_rows

    rows = scaling_rows((1, 2), repeat=1, name="exercise", coordinates=20)
    assert [(r["engine"], r["workers"]) for r in rows] == [
        ("loop", 1), ("loop", 2), ("network", 1), ("network", 2)]
    assert rows[0]["efficiency"] == 1.0 and all(r["seconds"] > 0 for r in rows)
    assert "efficiency" in format_scaling(rows, name="exercise", coordinates=20)


def test_workers_never_get_more_blas_threads_than_this_process():
    # A numpy cost's products can round differently with another BLAS thread count: a user
    # who pins BLAS to one thread gets one thread in every worker, hence the same bits from
    # any worker count (measured on 16 cores: 8 BLAS threads per worker changed the last bits
    # of a 784-256-128-10 numpy cost).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        assert _workers.parent_blas_threads() == 1
        assert _workers._worker_threads(1) == 1
    assert _workers._worker_threads(1) == max(1, min(_workers.cores(),
                                                     _workers.parent_blas_threads()))
