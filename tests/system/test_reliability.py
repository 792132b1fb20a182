"""Reliability: inputs untouched, results reproducible, threads and memory limits harmless.

Every engine (loop, stacked, numba, network) in every mode (full, subset, directions) and
method (central, richardson, complex), on correct and on wrong gradients (a failing check runs
the diagnosis and, in directions mode, the localisation).
"""

import copy
import threading

import numba
import numpy as np
import pytest
from problems import LABELS, network_data, network_problem

import fastgc

MODES = {
    "full": {},
    "subset": {"subset": 0.5},
    "directions": {"directions": 2},
    "richardson": {"method": "richardson"},
    "complex": {"method": "complex"},
}


# ---- problems, one per engine ----------------------------------------------------------------
@fastgc.batched
def tanh_regression(p, X, Y):
    """``(1/2m) ||W2 tanh(W1 X + b1) + b2 - Y||^2``; batch-aware (a leading axis on every
    parameter broadcasts through np.matmul) and complex-safe."""
    H = np.tanh(np.matmul(p["W1"], X) + p["b1"])
    R = np.matmul(p["W2"], H) + p["b2"] - Y
    return 0.5 * np.sum(R * R, axis=(-2, -1)) / X.shape[1]


def tanh_regression_grad(p, X, Y):
    m = X.shape[1]
    H = np.tanh(p["W1"] @ X + p["b1"])
    R = (p["W2"] @ H + p["b2"] - Y) / m
    D = (p["W2"].T @ R) * (1 - H * H)
    return {"dW1": D @ X.T, "db1": D.sum(1, keepdims=True), "dW2": R @ H.T,
            "db2": R.sum(1, keepdims=True)}


def loop_cost(p, X, Y):
    return float(tanh_regression(p, X, Y)) if not np.iscomplexobj(p["W1"]) else (
        tanh_regression(p, X, Y)[()])


@numba.njit
def numba_cost(theta, A, y):
    # sum(tanh(A theta - y)^2) with loops: numba's matmul does not mix float64 and complex128
    total = theta[0] * 0.0
    for i in range(A.shape[0]):
        r = theta[0] * 0.0
        for j in range(A.shape[1]):
            r += A[i, j] * theta[j]
        t = np.tanh(r - y[i])
        total += t * t
    return total


def numba_grad(p, A, y):
    theta = np.concatenate([p["w"].ravel(), p["c"].ravel()])
    t = np.tanh(A @ theta - y)
    g = A.T @ (2 * t * (1 - t * t))
    return {"w": g[: p["w"].size].reshape(p["w"].shape), "c": g[p["w"].size :]}


def _data(rng, n0, n_out, m, loss="mse"):
    return network_data((n0, n_out), m, LABELS[loss], rng)


def problem(engine, seed=0):
    """``(cost, params, grads, args)`` for ``engine``: small, so that every mode is fast."""
    rng = np.random.default_rng(seed)
    if engine == "network":
        net = fastgc.MLP([4, 6, 5, 3], ["relu", "tanh", "softmax"], "ce", l2=0.1)
        params, X, Y = network_problem([4, 6, 5, 3], 12, "onehot", seed, rng)
        return net, params, net.gradients(params, X, Y), (X, Y)
    if engine in ("loop", "stacked"):
        params = {"W1": rng.standard_normal((5, 3)), "b1": rng.standard_normal((5, 1)),
                  "W2": rng.standard_normal((2, 5)) / 2, "b2": rng.standard_normal((2, 1))}
        X, Y = _data(rng, 3, 2, 7)
        cost = loop_cost if engine == "loop" else tanh_regression
        return cost, params, tanh_regression_grad(params, X, Y), (X, Y)
    params = {"w": rng.standard_normal((2, 3)), "c": rng.standard_normal(4)}
    A, y = rng.standard_normal((9, 10)) / 3, rng.standard_normal(9)
    return numba_cost, params, numba_grad(params, A, y), (A, y)


