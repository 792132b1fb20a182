"""The numba and stacked engines against the loop engine (the reference)."""

import numba
import numpy as np
import pytest

import fastgc
from fastgc._core.noise import NOISE_NFEV


def quartic(theta, A):
    # J = sum((A theta)^4) / 4, grad = A^T (A theta)^3: smooth, every coordinate coupled.
    r = A @ theta
    return 0.25 * np.sum(r**4)


def quartic_grad(theta, A):
    return A.T @ (A @ theta) ** 3


quartic_numba = numba.njit(quartic)


@fastgc.batched
def quartic_batched(theta, A):
    r = np.matmul(A, theta[..., None])[..., 0]  # (B, n)
    return 0.25 * np.sum(r**4, axis=-1)


def _problem(seed, n=12):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), rng.standard_normal((n + 3, n)) / np.sqrt(n)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cost, engine", [(quartic_numba, "numba"),
                                          (quartic_batched, "stacked")])
def test_fast_engine_equals_loop(seed, cost, engine):
    theta, A = _problem(seed)
    grad = quartic_grad(theta, A)
    loop = fastgc.check(quartic, grad, theta, A, engine="loop")
    fast = fastgc.check(cost, grad, theta, A, engine=engine)
    auto = fastgc.check(cost, grad, theta, A)
    assert fast.engine == auto.engine == engine
    assert loop.engine == "loop"
    scale = 1 + abs(quartic(theta, A))
    np.testing.assert_allclose(fast.numeric, loop.numeric, rtol=0,
                               atol=scale * 4 * np.finfo(float).eps / 6e-6)
    np.testing.assert_allclose(fast.numeric, grad, rtol=1e-7, atol=1e-9)
    assert fast.passed and loop.passed
    assert fast.nfev == loop.nfev == 2 * theta.size + 1 + NOISE_NFEV


def test_numba_engine_detects_a_wrong_gradient():
    theta, A = _problem(3)
    grad = quartic_grad(theta, A)
    grad[4] *= 1.001
    result = fastgc.check(quartic_numba, grad, theta, A)
    assert not result.passed
    assert result.worst(1)[0].name == "params[4]"


def test_numba_engine_with_structured_params_gets_the_flat_vector():
    rng = np.random.default_rng(5)
    params = {"w": rng.standard_normal((2, 3)), "c": rng.standard_normal(2)}

    @numba.njit
    def cost(theta):
        return np.sum(np.sin(theta) * theta)

    grad = {k: np.sin(v) + v * np.cos(v) for k, v in params.items()}
    for engine in ("numba", "loop"):
        result = fastgc.check(cost, grad, params, engine=engine)
        assert result.passed, result.report()


def test_numba_engine_reports_nan_at_a_coordinate():
    @numba.njit
    def cost(theta):
        return np.log(theta[0]) + theta[1] ** 2

    with pytest.raises(ValueError, match=r"cost returned nan at params\[0\] - 1e-06"):
        fastgc.check(cost, np.array([1 / 5e-7, 2.0]), np.array([5e-7, 1.0]), eps=1e-6)


def test_numba_cost_with_a_wrong_signature_gets_a_clear_error():
    @numba.njit
    def cost(theta, a, b):
        return np.sum(theta) * a * b

    with pytest.raises(TypeError, match="numba cost cannot be compiled"):
        fastgc.check(cost, np.ones(3), np.ones(3), 2.0)


def test_engine_mismatches_are_named():
    theta, A = _problem(0)
    with pytest.raises(ValueError, match="engine='numba' needs a cost compiled with numba"):
        fastgc.check(quartic, quartic_grad(theta, A), theta, A, engine="numba")
    with pytest.raises(ValueError, match="engine='network' needs a fastgc.MLP"):
        fastgc.check(quartic, quartic_grad(theta, A), theta, A, engine="network")


