"""Tests for fastgc's dense network model (``fastgc._network.mlp.MLP``).

References: the exercise's own forward/backward code (``exercise_cells.py``) and a plain
float64 central-difference loop.
"""

import itertools

import numpy as np
import pytest
from exercise_cells import backward_propagation_n, forward_propagation_n
from exercise_cells import exercise_setup as exercise_data
from problems import LABELS, network_data

from fastgc._network.mlp import MLP

# ---- helpers ---------------------------------------------------------------------------


def central_difference(net, theta, X, Y, h):
    """Plain float64 central differences over every coordinate (the exercise's loop)."""
    out = np.empty_like(theta)
    for j in range(theta.size):
        plus, minus = theta.copy(), theta.copy()
        plus[j] += h
        minus[j] -= h
        out[j] = (net(net.unflatten(plus), X, Y) - net(net.unflatten(minus), X, Y)) / (
            (plus[j] - theta[j]) - (minus[j] - theta[j])
        )
    return out


def make_data(net, m, seed):
    return network_data(net.layer_dims, m, LABELS[net.loss], seed)


# ---- exercise parity -------------------------------------------------------------------


def test_forward_matches_exercise():
    # The activations bit for bit; the bce cost is taken on the logits (softplus(z) - y z),
    # which equals the exercise's expression up to its rounding (a few ulps of each term).
    X, Y, params = exercise_data()
    ref_cost, ref_cache = forward_propagation_n(X, Y, params)
    net = MLP([4, 5, 3, 1])
    cost, cache = net.forward(params, X, Y)
    assert np.array_equal(cache["Z"][0], ref_cache[0])
    assert np.array_equal(cache["A"][3], ref_cache[9])
    assert cost == pytest.approx(ref_cost, rel=1e-14)
    assert net(params, X, Y) == cost


def test_forward_matches_exercise_on_perturbed_points():
    X, Y, params = exercise_data()
    net = MLP([4, 5, 3, 1])
    theta = net.flatten(params)
    for j in range(theta.size):
        for eps in (1e-7, -1e-7):
            t = theta.copy()
            t[j] += eps
            p = net.unflatten(t)
            assert net(p, X, Y) == pytest.approx(forward_propagation_n(X, Y, p)[0], rel=1e-14)


def test_bce_cost_stays_finite_and_exact_at_saturation():
    # A sigmoid output that rounds to 1: the exercise's -log(1 - A) is inf; on the logits the
    # cost is softplus(z) - y z, here z = 40 and y = 0: 40 + log1p(e^-40).
    net = MLP([1, 1], ["sigmoid"], "bce")
    params = {"W1": np.array([[40.0]]), "b1": np.array([[0.0]])}
    cost = net(params, np.array([[1.0]]), np.array([[0.0]]))
    assert cost == 40.0 + np.log1p(np.exp(-40.0))


def test_gradients_match_exercise_fixed_backprop():
    X, Y, params = exercise_data()
    net = MLP([4, 5, 3, 1])
    _, cache = forward_propagation_n(X, Y, params)
    ref = backward_propagation_n(X, Y, cache, fixed=True)
    grads = net.gradients(params, X, Y)
    assert list(grads) == ["dW1", "db1", "dW2", "db2", "dW3", "db3"]
    for key in grads:
        np.testing.assert_allclose(grads[key], ref[key], rtol=1e-13, atol=1e-16)


def test_flat_order_is_dictionary_to_vector_order():
    X, Y, params = exercise_data()
    net = MLP([4, 5, 3, 1])
    theta = net.flatten(params)
    ref = np.concatenate([params[k].reshape(-1) for k in ("W1", "b1", "W2", "b2", "W3", "b3")])
    assert np.array_equal(theta, ref)
    assert net.param_count == 47 == theta.size
    assert [name for name, _ in net.param_shapes()] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    back = net.unflatten(theta)
    for key in params:
        assert np.array_equal(back[key], params[key])


# ---- gradients against central differences, every combination -------------------------

HIDDEN = ("relu", "leaky_relu", "tanh", "sigmoid", "identity")
HEADS = [("bce", "sigmoid"), ("ce", "softmax")] + [
    ("mse", out) for out in ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
]
SHAPES = [[3, 2], [4, 5, 3], [3, 4, 5, 4, 3]]


COMBOS = [
    (dims, loss, out, hidden, l2)
    for dims in SHAPES
    for loss, out in HEADS
    # L=1 has no hidden layer: one hidden choice suffices there.
    for hidden in (HIDDEN if len(dims) > 2 else HIDDEN[:1])
    for l2 in (0.0, 0.7)
]


@pytest.mark.parametrize(("dims", "loss", "out", "hidden", "l2"), COMBOS)
def test_gradients_match_central_differences(dims, loss, out, hidden, l2):
    if loss == "bce":
        dims = dims[:-1] + [1] if len(dims) > 2 else [3, 1]
    acts = [hidden] * (len(dims) - 2) + [out]
    net = MLP(dims, acts, loss=loss, l2=l2)
    params = net.init(seed=3)
    X, Y = make_data(net, m=4, seed=4)
    theta = net.flatten(params)
    grad = np.concatenate([g.ravel() for g in net.gradients(params, X, Y).values()])
    h = 1e-6
    numeric = central_difference(net, theta, X, Y, h)
    # Central differences: truncation O(h^2 |J'''|) ~ 1e-12 plus rounding ~ eps|J|/h ~ 1e-10;
    # kinks (relu, leaky) can spoil single entries when a pre-activation lies within h of 0,
    # which this seeded data avoids.
    np.testing.assert_allclose(numeric, grad, rtol=1e-6, atol=1e-8)


