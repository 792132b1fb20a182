"""Property tests: the fast engines against the loop engine on random networks.

Random shapes (depth 1-4, widths 1-8, 1-6 inputs, 1-4 outputs), activations, losses, L2,
batch sizes, parameter scales and seeds. The references are the loop engine (one call of the
exercise's forward pass per perturbed point) and ``MLP.gradients`` (the reference backprop).

The rounding bound
------------------
At the same step h both engines estimate ``(J(theta + h e_k) - J(theta - h e_k)) / 2h``. The loop
engine subtracts two totals, each carrying a rounding error of a few ulps of its magnitude
(fastgc's own noise model allows 8 ulps of |J|), so its estimate is off by at most about
``2 * 8 * eps_mach * (1 + |J|) / (2h)``; the network engine sums per-example differences and
carries far less. (The MLP's bce cost is taken on the logits, softplus(z) - y z; the exercise's
``-log(1 - A)`` would add an error ``eps_mach / (1 - A)`` near saturation.) ``SAFETY`` leaves
room.
"""

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st
from problems import LABELS, network_problem

import fastgc
from fastgc._core.schemes import DEFAULT_CENTRAL_STEP
from fastgc._network import kink_mask

EPS = np.finfo(np.float64).eps
SAFETY = 10.0
HIDDEN = ("relu", "leaky_relu", "tanh", "sigmoid", "identity")
MSE_OUTPUTS = ("identity", "sigmoid", "tanh")


@dataclass
class Problem:
    net: fastgc.MLP
    params: dict
    X: np.ndarray
    Y: np.ndarray
    scale: float
    seed: int

    def __repr__(self):
        return (f"Problem({self.net!r}, m={self.X.shape[1]}, scale={self.scale!r}, "
                f"seed={self.seed})")

    @property
    def grads(self):
        return self.net.gradients(self.params, self.X, self.Y)

    @property
    def theta(self):
        return self.net.flatten(self.params)

    def flat(self, numeric):
        return np.concatenate([numeric[k].ravel() for k in self.params])


@st.composite
def problems(draw):
    depth = draw(st.integers(1, 4))
    loss = draw(st.sampled_from(["bce", "ce", "mse"]))
    # ce with one output is a constant cost (softmax over one class is 1): the network engine
    # then fails a correct all-zero gradient, see test_one_class_softmax_zero_gradient_passes
    # below. Two or more classes here.
    n_out = draw(st.integers(2 if loss == "ce" else 1, 4))
    dims = ([draw(st.integers(1, 6))] + [draw(st.integers(1, 8)) for _ in range(depth - 1)]
            + [n_out])
    hidden = [draw(st.sampled_from(HIDDEN)) for _ in range(depth - 1)]
    out = {"bce": "sigmoid", "ce": "softmax"}.get(loss) or draw(st.sampled_from(MSE_OUTPUTS))
    l2 = draw(st.sampled_from([0.0, 0.1]))
    m = draw(st.integers(1, 20))
    scale = draw(st.floats(0.1, 3.0))
    seed = draw(st.integers(0, 2**16))
    net = fastgc.MLP(dims, hidden + [out], loss, l2=l2)
    params, X, Y = network_problem(dims, m, LABELS[loss], seed, seed + 1)
    params = {k: v * scale for k, v in params.items()}
    problem = Problem(net, params, X, Y, scale, seed)
    # The exercise's bce line gives inf/nan once a sigmoid output rounds to exactly 0 or 1
    # (a logit beyond ~37); no engine can check such a point, see
    # test_saturated_bce_output_can_be_checked below.
    with np.errstate(all="ignore"):
        assume(np.isfinite(net(params, X, Y)))
    return problem


def rounding_bound(problem, h, engines=1):
    """SAFETY x the loop-type rounding error of a central difference at steps ``h``, for
    ``engines`` estimates that each subtract two totals (see the module docstring)."""
    net, params, X, Y = problem.net, problem.params, problem.X, problem.Y
    J, cache = net.forward(params, X, Y)
    magnitude = 1.0 + abs(J)
    return SAFETY * engines * 2 * 8 * EPS * magnitude / (2 * h)


