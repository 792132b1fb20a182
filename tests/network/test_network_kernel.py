"""Tests for the dense-network coordinate and kink kernels (``fastgc._network``).

References, never the kernel's own numbers:

* the plain loop: ``net(unflatten(theta + step e_j)) - net(unflatten(theta))`` in float64, which
  is what the exercise computes; its subtraction of two totals carries a few ulp of ``J`` of
  rounding, so agreement is asked within ``1e-13 (1 + |J|)`` (about 450 ulp of a unit cost: loose
  for rounding, yet a millionth of any gradient error visible at ``h = 1e-7``);
* the same differences in extended precision (``np.longdouble``, 64-bit mantissa), from the
  stable forms of the losses; the kernel, which never subtracts two totals, must land within
  ``1e-12 |d| + 1e-17 (1 + |J|)`` of it, far inside the float64 loop's error.
"""

import numba
import numpy as np
import pytest
from network_cases import HEADS, HIDDEN, LD, case_id, cost_ld, make_case

from fastgc._network import NetworkState, coordinate_deltas, kink_mask
from fastgc._network import coordinates as network_kernel
from fastgc._network.activations import stable_derivative
from fastgc._network.differences import smooth_coeffs
from fastgc._network.mlp import MLP


def direct_deltas(net, theta, X, Y, index, step):
    """The exercise's loop: perturb a copy, full forward pass, subtract the two totals."""
    J0 = net(net.unflatten(theta), X, Y)
    out = np.empty(index.size)
    for j in range(index.size):
        t = theta.copy()
        t[index[j]] += step[j]
        out[j] = net(net.unflatten(t), X, Y) - J0
    return out, J0


def ld_deltas(net, theta, X, Y, index, step):
    J0 = cost_ld(net, theta, X, Y)
    out = np.empty(index.size, dtype=LD)
    for j in range(index.size):
        t = theta.copy()
        t[index[j]] += step[j]  # rounded in float64, as every engine applies it
        out[j] = cost_ld(net, t, X, Y) - J0
    return out, float(J0)


def all_coordinates(theta, steps):
    P = theta.size
    index = np.tile(np.arange(P, dtype=np.int64), len(steps))
    step = np.repeat(np.asarray(steps, dtype=float), P)
    return index, step


CASES = []
for _loss, _out in HEADS:
    for _depth in (1, 2, 3, 4):
        for _k, _hidden in enumerate(HIDDEN if _depth > 1 else HIDDEN[:1]):
            _m = 1 if _depth == 2 else 4
            _l2 = 0.3 if (_k + _depth) % 2 else 0.0
            CASES.append((_depth, _loss, _out, _hidden, _l2, _m))


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_deltas_match_references(case):
    depth, loss, out, hidden, l2, m = case
    net, theta, X, Y = make_case(depth, loss, out, hidden, l2, m, seed=depth)
    index, step = all_coordinates(theta, [1e-7, -1e-7, 1e-3, -1e-3])
    d = coordinate_deltas(net, theta, X, Y, index, step)
    ref, J = direct_deltas(net, theta, X, Y, index, step)
    np.testing.assert_allclose(d, ref, rtol=0, atol=1e-13 * (1 + abs(J)))
    ref_ld, J = ld_deltas(net, theta, X, Y, index, step)
    err = np.abs(d - ref_ld).astype(float)
    bound = 1e-12 * np.abs(ref_ld).astype(float) + 1e-17 * (1 + abs(J))
    assert np.all(err <= bound), (err / bound).max()


@pytest.mark.parametrize(("hidden", "loss", "out"), [("relu", "ce", "softmax"),
                                                     ("leaky_relu", "mse", "relu"),
                                                     ("relu", "bce", "sigmoid")])  # fmt: skip
