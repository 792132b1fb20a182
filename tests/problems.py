"""Seeded dense-network problems for the tests: parameters, inputs and labels, numpy only.

Test data must not come from the code under test, so this module does not import fastgc: the
parameters are drawn here with the initialisation ``fastgc.MLP.init`` documents (He-scaled
weights, biases 0.1 x standard normal, in the order W1, b1, W2, b2, ...), and
``tests/test_problems.py`` checks that the two agree bit for bit.

Each builder takes a seed or a ``numpy.random.Generator`` (``numpy.random.default_rng``
returns a Generator unchanged), so a test that draws more from the same stream afterwards
keeps its numbers.
"""

import numpy as np

# The labels each loss is usually tested with; a test may ask for another kind.
LABELS = {"ce": "onehot", "bce": "binary", "mse": "normal"}


def init_params(dims, seed):
    """``{"W1", "b1", ...}`` for layer sizes ``dims = (n0, ..., nL)``.

    ``W_l`` is ``(n_l, n_{l-1})`` standard normal times ``sqrt(2 / n_{l-1})`` (He), ``b_l`` is
    ``(n_l, 1)`` standard normal times 0.1, drawn in the order W1, b1, W2, b2, ...
    """
    rng = np.random.default_rng(seed)
    params = {}
    for layer in range(1, len(dims)):
        n_out, n_in = dims[layer], dims[layer - 1]
        params[f"W{layer}"] = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
        params[f"b{layer}"] = 0.1 * rng.standard_normal((n_out, 1))
    return params


def labels(rng, kind, n_out, m):
    """``(n_out, m)`` labels drawn from ``rng``.

    ``kind``: ``"onehot"`` (a uniformly drawn class per example), ``"binary"`` (each entry 0
    or 1 with probability 1/2) or ``"normal"`` (standard normal targets).
    """
    if kind == "onehot":
        return np.eye(n_out)[:, rng.integers(0, n_out, m)]
    if kind == "binary":
        return (rng.random((n_out, m)) < 0.5).astype(float)
    if kind == "normal":
        return rng.standard_normal((n_out, m))
    raise ValueError(f"unknown label kind {kind!r}; choose from onehot, binary, normal")


def network_data(dims, m, kind, seed):
    """``X`` (``(n0, m)``, standard normal), then ``Y`` (:func:`labels`), from one stream."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((dims[0], m))
    return X, labels(rng, kind, dims[-1], m)


def network_problem(dims, m, kind, params_seed, data_seed):
    """``(params, X, Y)``: :func:`init_params` and :func:`network_data` with their seeds."""
    return init_params(dims, params_seed), *network_data(dims, m, kind, data_seed)
