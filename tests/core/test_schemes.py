"""The schemes (fastgc._core.schemes), sharper verdicts: Richardson, the complex step, kinks,
and the error-model threshold.

References are closed forms and fastgc.MLP.gradients (itself tested against the loop of the
exercise), never numbers the scheme under test produced.
"""

import numba
import numpy as np
import pytest
from problems import network_problem

import fastgc

# ---- a zoo of dense networks --------------------------------------------------------------
ZOO = [
    # (hidden activation, loss, l2, batch size)
    ("relu", "bce", 0.0, 3),
    ("leaky_relu", "ce", 0.1, 16),
    ("tanh", "ce", 0.0, 64),
    ("sigmoid", "mse", 0.2, 8),
    ("tanh", "bce", 0.05, 256),
    ("relu", "mse", 0.0, 32),
]


def _zoo_problem(act, loss, l2, m, seed=0, dims=(5, 8, 6, 3)):
    dims = list(dims)
    net = fastgc.MLP(dims, act, loss, l2=l2)
    kind = "onehot" if loss == "ce" else "binary"  # 0/1 targets for mse too
    params, X, Y = network_problem(dims, m, kind, seed, seed + 1)
    return net, params, X, Y, net.gradients(params, X, Y)


@pytest.mark.parametrize("method", ["central", "richardson"])
@pytest.mark.parametrize("engine", ["network", "loop"])
@pytest.mark.parametrize("act, loss, l2, m", ZOO)
def test_no_false_failures_on_correct_gradients(act, loss, l2, m, engine, method):
    net, params, X, Y, grads = _zoo_problem(act, loss, l2, m)
    result = fastgc.check(net, grads, params, X, Y, engine=engine, method=method)
    assert result.passed, result.report()


@pytest.mark.parametrize("act, loss, l2, m", ZOO)
def test_one_part_in_a_million_is_caught_by_richardson_and_missed_by_central(act, loss, l2, m):
    net, params, X, Y, grads = _zoo_problem(act, loss, l2, m)
    grads["dW2"] = grads["dW2"] * (1 + 1e-6)
    sharp = fastgc.check(net, grads, params, X, Y, method="richardson")
    assert not sharp.passed
    assert [n for n, b in sharp.blocks.items() if not b.passed] == ["W2"]
    exercise = fastgc.check(net, grads, params, X, Y, eps=1e-7, threshold=2e-7)
    assert exercise.passed  # the exercise's setting cannot see it


@pytest.mark.parametrize("act, loss", [("tanh", "ce"), ("sigmoid", "bce"), ("tanh", "mse")])
def test_richardson_accuracy_on_smooth_networks(act, loss):
    net, params, X, Y, grads = _zoo_problem(act, loss, 0.1, 16)
    result = fastgc.check(net, grads, params, X, Y, method="richardson")
    exact = np.concatenate([grads["d" + k].ravel() for k in params])
    numeric = np.concatenate([result.numeric[k].ravel() for k in params])
    rel = np.linalg.norm(numeric - exact) / np.linalg.norm(exact)
    assert rel <= 1e-10
    assert "Richardson error model" in result.report()


def test_richardson_counts_and_error_estimates():
    net, params, X, Y, grads = _zoo_problem("tanh", "ce", 0.0, 8)
    result = fastgc.check(net, grads, params, X, Y, method="richardson")
    P = sum(v.size for v in params.values())
    # scipy's order-4 scheme: at least 4 evaluations per coordinate, at most 5 iterations
    assert 4 * P < result.nfev <= 2 * 5 * 2 * P + 1 + 2 * P
    assert result.threshold == 1e-8


# ---- the complex step -----------------------------------------------------------------------
def _smooth(theta, A):
    # log-sum-exp of tanh(A theta): complex-analytic
    z = np.tanh(A @ theta)
    return np.log(np.sum(np.exp(z)))


def _smooth_grad(theta, A):
    z = np.tanh(A @ theta)
    p = np.exp(z) / np.sum(np.exp(z))
    return A.T @ (p * (1 - z**2))