def default_steps(theta):
    return DEFAULT_CENTRAL_STEP * np.maximum(1.0, np.abs(theta))


# ---- (a) network engine == loop engine ------------------------------------------------------
@given(problems())
def test_network_engine_equals_loop_engine(problem):
    note(repr(problem))
    p = problem
    net_result = fastgc.check(p.net, p.grads, p.params, p.X, p.Y, engine="network")
    loop_result = fastgc.check(p.net, p.grads, p.params, p.X, p.Y, engine="loop")
    theta = p.theta
    h = default_steps(theta)
    index = np.arange(theta.size)
    # Where the step crosses a relu kink the central difference is not a derivative, but
    # both engines still evaluate the same finite difference (the network engine leaves its
    # piecewise-linear shortcut for the general path), so kinked coordinates are held to the
    # same bound; they are counted apart so that a failure says which kind broke.
    kinked = kink_mask(p.net, theta, p.X, index, h) | kink_mask(p.net, theta, p.X, index, -h)
    excess = np.abs(p.flat(net_result.numeric) - p.flat(loop_result.numeric)) / rounding_bound(p, h)
    note(f"worst |net - loop| / bound: smooth {excess[~kinked].max(initial=0):.3g}, "
         f"kinked ({kinked.sum()}) {excess[kinked].max(initial=0):.3g}")
    assert np.all(excess[~kinked] <= 1)
    assert np.all(excess[kinked] <= 1)


# ---- (b) every mode passes correct gradients -------------------------------------------------
@given(problems())
def test_every_mode_passes_correct_gradients(problem):
    note(repr(problem))
    p = problem
    grads = p.grads
    for options in [{}, {"subset": 0.5}, {"directions": 2}, {"method": "richardson"}]:
        result = fastgc.check(p.net, grads, p.params, p.X, p.Y, **options)
        assert result.engine == "network"
        failing = {name: b.diagnosis for name, b in result.blocks.items() if not b.passed}
        assert not failing, f"{options}: {result.report(color=False)}"


# ---- (c) a stacked numpy forward == loop engine ----------------------------------------------
def _activate(name, Z):
    if name == "relu":
        return np.maximum(0.0, Z)
    if name == "leaky_relu":
        return np.where(Z > 0, Z, 0.01 * Z)
    if name == "tanh":
        return np.tanh(Z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-Z))
    if name == "identity":
        return Z
    raise AssertionError(name)


def stacked_cost(net):
    """The network's cost for parameters with a leading batch axis (``W`` of shape
    ``(B, n, k)``), written from the MLP's documented formulas with ``np.matmul``."""

    @fastgc.batched
    def cost(params, X, Y):
        m = X.shape[1]
        A = X
        for li, name in enumerate(net.activations, start=1):
            Z = np.matmul(params[f"W{li}"], A) + params[f"b{li}"]  # (B, n_l, m)
            A = Z if name == "softmax" else _activate(name, Z)
        if net.loss == "bce":
            per = np.logaddexp(0.0, Z) - Y * Z  # on the logits: the MLP's form near 0 and 1
        elif net.loss == "ce":
            shifted = Z - Z.max(axis=-2, keepdims=True)
            per = -Y * (shifted - np.log(np.exp(shifted).sum(axis=-2, keepdims=True)))
        else:
            per = 0.5 * (A - Y) ** 2
        total = per.sum(axis=(-2, -1)) / m
        if net.l2:
            penalty = sum((params[f"W{li}"] ** 2).sum(axis=(-2, -1))
                          for li in range(1, net.n_layers + 1))
            total = total + net.l2 / (2 * m) * penalty
        return total

    return cost