def test_gradients_m1_and_vector_labels():
    net = MLP([3, 4, 1], "tanh", loss="bce", l2=0.1)
    params = net.init(seed=5)
    rng = np.random.default_rng(6)
    X = rng.standard_normal((3, 1))
    Y = np.array([1.0])
    theta = net.flatten(params)
    grad = np.concatenate([g.ravel() for g in net.gradients(params, X, Y).values()])
    numeric = central_difference(net, theta, X, Y, 1e-6)
    np.testing.assert_allclose(numeric, grad, rtol=1e-6, atol=1e-8)


def test_soft_labels_ce():
    # ce with labels that do not sum to one per example: the gradient keeps the sum(Y) factor.
    net = MLP([3, 4, 3], "tanh", loss="ce")
    params = net.init(seed=7)
    rng = np.random.default_rng(8)
    X = rng.standard_normal((3, 5))
    Y = rng.random((3, 5))
    theta = net.flatten(params)
    grad = np.concatenate([g.ravel() for g in net.gradients(params, X, Y).values()])
    numeric = central_difference(net, theta, X, Y, 1e-6)
    np.testing.assert_allclose(numeric, grad, rtol=1e-6, atol=1e-8)


def test_losses_closed_form():
    net = MLP([2, 2], ["identity"], loss="mse", l2=0.5)
    params = {"W1": np.array([[1.0, 2.0], [0.0, -1.0]]), "b1": np.array([[0.5], [0.0]])}
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    Y = np.zeros((2, 2))
    # A = W X + b = [[1.5, 2.5], [0, -1]]; 0.5/m sum A^2 = 0.25 * 9.5; l2 term 0.5/4 * 6.
    assert net(params, X, Y) == pytest.approx(0.25 * 9.5 + 0.125 * 6, rel=1e-15)
    ce = MLP([2, 2], ["softmax"], loss="ce")
    p = 1 / (1 + np.exp(-1.0))
    cost = ce({"W1": np.zeros((2, 2)), "b1": np.array([[1.0], [0.0]])}, X, np.eye(2))
    assert cost == pytest.approx(-0.5 * (np.log(p) + np.log(1 - p)), rel=1e-15)


def test_init_and_repr():
    net = MLP([4, 5, 3, 1])
    a, b = net.init(seed=0), net.init(seed=0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.all(a["b1"] != 0)
    assert repr(net) == (
        "MLP(layer_dims=[4, 5, 3, 1], activations=('relu', 'relu', 'sigmoid'), loss='bce', l2=0.0)"
    )
    assert MLP([3, 2], loss="ce").activations == ("softmax",)
    assert MLP([3, 4, 2], "tanh", loss="mse").activations == ("tanh", "identity")


# ---- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layer_dims": [3]}, "layer_dims needs at least 2"),
        ({"layer_dims": [3, 0]}, "layer_dims entries must be integers >= 1"),
        ({"layer_dims": [3, 2.5]}, "layer_dims entries must be integers"),
        ({"layer_dims": "ab"}, "layer_dims must be a sequence of ints"),
        ({"layer_dims": [3, 1], "loss": "hinge"}, "loss must be one of"),
        ({"layer_dims": [3, 1], "l2": -1.0}, "l2 must be a finite number"),
        ({"layer_dims": [3, 2, 1], "activations": ["relu"]}, "one name per layer"),
        ({"layer_dims": [3, 2, 1], "activations": ["gelu", "sigmoid"]}, "allowed: "),
        ({"layer_dims": [3, 2, 1], "activations": ["softmax", "sigmoid"]}, "only on the output"),
        ({"layer_dims": [3, 1], "activations": ["tanh"]}, "'bce' needs a 'sigmoid'"),
        ({"layer_dims": [3, 2], "activations": ["sigmoid"], "loss": "ce"}, "'ce' needs"),
        ({"layer_dims": [3, 2], "activations": ["softmax"], "loss": "mse"}, "'mse' needs"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


def test_params_and_data_validation():
    net = MLP([4, 5, 3, 1])
    X, Y, params = exercise_data()
    bad = dict(params)
    del bad["b2"]
    with pytest.raises(ValueError, match="missing key 'b2'"):
        net(bad, X, Y)
    bad = dict(params, W2=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"params\['W2'\] has shape \(3, 4\), expected \(3, 5\)"):
        net.gradients(bad, X, Y)
    with pytest.raises(ValueError, match="params must be a dict"):
        net.forward([1, 2], X, Y)
    with pytest.raises(ValueError, match="X must have shape"):
        net(params, X[:3], Y)
    with pytest.raises(ValueError, match="Y must have shape"):
        net(params, X, np.array([1, 0]))
    with pytest.raises(ValueError, match="theta must have shape"):
        net.unflatten(np.zeros(46))


def test_all_combos_construct():
    for hidden, (loss, out) in itertools.product(HIDDEN, HEADS):
        net = MLP([2, 3, 2 if loss != "bce" else 1], [hidden, out], loss=loss)
        assert net.activations == (hidden, out)
