"""Tests for the network kernel's direction differences and complex step.

References, never the kernel's own numbers:

* ``direction_deltas``: the cost in extended precision (``np.longdouble``, 64-bit mantissa) at
  the perturbed vector built in float64 as an engine builds it, minus the cost at ``theta``;
  and the float64 loop (two totals subtracted), whose error the kernel must beat by far where
  ``|J|`` is large next to the difference;
* ``complex_step_derivatives``: a plain-numpy complex128 forward pass of the network at
  ``theta + i h e_k`` (activations branching on the real part, a stable complex softplus and a
  log-sum-exp shifted by the real maximum), and the reference backprop ``MLP.gradients``.
"""

import numba
import numpy as np
import pytest
from network_cases import HEADS, HIDDEN, LD, case_id, cost_ld, make_case
from problems import network_problem

from fastgc._network import (
    complex_step_derivatives,
    coordinate_deltas,
    direction_deltas,
)
from fastgc._network.mlp import MLP

EPS_LD = float(np.finfo(LD).eps)

def _blocks(net):
    starts = np.cumsum([0] + [a * b for _, (a, b) in net.param_shapes()])
    return [np.arange(starts[b], starts[b + 1]) for b in range(len(starts) - 1)]


def perturbed(theta, indices, values, step):
    t = theta.copy()
    t[indices] = theta[indices] + step * values  # as an engine builds it, in float64
    return t


def references(net, theta, X, Y, directions, steps):
    """(extended-precision differences, float64 loop differences, J)."""
    J_ld = cost_ld(net, theta, X, Y)
    J = net(net.unflatten(theta), X, Y)
    ld, loop = [], []
    for (indices, values), step in zip(directions, steps, strict=True):
        t = perturbed(theta, indices, values, step)
        ld.append(cost_ld(net, t, X, Y) - J_ld)
        loop.append(net(net.unflatten(t), X, Y) - J)
    return np.array(ld, dtype=LD), np.array(loop), float(J_ld)


def case_directions(net, theta, seed):
    """One dense direction per block, one across every block, one on a few scattered
    coordinates, at small, moderate and kink-crossing steps."""
    rng = np.random.default_rng(seed)
    directions, steps = [], []
    for step in (1e-6, -1e-3, 0.5):
        for block in _blocks(net):
            directions.append((block, rng.standard_normal(block.size)))
            steps.append(step)
        everything = rng.permutation(theta.size)
        directions.append((everything, rng.standard_normal(theta.size)))
        steps.append(step)
        few = rng.choice(theta.size, min(theta.size, 4), replace=False)
        directions.append((few, rng.standard_normal(few.size)))
        steps.append(-step)
    return directions, np.array(steps)


CASES = []
for _loss, _out in HEADS:
    for _depth in (1, 2, 3, 4):
        for _k, _hidden in enumerate(HIDDEN if _depth > 1 else HIDDEN[:1]):
            _l2 = 0.3 if (_k + _depth) % 2 else 0.0
            CASES.append((_depth, _loss, _out, _hidden, _l2, 1 if _depth == 2 else 5))


# ---- direction_deltas -----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_direction_deltas_match_extended_precision(case):
    depth, loss, out, hidden, l2, m = case
    net, theta, X, Y = make_case(depth, loss, out, hidden, l2, m, seed=depth)
    directions, steps = case_directions(net, theta, seed=depth)
    noise = np.empty(len(directions))
    d = direction_deltas(net, theta, X, Y, directions, steps, noise_out=noise)
    ref, loop, J = references(net, theta, X, Y, directions, steps)
    np.testing.assert_allclose(d, loop, rtol=0, atol=1e-13 * (1 + abs(J)))
    err = np.abs(d - ref).astype(float)
    ref_err = 16 * EPS_LD * (1 + abs(J))  # the reference's own rounding
    assert np.all(err <= 1e-12 * np.abs(ref).astype(float) + ref_err)
    # The noise estimate covers the actual error and, for small steps, lies far below the
    # subtraction's few ulps of J.
    assert np.all(err <= noise + ref_err), np.max(err / (noise + ref_err))
    small = np.abs(steps) <= 1e-6
    assert np.all(noise[small] <= 0.01 * np.finfo(float).eps * (1 + abs(J)))