def test_large_steps_crossing_kinks(hidden, loss, out):
    # Steps of 0.5 push many relu pre-activations across 0: the general path and the
    # margin fallback of the piecewise-linear shortcut must both stay exact.
    net, theta, X, Y = make_case(4, loss, out, hidden, 0.1, m=6, seed=11)
    index, step = all_coordinates(theta, [0.5, -0.5, 3.0])
    kinks = kink_mask(net, theta, X, index, step)
    assert kinks.mean() > 0.2
    d = coordinate_deltas(net, theta, X, Y, index, step)
    ref, J = direct_deltas(net, theta, X, Y, index, step)
    np.testing.assert_allclose(d, ref, rtol=0, atol=1e-13 * (1 + abs(J)))
    ref_ld, J = ld_deltas(net, theta, X, Y, index, step)
    err = np.abs(d - ref_ld).astype(float)
    assert np.all(err <= 1e-12 * np.abs(ref_ld).astype(float) + 1e-17 * (1 + abs(J)))


def test_saturated_outputs_stay_exact():
    # Logits of size ~40-100: the exercise's log(1 - sigmoid) form saturates in float64, the
    # kernel's difference formulas do not; compare with the extended-precision reference.
    for loss, out in (("bce", "sigmoid"), ("ce", "softmax")):
        net, theta, X, Y = make_case(3, loss, out, "tanh", 0.0, m=5, seed=5)
        theta = theta * 6.0
        index, step = all_coordinates(theta, [1e-7, -1e-4, 2.0])
        d = coordinate_deltas(net, theta, X, Y, index, step)
        ref_ld, J = ld_deltas(net, theta, X, Y, index, step)
        err = np.abs(d - ref_ld).astype(float)
        assert np.all(err <= 1e-12 * np.abs(ref_ld).astype(float) + 1e-17 * (1 + abs(J)))


def test_soft_labels_and_wide_batch():
    net, theta, X, _ = make_case(3, "ce", "softmax", "relu", 0.2, m=40, seed=2)
    Y = np.random.default_rng(3).random((3, 40))
    index, step = all_coordinates(theta, [1e-7, -1e-3])
    d = coordinate_deltas(net, theta, X, Y, index, step)
    ref, J = direct_deltas(net, theta, X, Y, index, step)
    np.testing.assert_allclose(d, ref, rtol=0, atol=1e-13 * (1 + abs(J)))


def test_exercise_network_and_data():
    rs = np.random.RandomState(1)  # the exercise's np.random.seed(1) stream
    X = rs.randn(4, 3)
    Y = np.array([1, 1, 0])
    params = {}
    for key, shape in (("W1", (5, 4)), ("b1", (5, 1)), ("W2", (3, 5)), ("b2", (3, 1)),
                       ("W3", (1, 3)), ("b3", (1, 1))):  # fmt: skip
        params[key] = rs.randn(*shape)
    net = MLP([4, 5, 3, 1])
    theta = net.flatten(params)
    index, step = all_coordinates(theta, [1e-7, -1e-7])
    d = coordinate_deltas(net, theta, X, Y, index, step)
    ref, J = direct_deltas(net, theta, X, Y, index, step)
    np.testing.assert_allclose(d, ref, rtol=0, atol=1e-13 * (1 + abs(J)))
    # The exercise's gradapprox, from the kernel's differences.
    P = theta.size
    approx = (d[:P] - d[P:]) / 2e-7
    grad = np.concatenate([g.ravel() for g in net.gradients(params, X, Y).values()])
    np.testing.assert_allclose(approx, grad, rtol=1e-6, atol=1e-9)


def test_chunking_order_and_threads_do_not_change_results(monkeypatch):
    net, theta, X, Y = make_case(4, "ce", "softmax", "relu", 0.1, m=7, seed=4)
    index, step = all_coordinates(theta, [1e-7, -1e-3, 0.5])
    d = coordinate_deltas(net, theta, X, Y, index, step)  # small: the serial kernels
    assert np.array_equal(d, coordinate_deltas(net, theta, X, Y, index, step))
    # Force the threaded kernels, then vary the chunking, the order and the thread count.
    monkeypatch.setattr(network_kernel, "_SERIAL_WORK", 0)
    assert np.array_equal(d, coordinate_deltas(net, theta, X, Y, index, step))
    # Tiny workspace: one hidden unit's tables per chunk.
    assert np.array_equal(d, coordinate_deltas(net, theta, X, Y, index, step, max_memory=1))
    assert np.array_equal(d, coordinate_deltas(net, theta, X, Y, index, step, max_memory=600))
    perm = np.random.default_rng(0).permutation(index.size)
    assert np.array_equal(d[perm], coordinate_deltas(net, theta, X, Y, index[perm], step[perm]))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = coordinate_deltas(net, theta, X, Y, index, step)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(d, single)


