"""Right verdicts on real code: kinks at the point, complex-step safety per block, diagnoses
along any axis, subset coverage (float32 and noisy costs: tests/core/test_noise.py).

Every layer here is plain numpy, written as a user would write it (forward and backward by
hand); only ``fastgc.check`` is under test.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgc


# ---- kinks at the point ----------------------------------------------------------------------
def _fresh_relu_point(seed=0):
    """A fresh 2-layer ReLU network: zero biases, an all-zero input row (a feature) and an
    all-zero input column (an example), so every pre-activation of that example is exactly 0."""
    rng = np.random.default_rng(seed)
    p = {"W1": rng.standard_normal((5, 4)), "b1": np.zeros((5, 1)),
         "W2": rng.standard_normal((3, 5)), "b2": np.zeros((3, 1))}
    X = rng.standard_normal((4, 6))
    X[1, :] = 0.0
    X[:, 2] = 0.0
    return p, X, rng.standard_normal((3, 6))


def _relu_forward(p, X):
    Z1 = p["W1"] @ X + p["b1"]
    A1 = np.maximum(Z1, 0.0)
    Z2 = p["W2"] @ A1 + p["b2"]
    return Z1, A1, Z2, np.maximum(Z2, 0.0)


def relu_cost(p, X, Y):
    return 0.5 / X.shape[1] * np.sum((_relu_forward(p, X)[3] - Y) ** 2)


def relu_grad(p, X, Y):
    """Backprop with relu'(0) = 0, a valid one-sided derivative at every kink."""
    Z1, A1, Z2, A2 = _relu_forward(p, X)
    dZ2 = (A2 - Y) / X.shape[1] * (Z2 > 0)
    dZ1 = (p["W2"].T @ dZ2) * (Z1 > 0)
    return {"dW1": dZ1 @ X.T, "db1": dZ1.sum(1, keepdims=True),
            "dW2": dZ2 @ A1.T, "db2": dZ2.sum(1, keepdims=True)}


def _pool(x):
    """2x2 max-pool of relu(x) (x: 4x4): windows as rows of a (4, 4) array."""
    a = np.maximum(x, 0.0)
    return a.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)


POOL_WEIGHTS = np.array([1.5, -0.7, 2.0, 0.9])


def pool_cost(x):
    return float(POOL_WEIGHTS @ _pool(x).max(axis=1))


def pool_grad(x):
    """Upstream gradient to the first maximum of each window (numpy's argmax), times relu'."""
    windows = _pool(x)
    routed = np.zeros_like(windows)
    routed[np.arange(4), windows.argmax(axis=1)] = POOL_WEIGHTS
    g = routed.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)
    return g * (x > 0)


def _tied_pool_point():
    # windows with tied maxima: exact zeros (relu at its kink) and tied positive values
    return np.array([[0.0, 0.0, 0.7, 0.7],
                     [-1.0, -0.5, 0.2, -0.3],
                     [0.0, -2.0, 1.1, 0.4],
                     [-0.1, 0.0, 1.1, 0.3]])


@pytest.mark.parametrize("method", ["central", "richardson"])
def test_fresh_relu_network_with_exact_zeros_passes(method):
    p, X, Y = _fresh_relu_point()
    # precondition (plain numpy): some pre-activation sits exactly at the kink
    assert np.any(_relu_forward(p, X)[0] == 0.0)
    result = fastgc.check(relu_cost, relu_grad, p, X, Y, method=method)
    assert result.passed, result.report(color=False)
    # the kinks at the point are reported per coordinate: the biases, whose step moves the
    # zero pre-activations of the all-zero example
    assert result.kinks and all(k.startswith(("b1[", "b2[")) for k in result.kinks)
    assert "b1[0, 0]" in result.kinks


def test_fresh_relu_network_passes_on_the_network_engine():
    p, X, Y = _fresh_relu_point()
    net = fastgc.MLP([4, 5, 3], "relu", "mse")  # relu hidden layer, identity output
    result = fastgc.check(net, net.gradients(p, X, Y), p, X, Y)
    assert result.engine == "network"
    assert result.passed, result.report(color=False)
    assert "b1[0, 0]" in result.kinks


@pytest.mark.parametrize("method", ["central", "richardson"])
def test_max_pool_with_tied_maxima_passes(method):
    x = _tied_pool_point()
    result = fastgc.check(pool_cost, pool_grad, x, method=method)
    assert result.passed, result.report(color=False)
    # x[0, 0] and x[0, 1] are tied zeros; x[0, 2], x[0, 3] tied maxima: kinks at the point
    assert {"params[0, 0]", "params[0, 2]", "params[0, 3]"} <= set(result.kinks)