def test_direction_deltas_beat_subtraction_where_it_matters():
    # |J| ~ 500 (targets far from the outputs) and differences ~1e-3: subtracting totals leaves
    # ~1e-13 absolute error, ~1e-10 of the difference; propagating differences does not.
    net = MLP([6, 16, 16, 2], "tanh", loss="mse", l2=0.5)
    theta = net.flatten(net.init(seed=7))
    rng = np.random.default_rng(8)
    X = rng.standard_normal((6, 50))
    Y = 30.0 + rng.standard_normal((2, 50))
    directions = [(b, rng.standard_normal(b.size)) for b in _blocks(net)] * 2
    steps = np.repeat([1e-4, -1e-5], len(directions) // 2)
    noise = np.empty(len(directions))
    d = direction_deltas(net, theta, X, Y, directions, steps, noise_out=noise)
    ref, loop, J = references(net, theta, X, Y, directions, steps)
    assert J > 300
    ref_err = 16 * EPS_LD * J
    err = np.abs(d - ref).astype(float)
    err_loop = np.abs(loop - ref).astype(float)
    assert np.max(err) <= 1e-3 * np.max(err_loop)
    assert np.median(err) <= 1e-2 * np.median(err_loop)
    assert np.all(err <= noise + ref_err)
    # The engine's subtraction noise (8 ulps of J) is 100x above this estimate.
    assert np.all(noise <= 8 * np.finfo(float).eps * J / 100)


def test_one_coordinate_direction_equals_coordinate_deltas():
    net, theta, X, Y = make_case(4, "ce", "softmax", "tanh", 0.2, m=6, seed=3)
    index = np.arange(theta.size)
    for step in (1e-7, -1e-3, 0.7):
        directions = [(np.array([k]), np.array([1.0])) for k in index]
        noise = np.empty(theta.size)
        d = direction_deltas(net, theta, X, Y, directions, np.full(theta.size, step),
                             noise_out=noise)  # fmt: skip
        c = coordinate_deltas(net, theta, X, Y, index, np.full(theta.size, step))
        assert np.all(np.abs(d - c) <= 1e-14 * np.abs(c) + noise)


def test_batching_threads_and_order():
    net, theta, X, Y = make_case(4, "bce", "sigmoid", "relu", 0.1, m=7, seed=4)
    directions, steps = case_directions(net, theta, seed=5)
    noise = np.empty(len(directions))
    d = direction_deltas(net, theta, X, Y, directions, steps, noise_out=noise)
    # One direction per batch, or another order: each direction's products have their own
    # shape whatever the batch, so the same bits.
    single = direction_deltas(net, theta, X, Y, directions, steps, max_memory=1)
    np.testing.assert_array_equal(single, d)
    perm = np.random.default_rng(0).permutation(len(directions))
    shuffled = direction_deltas(net, theta, X, Y, [directions[j] for j in perm], steps[perm])
    np.testing.assert_array_equal(shuffled, d[perm])
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert np.array_equal(d, direction_deltas(net, theta, X, Y, directions, steps))
    finally:
        numba.set_num_threads(threads)


def test_direction_edge_cases():
    net, theta, X, Y = make_case(3, "mse", "identity", "relu", 0.5, m=3, seed=6)
    block = _blocks(net)[2]
    directions = [(block, np.ones(block.size)), (np.array([], dtype=np.int64), np.array([])),
                  (block, np.zeros(block.size))]  # fmt: skip
    noise = np.full(3, np.nan)
    d = direction_deltas(net, theta, X, Y, directions, [0.0, 1.0, 1.0], noise_out=noise)
    assert np.array_equal(d, np.zeros(3)) and np.array_equal(noise, np.zeros(3))
    assert direction_deltas(net, theta, X, Y, [], []).shape == (0,)


def test_direction_validation():
    net, theta, X, Y = make_case(2, "bce", "sigmoid", "relu", 0.0, m=3, seed=0)
    ok = (np.array([0, 1]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="theta must have shape"):
        direction_deltas(net, theta[:-1], X, Y, [ok], [1e-7])
    with pytest.raises(TypeError, match="directions must be a sequence"):
        direction_deltas(net, theta, X, Y, 3, [1e-7])
    with pytest.raises(ValueError, match="step must have shape"):
        direction_deltas(net, theta, X, Y, [ok], [1e-7, 1e-7])
    with pytest.raises(ValueError, match="step entries must be finite"):
        direction_deltas(net, theta, X, Y, [ok], [np.nan])
    with pytest.raises(TypeError, match=r"directions\[0\] must be an \(indices, values\) pair"):
        direction_deltas(net, theta, X, Y, [np.arange(3)], [1e-7])
    with pytest.raises(TypeError, match="indices must be integers"):
        direction_deltas(net, theta, X, Y, [(np.array([0.5]), np.array([1.0]))], [1e-7])
    with pytest.raises(ValueError, match="1-d of equal length"):
        direction_deltas(net, theta, X, Y, [(np.array([0, 1]), np.array([1.0]))], [1e-7])
    with pytest.raises(ValueError, match="indices must lie in"):
        direction_deltas(net, theta, X, Y, [(np.array([theta.size]), np.ones(1))], [1e-7])
    with pytest.raises(ValueError, match="indices must not repeat"):
        direction_deltas(net, theta, X, Y, [(np.array([1, 1]), np.ones(2))], [1e-7])
    with pytest.raises(ValueError, match="values must be finite"):
        direction_deltas(net, theta, X, Y, [(np.array([1]), np.array([np.inf]))], [1e-7])
    with pytest.raises(ValueError, match="noise_out must be"):
        direction_deltas(net, theta, X, Y, [ok], [1e-7], noise_out=np.empty(2))
    with pytest.raises(ValueError, match="Y must have shape"):
        direction_deltas(net, theta, X, Y[:, :2], [ok], [1e-7])


# ---- complex step ---------------------------------------------------------------------------


def _act_complex(name, Z):
    if name == "relu":
        return np.where(Z.real > 0, Z, 0)
    if name == "leaky_relu":
        return np.where(Z.real > 0, Z, 0.01 * Z)
    if name == "tanh":
        return np.tanh(Z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-Z))
    return Z


def cost_complex(net, theta, X, Y):
    """The network's cost evaluated in complex128 arithmetic, plainly."""
    m = X.shape[1]
    A = X.astype(np.complex128)
    penalty = 0j
    start = 0
    for li, name in enumerate(net.activations, start=1):
        n_out, n_in = net.layer_dims[li], net.layer_dims[li - 1]
        W = theta[start : start + n_out * n_in].reshape(n_out, n_in)
        start += n_out * n_in
        b = theta[start : start + n_out].reshape(n_out, 1)
        start += n_out
        penalty += np.sum(W * W)  # W^2, not |W|^2: analytic
        Z = W @ A + b
        A = _act_complex(name, Z) if name != "softmax" else None
    if net.loss == "bce":
        # softplus(z) - y z, with softplus(z) = z + log1p(e^-z) on Re z > 0: no overflow.
        pos = Z.real > 0
        softplus = np.where(pos, Z + np.log1p(np.exp(-np.where(pos, Z, 0))),
                            np.log1p(np.exp(np.where(pos, 0, Z))))  # fmt: skip
        loss = np.sum(softplus - Y * Z)
    elif net.loss == "ce":
        shift = Z.real.max(axis=0)
        lse = shift + np.log(np.exp(Z - shift).sum(axis=0))
        loss = np.sum(Y.sum(axis=0) * lse) - np.sum(Y * Z)
    else:
        loss = np.sum((A - Y) ** 2) / 2
    return loss / m + net.l2 / (2 * m) * penalty


def complex_reference(net, theta, X, Y, index, h):
    out = np.empty(index.size)
    work = theta.astype(np.complex128)
    for j, k in enumerate(index):
        work[k] = theta[k] + 1j * h
        out[j] = cost_complex(net, work, X, Y).imag / h
        work[k] = theta[k]
    return out


def _grad(net, theta, X, Y):
    grads = net.gradients(net.unflatten(theta), X, Y)
    return np.concatenate([g.ravel() for g in grads.values()])


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_complex_step_matches_complex_arithmetic(case):
    depth, loss, out, hidden, l2, m = case
    net, theta, X, Y = make_case(depth, loss, out, hidden, l2, m, seed=depth)
    index = np.arange(theta.size)
    cs = complex_step_derivatives(net, theta, X, Y, index)
    ref = complex_reference(net, theta, X, Y, index, 1e-20)
    grad = _grad(net, theta, X, Y)
    scale = np.abs(grad).max()
    np.testing.assert_allclose(cs, ref, rtol=1e-13, atol=1e-14 * scale)
    np.testing.assert_allclose(cs, grad, rtol=1e-13, atol=1e-14 * scale)


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid"])
def test_complex_step_on_smooth_net_is_exact_to_rounding(hidden):
    net = MLP([8, 12, 10, 6, 4], hidden, loss="ce", l2=0.05)
    params, X, Y = network_problem([8, 12, 10, 6, 4], 40, "onehot", 1, 2)
    theta = net.flatten(params) * 1.5
    index = np.arange(theta.size)
    cs = complex_step_derivatives(net, theta, X, Y, index)
    grad = _grad(net, theta, X, Y)
    assert np.linalg.norm(cs - grad) <= 1e-14 * np.linalg.norm(grad)
    np.testing.assert_allclose(cs, grad, rtol=1e-13, atol=1e-15 * np.abs(grad).max())
    # Far better than the best central difference (about 1e-10 relative at h = eps^(1/3)).
    ref = complex_reference(net, theta, X, Y, index[::7], 1e-20)
    np.testing.assert_allclose(cs[::7], ref, rtol=1e-13, atol=1e-15 * np.abs(grad).max())


def test_complex_step_chunking_threads_order_and_h():
    net = MLP([5, 7, 6, 5, 3], "tanh", loss="mse", l2=0.1)
    params, X, Y = network_problem([5, 7, 6, 5, 3], 30, "normal", 3, 4)
    theta = net.flatten(params)
    index = np.tile(np.arange(theta.size), 2)
    cs = complex_step_derivatives(net, theta, X, Y, index)
    assert np.array_equal(cs[: theta.size], cs[theta.size :])
    # Examples in chunks of one: the sum over examples splits, the value does not move.
    chunked = complex_step_derivatives(net, theta, X, Y, index, max_memory=1)
    np.testing.assert_allclose(chunked, cs, rtol=1e-14, atol=1e-16)
    perm = np.random.default_rng(0).permutation(index.size)
    assert np.array_equal(complex_step_derivatives(net, theta, X, Y, index[perm]), cs[perm])
    assert np.array_equal(complex_step_derivatives(net, theta, X, Y, index, h=1e-9), cs)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert np.array_equal(complex_step_derivatives(net, theta, X, Y, index), cs)
    finally:
        numba.set_num_threads(threads)


def test_complex_step_validation_and_empty():
    net, theta, X, Y = make_case(2, "bce", "sigmoid", "relu", 0.0, m=3, seed=0)
    for h in (0.0, -1e-20, 1e-3, np.nan):
        with pytest.raises(ValueError, match="h must satisfy"):
            complex_step_derivatives(net, theta, X, Y, [0], h=h)
    with pytest.raises(ValueError, match="index entries must lie in"):
        complex_step_derivatives(net, theta, X, Y, [theta.size])
    with pytest.raises(ValueError, match="theta must have shape"):
        complex_step_derivatives(net, theta[1:], X, Y, [0])
    assert complex_step_derivatives(net, theta, X, Y, np.empty(0, np.int64)).shape == (0,)