def test_zero_and_tiny_steps():
    net, theta, X, Y = make_case(3, "mse", "identity", "relu", 0.5, m=3, seed=6)
    index = np.array([0, 5, 20], dtype=np.int64)
    d = coordinate_deltas(net, theta, X, Y, index, np.zeros(3))
    assert np.array_equal(d, np.zeros(3))
    # A step below half an ulp of theta_j is no step at all, as in the loop.
    d = coordinate_deltas(net, theta, X, Y, index, np.abs(theta[index]) * 1e-17)
    assert np.array_equal(d, np.zeros(3))
    assert coordinate_deltas(net, theta, X, Y, np.empty(0, np.int64), np.empty(0)).shape == (0,)


def test_input_validation():
    net, theta, X, Y = make_case(2, "bce", "sigmoid", "relu", 0.0, m=3, seed=0)
    with pytest.raises(ValueError, match="theta must have shape"):
        coordinate_deltas(net, theta[:-1], X, Y, [0], [1e-7])
    with pytest.raises(ValueError, match="index and step must be 1-d of equal length"):
        coordinate_deltas(net, theta, X, Y, [0, 1], [1e-7])
    with pytest.raises(ValueError, match="index entries must lie in"):
        coordinate_deltas(net, theta, X, Y, [theta.size], [1e-7])
    with pytest.raises(ValueError, match="Y must have shape"):
        coordinate_deltas(net, theta, X, Y[:, :2], [0], [1e-7])


def brute_kinks(net, theta, X, index, step):
    """A full forward pass per perturbation; compare the sides of 0 of every relu/leaky unit."""
    kinked = [a in ("relu", "leaky_relu") for a in net.activations]
    Z0, _ = net.forward_cache(net.unflatten(theta), X)
    out = np.zeros(index.size, dtype=bool)
    for j in range(index.size):
        t = theta.copy()
        t[index[j]] += step[j]
        Z1, _ = net.forward_cache(net.unflatten(t), X)
        out[j] = any(
            np.any((a > 0) != (b > 0)) for a, b, k in zip(Z0, Z1, kinked, strict=True) if k
        )
    return out


@pytest.mark.parametrize(("hidden", "out", "loss"), [("relu", "sigmoid", "bce"),
                                                     ("leaky_relu", "relu", "mse"),
                                                     ("tanh", "leaky_relu", "mse"),
                                                     ("relu", "softmax", "ce")])  # fmt: skip
def test_kink_mask_matches_brute_force(hidden, out, loss):
    for depth in (1, 2, 4):
        net, theta, X, _ = make_case(depth, loss, out, hidden, 0.0, m=5, seed=depth + 20)
        index, step = all_coordinates(theta, [1e-3, -0.3, 2.0])
        mask = kink_mask(net, theta, X, index, step)
        assert np.array_equal(mask, brute_kinks(net, theta, X, index, step))
        assert mask.any() or depth == 1 and out in ("sigmoid", "softmax")


SMOOTH_CASES = [("tanh", "ce", "softmax"), ("sigmoid", "bce", "sigmoid"),
                ("tanh", "mse", "tanh"), ("mixed", "ce", "softmax")]  # fmt: skip


def _smooth_case(hidden, loss, out, m, seed):
    net, theta, X, Y = make_case(4, loss, out, "tanh", 0.2, m=m, seed=seed)
    if hidden != "tanh":
        acts = ["sigmoid"] * 3 if hidden == "sigmoid" else ["relu", "sigmoid", "relu"]
        net = MLP(net.layer_dims, acts + [out], loss=loss, l2=0.2)
    return net, theta, X, Y