def wrong(grads):
    """One entry of the smallest block off by 1%: the check fails and diagnoses it (the
    smallest block is checked whole in subset mode too)."""
    bad = copy.deepcopy(grads)
    smallest = min(bad, key=lambda k: bad[k].size)
    bad[smallest].flat[1] *= 1.01
    return bad


ENGINES = ["loop", "stacked", "numba", "network"]


def snapshot(*structures):
    """Deep copies and the raw bytes of every array in ``structures``."""
    arrays = []
    for s in structures:
        arrays.extend(s.values() if isinstance(s, dict) else [s])
    return [(a, a.copy(), a.tobytes(), a.dtype, a.shape, a.strides) for a in arrays]


def assert_unchanged(snap):
    for array, saved, raw, dtype, shape, strides in snap:
        assert array.dtype == dtype and array.shape == shape and array.strides == strides
        assert np.array_equal(array, saved)
        assert array.tobytes() == raw
        assert array.flags.writeable  # fastgc's read-only views never leak to the user


def signature(result):
    """Everything a check reports, in a form that compares bit for bit."""
    numeric = (None if result.numeric is None
               else [np.asarray(v).tobytes() for v in result.numeric.values()])
    return (numeric, result.passed, result.difference, result.nfev, result.checked.tobytes(),
            [(b.name, b.count, b.difference, b.passed, b.max_abs_error, b.noise, b.diagnosis,
              b.localisation_nfev, b.kinks) for b in result.blocks.values()],
            list(result.kinks), [str(e) for e in result.worst(50)], result.engine)