def test_stacked_engine_chunks_and_dict_params():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3, 5))
    params = {"W": rng.standard_normal((2, 3)), "b": rng.standard_normal((2, 1))}

    @fastgc.batched
    def cost(p, X):
        Z = np.matmul(p["W"], X) + p["b"]  # (B, 2, 5) or (2, 5)
        return 0.5 * np.sum(Z**2, axis=(-2, -1))

    Z = params["W"] @ X + params["b"]
    grad = {"dW": Z @ X.T, "db": Z.sum(axis=1, keepdims=True)}
    small = fastgc.check(cost, grad, params, X, max_memory=8 * 8 * 3)  # 3 points per chunk
    big = fastgc.check(cost, grad, params, X)
    loop = fastgc.check(cost, grad, params, X, engine="loop")
    assert small.passed and big.passed and loop.passed
    for k in params:
        np.testing.assert_array_equal(small.numeric[k], big.numeric[k])
    assert small.nfev == big.nfev == 2 * 8 + 1 + NOISE_NFEV


def test_stacked_cost_returning_the_wrong_batch_size():
    @fastgc.batched
    def cost(theta):
        return np.sum(theta**2, axis=-1)[:1]

    with pytest.raises(ValueError, match=r"returned shape \(1,\) for a batch of \d+ points"):
        fastgc.check(cost, np.ones(4), np.ones(4))


def test_batched_rejects_non_callables():
    with pytest.raises(TypeError, match="batched expects a callable"):
        fastgc.batched(3)


def test_network_engine_takes_params_in_any_key_order():
    # The user's dict order is the layout's; the engine maps it onto the network's own order.
    net = fastgc.MLP([3, 4, 2], "tanh", "mse")
    params = net.init(seed=1)
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((3, 5)), rng.standard_normal((2, 5))
    grads = net.gradients(params, X, Y)
    shuffled = {k: params[k] for k in ["b2", "W1", "W2", "b1"]}
    grads["dW2"] = grads["dW2"] * 2
    ordered = fastgc.check(net, grads, params, X, Y, engine="network")
    other = fastgc.check(net, grads, shuffled, X, Y, engine="network")
    loop = fastgc.check(net, grads, shuffled, X, Y, engine="loop")
    assert list(other.blocks) == ["b2", "W1", "W2", "b1"]
    for k in params:
        np.testing.assert_array_equal(other.numeric[k], ordered.numeric[k])
        np.testing.assert_allclose(other.numeric[k], loop.numeric[k], rtol=1e-6, atol=1e-9)
    assert [n for n, b in other.blocks.items() if not b.passed] == ["W2"]


def test_numba_engine_survives_an_earlier_cost_whose_module_is_gone(tmp_path):
    # The numba engine's kernel is specialised on the user's dispatcher. Were it cached on
    # disk, the cache index would name every earlier cost's module, and a later process that
    # cannot import that module (another project, a test file run from elsewhere) would fail
    # with ModuleNotFoundError on every numba check. Two processes share one numba cache
    # directory; the first cost's module is not on the second one's path.
    import os
    import subprocess
    import sys
    import textwrap

    first = tmp_path / "first"
    first.mkdir()
    (first / "costs_elsewhere.py").write_text(textwrap.dedent("""
        import numba
        import numpy as np

        def quartic(theta, A):
            r = A @ theta
            return 0.25 * np.sum(r**4)

        quartic_numba = numba.njit(quartic)
    """))
    runs = [(first, """
        from costs_elsewhere import quartic_numba
        A = np.random.default_rng(0).standard_normal((5, 4))
        x = np.ones(4)
        r = fastgc.check(quartic_numba, A.T @ (A @ x) ** 3, x, A, engine="numba")
    """), (tmp_path, """
        cost = numba.njit(lambda theta: np.sum(theta ** 4))
        x = np.linspace(-1.0, 1.0, 6)
        r = fastgc.check(cost, 4 * x ** 3, x, engine="numba")
    """)]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    for cwd, body in runs:
        code = ("import numba, numpy as np, fastgc\n" + textwrap.dedent(body)
                + "assert r.passed and r.engine == 'numba', r.report()\nprint('ok')\n")
        run = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-2000:]