@given(problems())
def test_stacked_forward_equals_loop_engine(problem):
    note(repr(problem))
    p = problem
    cost = stacked_cost(p.net)
    assert abs(cost(p.params, p.X, p.Y) - p.net(p.params, p.X, p.Y)) <= 64 * EPS * (
        1 + abs(p.net(p.params, p.X, p.Y)))
    # a small max_memory so that several chunks are stacked
    stacked = fastgc.check(cost, p.grads, p.params, p.X, p.Y, max_memory=8 * 8 * p.theta.size)
    loop = fastgc.check(p.net, p.grads, p.params, p.X, p.Y, engine="loop")
    assert stacked.engine == "stacked"
    h = default_steps(p.theta)
    # Both subtract two totals: each carries the loop-type rounding (kinks included: both
    # evaluate the same function, so a crossed kink changes both alike).
    excess = np.abs(p.flat(stacked.numeric) - p.flat(loop.numeric)) / rounding_bound(p, h, 2)
    note(f"worst |stacked - loop| / bound: {excess.max():.3g}")
    assert np.all(excess <= 1)


# ---- bugs the properties ran into (kept visible; excluded from the strategies above) --------
# A softmax over one unit makes the cost identically 0, where a correct zero gradient would
# fail: the MLP refuses it.
def test_one_class_softmax_is_refused():
    with pytest.raises(ValueError, match="softmax over a single output unit is the constant 1"):
        fastgc.MLP([2, 3, 1], "tanh", "ce")


# Near saturation the bce cost is taken on the logits (its gradient stays finite).
def test_saturated_bce_output_can_be_checked():
    net = fastgc.MLP([1, 1], ["sigmoid"], "bce")
    params = {"W1": np.array([[40.0]]), "b1": np.array([[0.0]])}
    X, Y = np.array([[1.0, -0.5]]), np.array([[0.0, 1.0]])
    grads = net.gradients(params, X, Y)
    assert all(np.isfinite(g).all() for g in grads.values())
    assert fastgc.check(net, grads, params, X, Y).passed


# The same on a steep output, through the loop engine's black-box differences.
def test_loop_engine_passes_a_correct_gradient_on_a_steep_bce_output():
    net = fastgc.MLP([1, 1], ["sigmoid"], "bce")
    params = {"W1": np.array([[8.45466195]]), "b1": np.array([[0.55086617]])}
    X = np.array([[-0.23114307, 1.44059678, -1.30189991, 0.07439839]])
    Y = np.array([[1.0, 0.0, 0.0, 0.0]])
    grads = net.gradients(params, X, Y)
    assert fastgc.check(net, grads, params, X, Y, engine="network").passed
    result = fastgc.check(net, grads, params, X, Y, engine="loop")
    assert result.passed, result.report(color=False)


# The one-sided differences at h carry an O(h f'') truncation error into the kink judgement:
# one_sided_consistent (fastgc._core.kinks) extrapolates them over h and h/2.
@pytest.mark.parametrize("engine", ["network", "loop"])
def test_kink_judgement_allows_the_one_sided_truncation_error(engine):
    # Example 0's relu pre-activation sits 3e-5 below 0, inside Richardson's step for b1
    # (1e-3 / 16 = 6.25e-5 for the one-sided check); example 1 gives the cost curvature
    # (f'' ~ 0.04) through the sigmoid output.
    net = fastgc.MLP([1, 1, 1], ["relu", "sigmoid"], "mse")
    params = {"W1": np.array([[1.0]]), "b1": np.array([[0.0]]), "W2": np.array([[2.0]]),
              "b2": np.array([[0.0]])}
    X, Y = np.array([[-3e-5, 1.0]]), np.array([[0.9, 1.0]])
    grads = net.gradients(params, X, Y)
    assert fastgc.check(net, grads, params, X, Y, engine=engine).passed  # central is fine
    result = fastgc.check(net, grads, params, X, Y, engine=engine, method="richardson")
    assert result.kinks == ["b1[0, 0]"]
    assert result.passed, result.report(color=False)