# ---- inputs are never modified --------------------------------------------------------------
@pytest.mark.parametrize("correct", [True, False], ids=["correct", "wrong"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("engine", ENGINES)
def test_inputs_are_unchanged_by_a_check(engine, mode, correct):
    cost, params, grads, args = problem(engine)
    if not correct:
        grads = wrong(grads)
    snap = snapshot(params, grads, *args)
    result = fastgc.check(cost, grads, params, *args, engine=engine, **MODES[mode])
    assert result.engine == engine
    assert result.passed == correct, result.report(color=False)
    assert_unchanged(snap)


class Interrupt:
    """Wrap a cost so that call number ``after`` raises ``exc`` (calls are counted, batched
    or not)."""

    def __init__(self, cost, after, exc):
        self.cost, self.after, self.exc, self.calls = cost, after, exc, 0
        if getattr(cost, "fastgc_batched", False):
            fastgc.batched(self)

    def __call__(self, *a):
        self.calls += 1
        if self.calls == self.after:
            raise self.exc
        return self.cost(*a)


@pytest.mark.parametrize("exc", [RuntimeError("boom in the cost"), KeyboardInterrupt()],
                         ids=["error", "ctrl-c"])
@pytest.mark.parametrize("mode", ["full", "subset", "directions", "richardson"])
@pytest.mark.parametrize("engine", ["loop", "stacked"])
def test_inputs_are_unchanged_when_the_cost_raises_midway(engine, mode, exc):
    cost, params, grads, args = problem(engine)
    before = fastgc.check(cost, grads, params, *args, engine=engine, **MODES[mode])
    # stacked: 3 points per chunk, so that the raising call is one chunk among several
    options = dict(MODES[mode], engine=engine, max_memory=3 * 8 * 32)
    snap = snapshot(params, grads, *args)
    interrupted = Interrupt(cost, 4, exc)
    with pytest.raises(type(exc)):
        fastgc.check(interrupted, grads, params, *args, **options)
    assert interrupted.calls == 4  # it did raise midway, and nothing ran after it
    assert_unchanged(snap)
    # nothing of the interrupted check lingers: the next check is the one before
    after = fastgc.check(cost, grads, params, *args, engine=engine, **MODES[mode])
    assert signature(after)[:-1] == signature(before)[:-1]


def test_float32_params_are_unchanged():
    cost, params, grads, args = problem("loop")
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    snap = snapshot(params32, grads, *args)
    with pytest.warns(UserWarning, match="float32"):
        fastgc.check(cost, grads, params32, *args)
    assert_unchanged(snap)


# ---- determinism ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("engine", ENGINES)
def test_the_same_call_twice_gives_identical_results(engine, mode):
    cost, params, grads, args = problem(engine, seed=1)
    bad = wrong(grads)  # the failing path too: diagnosis, localisation with its random halves
    first = fastgc.check(cost, bad, params, *args, engine=engine, seed=5, **MODES[mode])
    second = fastgc.check(cost, bad, params, *args, engine=engine, seed=5, **MODES[mode])
    assert not first.passed
    assert signature(first) == signature(second)


def large_network():
    """Big enough for the network engine's parallel kernels (perturbations x examples above
    its serial cut-off) and for chunking under a small max_memory (relu hidden layers)."""
    net = fastgc.MLP([6, 12, 10, 3], "relu", "ce")
    params, X, Y = network_problem([6, 12, 10, 3], 50, "onehot", 3, 3)
    return net, params, net.gradients(params, X, Y), (X, Y)


def large_numba_problem():
    rng = np.random.default_rng(4)
    params = {"w": rng.standard_normal((20, 10)), "c": rng.standard_normal(20)}
    A, y = rng.standard_normal((30, 220)) / 10, rng.standard_normal(30)
    return numba_cost, params, numba_grad(params, A, y), (A, y)


@pytest.mark.parametrize("method", ["central", "richardson", "complex"])
@pytest.mark.parametrize("engine", ["network", "numba"])
def test_thread_count_does_not_change_a_bit(engine, method):
    cost, params, grads, args = large_network() if engine == "network" else large_numba_problem()
    default = numba.get_num_threads()
    results = {}
    try:
        for threads in (1, default):
            numba.set_num_threads(threads)
            results[threads] = fastgc.check(cost, grads, params, *args, engine=engine,
                                            method=method)
    finally:
        numba.set_num_threads(default)
    assert results[1].passed
    assert signature(results[1]) == signature(results[default])


# ---- concurrency ------------------------------------------------------------------------------
def _run(engine, **options):
    cost, params, grads, args = large_network() if engine == "network" else large_numba_problem()
    return fastgc.check(cost, wrong(grads), params, *args, engine=engine, **options)


@pytest.mark.parametrize("engines", [("network", "numba"), ("network", "network"),
                                     ("numba", "numba")], ids="+".join)
def test_two_threads_checking_at_once_give_the_sequential_results(engines):
    options = [{}, {"method": "richardson"}]
    expected = [[signature(_run(e, **o)) for o in options] for e in engines]
    start = threading.Barrier(len(engines))
    got = [None] * len(engines)
    errors = []

    def work(k, engine):
        try:
            start.wait(timeout=30)
            got[k] = [signature(_run(engine, **o)) for o in options for _ in range(2)]
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k, e)) for k, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a check deadlocked"
    assert not errors, errors
    for k in range(len(engines)):
        assert got[k] == [s for s in expected[k] for _ in range(2)]


# ---- max_memory -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["full", "subset", "directions", "richardson", "complex"])
@pytest.mark.parametrize("engine", ["network", "stacked"])
def test_a_tiny_max_memory_gives_the_default_results(engine, mode):
    if engine == "network":
        cost, params, grads, args = large_network()
    else:
        cost, params, grads, args = problem("stacked", seed=2)
    bad = wrong(grads)
    default = fastgc.check(cost, bad, params, *args, engine=engine, **MODES[mode])
    tiny = fastgc.check(cost, bad, params, *args, engine=engine, max_memory=4096,
                        **MODES[mode])
    if engine == "network" and mode == "complex":
        # Documented (complex_step_derivatives): its sum over examples is split at chunk
        # boundaries, so the last bits depend on max_memory. Verdicts must not.
        for k in params:
            np.testing.assert_allclose(tiny.numeric[k], default.numeric[k], rtol=1e-13,
                                       atol=1e-13 * np.abs(default.numeric[k]).max())
        assert [b.passed for b in tiny.blocks.values()] == [
            b.passed for b in default.blocks.values()]
        assert (tiny.passed, tiny.nfev) == (default.passed, default.nfev)
        return
    assert signature(tiny) == signature(default)