@numba.njit
def _smooth_numba(theta, A):
    # numba's matmul does not mix float64 and complex128: the same cost with loops
    z = np.zeros(A.shape[0], dtype=theta.dtype)
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            z[i] += A[i, j] * theta[j]
    return np.log(np.sum(np.exp(np.tanh(z))))


@fastgc.batched
def _smooth_batched(theta, A):
    z = np.tanh(np.matmul(A, theta[..., None])[..., 0])
    return np.log(np.sum(np.exp(z), axis=-1))


@pytest.mark.parametrize("cost, engine", [(_smooth, "loop"), (_smooth_numba, "numba"),
                                          (_smooth_batched, "stacked")])
def test_complex_step_is_exact_to_rounding(cost, engine):
    rng = np.random.default_rng(4)
    theta, A = rng.standard_normal(7), rng.standard_normal((5, 7))
    exact = _smooth_grad(theta, A)
    result = fastgc.check(cost, exact, theta, A, method="complex", engine=engine)
    assert result.engine == engine
    assert result.passed, result.report()
    np.testing.assert_allclose(result.numeric, exact, rtol=1e-13, atol=1e-15)
    wrong = exact * (1 + 1e-6)
    assert not fastgc.check(cost, wrong, theta, A, method="complex", engine=engine).passed


def test_complex_step_refuses_a_cost_that_drops_the_imaginary_part():
    with pytest.raises(ValueError, match="needs a complex-safe cost, but it returned float"):
        fastgc.check(lambda x: float(np.sum(np.abs(x) ** 2)), lambda x: 2 * x,
                     np.array([1.0, -2.0]), method="complex")
    with pytest.raises(ValueError, match="needs a complex-safe cost"):
        fastgc.check(lambda x: np.real(np.sum(x**3)), lambda x: 3 * x**2, np.array([1.0, 2.0]),
                     method="complex")


def test_complex_step_refuses_a_non_analytic_cost():
    # |x|^2 via conj: stays complex, but Im(J(x + ih)) = 0: not analytic
    def cost(x):
        return np.sum(x * np.conj(x)) + np.sum(x)

    with pytest.raises(ValueError, match="not complex-analytic"):
        fastgc.check(cost, lambda x: 2 * x.real + 1, np.array([1.0, -2.0]), method="complex")


# ---- kinks ------------------------------------------------------------------------------------
def test_kink_inside_the_step_is_reported_not_failed():
    # J = sum(relu(x)); x[1] sits 1e-7 from the kink, inside a step of 1e-5
    def cost(x):
        return np.sum(np.maximum(x, 0.0))

    x = np.array([0.5, 1e-7, -0.3])
    grad = (x > 0).astype(float)
    result = fastgc.check(cost, grad, x, eps=1e-5)
    assert result.passed, result.report()
    assert result.kinks == ["params[1]"]
    assert any("not differentiable within the step" in n for n in result.notes)
    # a value outside both one-sided differences is still a wrong gradient
    bad = grad.copy()
    bad[1] = 3.0
    failed = fastgc.check(cost, bad, x, eps=1e-5)
    assert not failed.passed
    assert "outside the one-sided differences" in failed.blocks["params"].diagnosis


# A relu network whose cost is piecewise quadratic along every coordinate (relu hidden layers,
# identity output, mse loss): a central difference of a quadratic is exact, so even with a large
# step every coordinate whose step crosses no kink has an estimate exact to rounding, and only
# the kink-crossing ones can look wrong. Everything below but fastgc.check is plain numpy.
KINK_DIMS = (3, 6, 4, 2)


def _kink_problem(m, seed=0):
    net = fastgc.MLP(list(KINK_DIMS), "relu", "mse")
    params = net.init(seed)  # data only: He-scaled weights, biases 0.1 x N(0, 1)
    rng = np.random.default_rng(seed + 1)
    return net, params, rng.standard_normal((KINK_DIMS[0], m)), rng.standard_normal(
        (KINK_DIMS[-1], m))


