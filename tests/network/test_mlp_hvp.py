"""``MLP.hvp`` (Pearlmutter's R-op) against the Hessian of the cost by nested central
differences of costs written out here in numpy (no fastgc), for every loss and a mix of
activations. (The tanh network of tests/frontends/second_order_problems.py, whose R-op is
written by hand, is compared with it in tests/frontends/test_second_order.py.)"""

import numpy as np
import pytest

import fastgc


def _act(name, Z):
    return {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
            "relu": lambda z: np.maximum(z, 0), "identity": lambda z: z}[name](Z)


def numpy_cost(dims, acts, loss, l2, X, Y):
    """The MLP's cost, written out: columns are examples."""
    L = len(dims) - 1

    def cost(t):
        A, offset, Ws = X, 0, []
        for li in range(1, L + 1):
            n, k = dims[li], dims[li - 1]
            W = t[offset:offset + n * k].reshape(n, k)
            b = t[offset + n * k:offset + n * k + n].reshape(n, 1)
            offset += n * k + n
            Ws.append(W)
            Z = W @ A + b
            A = Z if li == L and loss == "ce" else _act(acts[li - 1], Z)
        m = X.shape[1]
        if loss == "bce":
            J = -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / m
        elif loss == "ce":
            Z = A - A.max(axis=0)
            J = -np.sum(Y * (Z - np.log(np.exp(Z).sum(axis=0)))) / m
        else:
            J = 0.5 * np.sum((A - Y) ** 2) / m
        return J + l2 / (2 * m) * sum(np.sum(W * W) for W in Ws)

    return cost


def nested_fd_hessian(cost, t0, h=1e-4):
    """Second central differences of the cost, 4 evaluations per entry."""
    n = len(t0)
    H = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.zeros(n), np.zeros(n)
            ei[i], ej[j] = h, h
            H[i, j] = H[j, i] = (cost(t0 + ei + ej) - cost(t0 + ei - ej) - cost(t0 - ei + ej)
                                 + cost(t0 - ei - ej)) / (4 * h * h)
    return H


CASES = [
    ([3, 4, 2], ["tanh", "identity"], "mse", 0.0),
    ([3, 4, 2], ["sigmoid", "tanh"], "mse", 0.2),
    ([3, 4, 1], ["tanh", "sigmoid"], "bce", 0.3),
    ([3, 4, 3, 3], ["tanh", "sigmoid", "softmax"], "ce", 0.1),
    ([3, 5, 2], ["relu", "identity"], "mse", 0.0),
]


@pytest.mark.parametrize("dims, acts, loss, l2", CASES, ids=[f"{c[2]}-{'-'.join(c[1])}"
                                                             for c in CASES])
def test_hvp_matches_nested_differences_of_the_cost(dims, acts, loss, l2):
    rng = np.random.default_rng(7)
    net = fastgc.MLP(dims, acts, loss, l2=l2)
    params = net.init(seed=3)
    m = 6
    X = rng.standard_normal((dims[0], m))
    if loss == "ce":
        Y = np.eye(dims[-1])[:, rng.integers(0, dims[-1], m)]
    elif loss == "bce":
        Y = (rng.random((1, m)) > 0.5).astype(float)
    else:
        Y = rng.standard_normal((dims[-1], m))
    t0 = np.concatenate([params[b].ravel() for b, _ in net.param_shapes()])
    H = nested_fd_hessian(numpy_cost(dims, acts, loss, l2, X, Y), t0)
    for _ in range(2):
        v = {name: rng.standard_normal(shape) for name, shape in net.param_shapes()}
        got = net.hvp(params, v, X, Y)
        assert list(got) == [name for name, _ in net.param_shapes()]
        flat_v = np.concatenate([v[b].ravel() for b, _ in net.param_shapes()])
        flat = np.concatenate([got[b].ravel() for b, _ in net.param_shapes()])
        # nested differences at h = 1e-4: truncation ~1e-8, rounding ~eps |J| / h^2 ~ 1e-8
        np.testing.assert_allclose(flat, H @ flat_v, rtol=1e-5, atol=1e-6)


def test_check_hvp_of_the_network_passes_and_a_wrong_v_is_named():
    net = fastgc.MLP([4, 6, 3], "tanh", "ce", l2=0.1)
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((4, 8)), np.eye(3)[:, rng.integers(0, 3, 8)]
    r = fastgc.check_hvp(net.gradients, net.hvp, params, X, Y, cost=net, directions=2)
    assert r.passed, r.report(color=False)
    with pytest.raises(ValueError, match=r"v\['b1'\] has shape \(6,\), expected \(6, 1\)"):
        net.hvp(params, {**params, "b1": np.zeros(6)}, X, Y)