@pytest.mark.parametrize("method", ["central", "richardson"])
def test_a_wrong_gradient_at_a_kink_still_fails(method):
    x = _tied_pool_point()
    bad = pool_grad(x)
    bad[0, 2] = 2 * POOL_WEIGHTS[1]  # outside [0, w] of the tied maxima (w = -0.7)... and 2x
    result = fastgc.check(pool_cost, bad, x, method=method)
    assert not result.passed
    assert "outside the one-sided differences" in result.blocks["params"].diagnosis
    assert "params[0, 2]" in result.blocks["params"].diagnosis
    # and a wrong smooth entry next to the kinks
    bad = pool_grad(x)
    bad[2, 2] *= 2
    result = fastgc.check(pool_cost, bad, x, method=method)
    assert not result.passed
    assert "params[2, 2]" in result.blocks["params"].diagnosis


@pytest.mark.parametrize("engine", ["loop", "network"])
def test_a_wrong_bias_gradient_at_the_fresh_point_fails(engine):
    p, X, Y = _fresh_relu_point()
    net = fastgc.MLP([4, 5, 3], "relu", "mse")
    cost = relu_cost if engine == "loop" else net
    g = relu_grad(p, X, Y) if engine == "loop" else net.gradients(p, X, Y)
    g["db1"] = g["db1"] * 0.5
    result = fastgc.check(cost, g, p, X, Y)
    assert not result.passed
    assert not result.blocks["b1"].passed


# ---- the complex step, block by block -------------------------------------------------------
def _batch_norm(seed=0):
    rng = np.random.default_rng(seed)
    # a batch of 32 spread-out inputs: the scale and shift gradients (sums over the batch) are
    # the largest estimates, so a probe of the largest ones would never look at X
    n, m = 4, 32
    p = {"gamma": rng.uniform(0.5, 1.5, n), "beta": rng.standard_normal(n),
         "X": 3 * rng.standard_normal((m, n))}
    return p, rng.standard_normal((m, n))


def bn_cost(p, C):
    """Batch normalisation over the batch axis, with np.var (|x - mean|**2 on complex input)."""
    X = p["X"]
    xhat = (X - X.mean(axis=0)) / np.sqrt(np.var(X, axis=0) + 1e-5)
    return np.sum(C * (p["gamma"] * xhat + p["beta"]))


def bn_grad(p, C):
    X = p["X"]
    m = X.shape[0]
    std = np.sqrt(np.var(X, axis=0) + 1e-5)
    xhat = (X - X.mean(axis=0)) / std
    dxhat = C * p["gamma"]
    dX = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).sum(axis=0) / m) / std
    return {"gamma": (C * xhat).sum(axis=0), "beta": C.sum(axis=0), "X": dX}


def test_complex_step_on_batch_norm_is_refused_naming_the_input_block():
    p, C = _batch_norm()
    assert fastgc.check(bn_cost, bn_grad, p, C).passed  # the backward is right
    # the complex step is right for gamma and beta, and wrong for X (np.var is not analytic)
    with pytest.raises(fastgc.CostError, match=r"not complex-analytic in block X\b.*at X\["):
        fastgc.check(bn_cost, bn_grad, p, C, method="complex")


def test_the_complex_probe_leaves_the_subset_draw_alone():
    # the probe draws from a child generator: the same seed checks the same coordinates
    p, C = _batch_norm()

    def analytic_bn(p, C):  # the variance written out: complex-analytic
        X = p["X"]
        d = X - X.mean(axis=0)
        xhat = d / np.sqrt((d * d).mean(axis=0) + 1e-5)
        return np.sum(C * (p["gamma"] * xhat + p["beta"]))

    a = fastgc.check(analytic_bn, bn_grad, p, C, method="complex", subset=10, seed=5)
    b = fastgc.check(analytic_bn, bn_grad, p, C, subset=10, seed=5)
    assert a.passed and b.passed
    np.testing.assert_array_equal(a.checked, b.checked)


# ---- diagnoses along any axis ---------------------------------------------------------------
T_STEPS = 4


def _rnn(seed=0):
    rng = np.random.default_rng(seed)
    m, n, k = 3, 2, 4
    p = {"W": 0.5 * rng.standard_normal((k, k)), "U": rng.standard_normal((k, n)),
         "X": rng.standard_normal((m, T_STEPS, n))}  # batch x time x features
    return p, rng.standard_normal((m, T_STEPS, k))


def rnn_cost(p, C):
    """h_t = tanh(h_{t-1} W^T + x_t U^T), h_0 = 0; J = sum_t <C_t, h_t>."""
    h = np.zeros((p["X"].shape[0], p["W"].shape[0]))
    J = 0.0
    for t in range(T_STEPS):
        h = np.tanh(h @ p["W"].T + p["X"][:, t] @ p["U"].T)
        J += np.sum(C[:, t] * h)
    return J