def _relu_mse(p, X, Y):
    """Cost 1/(2m) sum((A3 - Y)^2), its gradient (backprop by hand), and the relu
    pre-activations [Z1, Z2]."""
    m = X.shape[1]
    Z1 = p["W1"] @ X + p["b1"]
    A1 = np.maximum(Z1, 0.0)
    Z2 = p["W2"] @ A1 + p["b2"]
    A2 = np.maximum(Z2, 0.0)
    A3 = p["W3"] @ A2 + p["b3"]
    cost = 0.5 / m * np.sum((A3 - Y) ** 2)
    dZ3 = (A3 - Y) / m
    dZ2 = (p["W3"].T @ dZ3) * (Z2 > 0)
    dZ1 = (p["W2"].T @ dZ2) * (Z1 > 0)
    grads = {"dW1": dZ1 @ X.T, "db1": dZ1.sum(1, keepdims=True),
             "dW2": dZ2 @ A1.T, "db2": dZ2.sum(1, keepdims=True),
             "dW3": dZ3 @ A2.T, "db3": dZ3.sum(1, keepdims=True)}
    return cost, grads, [Z1, Z2]


def _brute_force_kinks(params, X, Y, h):
    """For every coordinate ("W2[1, 3]"): whether some relu pre-activation of some example
    changes sign between theta and theta + h or theta - h, and the plain central difference."""
    _, _, z0 = _relu_mse(params, X, Y)
    crossing, central = {}, {}
    for key, value in params.items():
        for i, j in np.ndindex(value.shape):
            name = f"{key}[{i}, {j}]"
            costs, crossed = [], False
            for step in (h, -h):
                moved = {k: v.copy() for k, v in params.items()}
                moved[key][i, j] += step
                cost, _, z = _relu_mse(moved, X, Y)
                costs.append(cost)
                crossed |= any(((a > 0) != (b > 0)).any() for a, b in zip(z, z0, strict=True))
            crossing[name] = crossed
            central[name] = (costs[0] - costs[1]) / (2 * h)
    return crossing, central


@pytest.mark.parametrize("engine, m, eps", [
    ("network", 16, 1e-2),
    ("loop", 16, 1e-2),
    ("network", 8, 3e-2),
    ("loop", 8, 3e-2),
])
def test_kinks_are_exactly_the_coordinates_whose_step_crosses_one(engine, m, eps):
    net, params, X, Y = _kink_problem(m)
    _, grads, _ = _relu_mse(params, X, Y)
    crossing, central = _brute_force_kinks(params, X, Y, eps)
    kinks = {name for name, crossed in crossing.items() if crossed}
    rel = {name: abs(central[name] - g) / max(abs(central[name]) + abs(g), 1e-300)  # 0/0: 0
           for name, g in zip(crossing, np.concatenate([grads["d" + k].ravel() for k in params]),
                              strict=True)}
    # Preconditions, all plain numpy. Some steps cross a kink. Those that cross none give the
    # analytic value to rounding (noise / h ~ 1e-14; 1e-9 leaves room): the gradient is right.
    # Those that cross one are visibly wrong, more than 1e-4 relative, a hundred times fastgc's
    # 1e-6 threshold: fastgc examines only coordinates whose estimate looks wrong, and these
    # all do, so it must examine every one, and the reported kinks must be the crossing set
    # itself, not merely a subset of it.
    assert kinks
    assert max(rel[n] for n in crossing if n not in kinks) <= 1e-9
    assert min(rel[n] for n in kinks) > 1e-4
    result = fastgc.check(net, grads, params, X, Y, eps=eps, engine=engine)
    assert result.engine == engine
    assert len(result.kinks) == len(set(result.kinks))
    assert set(result.kinks) == kinks
    assert result.passed, result.report()  # kinked coordinates judged one-sided, not failed