@pytest.mark.parametrize(("hidden", "loss", "out"), SMOOTH_CASES)
def test_smooth_taylor_shortcut_is_exact(hidden, loss, out, monkeypatch):
    # Steps from far inside to beyond the series' margin (|dZ| <= 1e-4): the Taylor tables,
    # the general path and its small-step forms must all agree with the references.
    net, theta, X, Y = _smooth_case(hidden, loss, out, m=6, seed=31)
    index, step = all_coordinates(theta, [1e-8, -3e-6, 4e-5, -2e-4, 1e-3, -0.3])
    state = NetworkState(net, theta, X, Y)
    state.coordinate_deltas([0], [1e-7])
    assert state._coordinates.n_units > 0  # the shortcut is in play
    d = coordinate_deltas(net, theta, X, Y, index, step)
    ref_ld, J = ld_deltas(net, theta, X, Y, index, step)
    err = np.abs(d - ref_ld).astype(float)
    bound = 1e-12 * np.abs(ref_ld).astype(float) + 1e-17 * (1 + abs(J))
    assert np.all(err <= bound), (err / bound).max()
    ref, J = direct_deltas(net, theta, X, Y, index, step)
    np.testing.assert_allclose(d, ref, rtol=0, atol=1e-13 * (1 + abs(J)))
    # Without the series: the general path only; the two agree far below the LD bound.
    monkeypatch.setattr(network_kernel, "_TAYLOR_DELTA", 0.0)
    general = coordinate_deltas(net, theta, X, Y, index, step)
    assert np.all(np.abs(d - general) <= 1e-14 * np.abs(general) + 1e-19 * (1 + abs(J)))


@pytest.mark.parametrize("code", [3, 4])
def test_smooth_series_coefficients(code):
    # sum_q c_q d^q against g(z + d) - g(z) in extended precision, saturated z included.
    z = np.array([-40.0, -8.0, -1.3, -0.2, 0.0, 0.4, 2.5, 9.0, 35.0])
    zl = z.astype(LD)
    if code == 3:
        a = np.tanh(z)

        def diff(x, e):  # tanh(x + e) - tanh(x) without cancellation
            return np.sinh(e) / (np.cosh(x + e) * np.cosh(x))
    else:
        a = 1 / (1 + np.exp(-z))

        def diff(x, e):  # s(x + e) - s(x) = -s(x + e) s(-x) expm1(-e)
            return -np.expm1(-e) / ((1 + np.exp(-x - e)) * (1 + np.exp(x)))
    gp = stable_derivative("tanh" if code == 3 else "sigmoid", z)
    coef = np.empty(network_kernel._TAYLOR_K)
    for j in range(z.size):
        smooth_coeffs(code, a[j], gp[j], coef, coef.size)
        for dd in (1e-4, -1e-4, 3e-6):
            series = sum(coef[q] * LD(dd) ** (q + 1) for q in range(coef.size))
            exact = diff(zl[j], LD(dd))
            assert abs(series - exact) <= 1e-14 * abs(exact), (z[j], dd)


def test_smooth_chunking_order_and_threads_do_not_change_results(monkeypatch):
    net, theta, X, Y = _smooth_case("mixed", "ce", "softmax", m=7, seed=4)
    index, step = all_coordinates(theta, [1e-7, -1e-5, 2e-4, -1e-3])
    d = coordinate_deltas(net, theta, X, Y, index, step)
    monkeypatch.setattr(network_kernel, "_SERIAL_WORK", 0)
    assert np.array_equal(d, coordinate_deltas(net, theta, X, Y, index, step))
    assert np.array_equal(d, coordinate_deltas(net, theta, X, Y, index, step, max_memory=1))
    assert np.array_equal(d, coordinate_deltas(net, theta, X, Y, index, step, max_memory=3000))
    perm = np.random.default_rng(1).permutation(index.size)
    assert np.array_equal(d[perm], coordinate_deltas(net, theta, X, Y, index[perm], step[perm]))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = coordinate_deltas(net, theta, X, Y, index, step)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(d, single)