def rnn_grad(p, C, through_time=True):
    """Backprop through time; ``through_time=False`` drops the gradient that reaches h_t
    from later time steps (the bug)."""
    m, k = p["X"].shape[0], p["W"].shape[0]
    hs = [np.zeros((m, k))]
    for t in range(T_STEPS):
        hs.append(np.tanh(hs[-1] @ p["W"].T + p["X"][:, t] @ p["U"].T))
    g = {"W": np.zeros_like(p["W"]), "U": np.zeros_like(p["U"]), "X": np.zeros_like(p["X"])}
    later = np.zeros((m, k))
    for t in reversed(range(T_STEPS)):
        dz = (C[:, t] + (later if through_time else 0.0)) * (1 - hs[t + 1] ** 2)
        g["W"] += dz.T @ hs[t]
        g["U"] += dz.T @ p["X"][:, t]
        g["X"][:, t] = dz @ p["U"]
        later = dz @ p["W"]
    return g


def test_a_recurrent_layer_without_backprop_through_time_is_diagnosed_along_time():
    p, C = _rnn()
    assert fastgc.check(rnn_cost, rnn_grad(p, C), p, C).passed
    result = fastgc.check(rnn_cost, rnn_grad(p, C, through_time=False), p, C)
    assert not result.blocks["X"].passed
    assert result.blocks["X"].diagnosis == "dX[:, 0:3, :] disagree; dX[:, 3, :] agrees"


def test_a_factor_per_slice():
    # a gradient accumulated once where it should be twice, in row 1 only
    M = np.arange(1.0, 13.0).reshape(3, 4)

    def cost(w):
        return np.sum(M * w)

    g = M.copy()
    g[1] *= 0.5
    result = fastgc.check(cost, g, np.zeros((3, 4)))
    assert result.blocks["params"].diagnosis == (
        "rows [1] of dparams disagree; the other rows agree; row 1 is 0.5 x the numeric gradient")
    cube = np.arange(1.0, 25.0).reshape(2, 3, 4)
    g = cube.copy()
    g[:, :, 0] *= 2
    result = fastgc.check(lambda w: np.sum(cube * w), g, np.zeros((2, 3, 4)))
    assert result.blocks["params"].diagnosis == (
        "dparams[:, :, 0] disagree; dparams[:, :, 1:4] agree; dparams[:, :, 0] is 2 x the "
        "numeric gradient")


def test_batch_norm_costed_in_eval_mode_hints_at_a_different_function():
    p, C = _batch_norm()
    running_mean, running_var = np.full(4, 0.1), np.full(4, 8.0)

    def eval_mode_cost(p, C):
        xhat = (p["X"] - running_mean) / np.sqrt(running_var + 1e-5)
        return np.sum(C * (p["gamma"] * xhat + p["beta"]))

    result = fastgc.check(eval_mode_cost, bn_grad, p, C)  # the backward is train mode's
    assert not result.blocks["X"].passed
    assert "no simple pattern" in result.blocks["X"].diagnosis
    assert "may differentiate a different function than the cost" in result.blocks["X"].diagnosis


# ---- subset coverage ------------------------------------------------------------------------
def test_subset_note_states_the_chance_a_single_wrong_entry_goes_unseen():
    x = np.linspace(-1.0, 1.0, 400)
    result = fastgc.check(lambda v: np.sum(np.sin(v)), np.cos(x), x, subset=40, seed=1)
    note = next(n for n in result.notes if n.startswith("subset check"))
    assert "a pass is probabilistic" in note
    assert "params 40/400:" in note and "0.9 (one entry)" in note  # 1 - 40/400
    # and a single wrong entry is indeed missed unless drawn
    bad = np.cos(x)
    missed = int(np.setdiff1d(np.arange(400), result.checked)[0])
    bad[missed] += 1.0
    assert fastgc.check(lambda v: np.sum(np.sin(v)), bad, x, subset=40, seed=1).passed


def test_assert_gradients_close_says_a_subset_pass_is_probabilistic():
    assert "a pass is probabilistic" in fastgc.assert_gradients_close.__doc__


# ---- the same on the fast engines -----------------------------------------------------------
@fastgc.batched
def relu_cost_batched(p, X, Y):
    """``relu_cost`` for parameters with a leading batch axis (the stacked engine)."""
    A1 = np.maximum(p["W1"] @ X + p["b1"], 0.0)
    A2 = np.maximum(p["W2"] @ A1 + p["b2"], 0.0)
    return 0.5 / X.shape[1] * np.sum((A2 - Y) ** 2, axis=(-2, -1))


def test_fresh_relu_network_passes_on_the_stacked_engine():
    p, X, Y = _fresh_relu_point()
    result = fastgc.check(relu_cost_batched, relu_grad, p, X, Y)
    assert result.engine == "stacked"
    assert result.passed, result.report(color=False)
    assert "b1[0, 0]" in result.kinks