# ---- the complex step on the network engine ----------------------------------------------
@pytest.mark.parametrize("act, loss, l2, m", ZOO)
def test_network_complex_step_on_the_zoo(act, loss, l2, m):
    net, params, X, Y, grads = _zoo_problem(act, loss, l2, m)
    result = fastgc.check(net, grads, params, X, Y, method="complex")
    assert result.engine == "network"
    assert result.passed, result.report()
    assert result.nfev == sum(v.size for v in params.values()) + 1  # one per coordinate
    grads["dW2"] = grads["dW2"] * (1 + 1e-6)
    wrong = fastgc.check(net, grads, params, X, Y, method="complex")
    assert [n for n, b in wrong.blocks.items() if not b.passed] == ["W2"]


@pytest.mark.parametrize("act, loss", [("tanh", "ce"), ("sigmoid", "bce"), ("tanh", "mse")])
def test_network_complex_step_accuracy_on_smooth_networks(act, loss):
    net, params, X, Y, grads = _zoo_problem(act, loss, 0.1, 16)
    result = fastgc.check(net, grads, params, X, Y, method="complex")
    exact = np.concatenate([grads["d" + k].ravel() for k in params])
    numeric = np.concatenate([result.numeric[k].ravel() for k in params])
    assert np.linalg.norm(numeric - exact) / np.linalg.norm(exact) <= 1e-13


# ---- why Richardson is driven by scipy (README, "Methods") ------------------------------------
def table_richardson(objective, index, step):
    """Central differences at h, h/2, h/4 extrapolated to h -> 0: 6 evaluations each (the
    Richardson table that fastgc does not use; kept here for the comparison).

    ``D(h) = f' + c1 h^2 + c2 h^4 + ...``; the quadratic in ``h^2`` through the three points,
    evaluated at 0, cancels the ``h^2`` and ``h^4`` terms. Its error is estimated as the
    distance to the extrapolation from the two smaller steps alone, plus the rounding that
    the extrapolation amplifies.
    """
    from fastgc._core.schemes import Estimate

    n = len(index)
    steps = np.concatenate([step, step / 2, step / 4])
    idx3 = np.tile(index, 3)
    d = objective.at_coordinates(np.concatenate([idx3, idx3]),
                                 np.concatenate([steps, -steps])).values
    D = ((d[: 3 * n] - d[3 * n :]) / (2 * steps)).reshape(3, n)
    r1_coarse = (4 * D[1] - D[0]) / 3
    r1_fine = (4 * D[2] - D[1]) / 3
    r2 = (16 * r1_fine - r1_coarse) / 15
    rounding = 2.2 * objective.noise / (step / 4)
    return Estimate(r2, np.abs(r2 - r1_fine) + rounding, step / 4)


def test_table_richardson_is_as_sharp_on_smooth_nets_but_its_error_estimate_is_not_safe():
    from fastgc._core.layout import Layout
    from fastgc._core.schemes import richardson_scipy
    from fastgc._engines.registry import make_objective

    def run(act, m):
        # the README's measurement: 10-20-10-3, softmax/CE, params init(1), data seed 0
        net = fastgc.MLP([10, 20, 10, 3], act, "ce")
        params, X, Y = network_problem([10, 20, 10, 3], m, "onehot", 1, 0)
        layout, theta = Layout.of(params)
        exact, _ = layout.flatten_gradient(net.gradients(params, X, Y))
        objective = make_objective(net, layout, theta, (X, Y), "network")
        index = np.arange(layout.size)
        h = 1e-3 * np.maximum(1.0, np.abs(theta))
        return (exact, table_richardson(objective, index, h),
                richardson_scipy(objective, theta, index, h))

    exact, table, scipy_ = run("tanh", 64)
    for estimate in (table, scipy_):
        assert np.linalg.norm(estimate.numeric - exact) / np.linalg.norm(exact) < 1e-12
    # relu, 64 examples: 1e-3 steps cross kinks; the table's error estimate then understates
    # its error, scipy's does not (its iterations stop on disagreement and report it)
    exact, table, scipy_ = run("relu", 64)
    assert np.max(np.abs(table.numeric - exact) / table.error) > 10
    assert np.max(np.abs(scipy_.numeric - exact) / scipy_.error) < 1
