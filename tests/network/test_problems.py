"""The tests' numpy-only problem builder (tests/problems.py) against what it stands in for."""

import numpy as np
import pytest
from problems import LABELS, init_params, labels, network_data

import fastgc


@pytest.mark.parametrize("dims", [[4, 5, 3, 1], [784, 16, 10], [2, 3]], ids=str)
@pytest.mark.parametrize("seed", [0, 7])
def test_init_params_is_mlp_init_bit_for_bit(dims, seed):
    # MLP.init documents this initialisation; the tests draw their parameters without it.
    mine, theirs = init_params(dims, seed), fastgc.MLP(dims).init(seed)
    assert list(mine) == list(theirs)
    for name in mine:
        assert mine[name].shape == theirs[name].shape
        np.testing.assert_array_equal(mine[name], theirs[name])


def test_a_generator_stream_continues():
    rng = np.random.default_rng(3)
    X, Y = network_data([3, 2], 5, "normal", rng)
    after = rng.standard_normal()
    again = np.random.default_rng(3)
    np.testing.assert_array_equal(X, again.standard_normal((3, 5)))
    np.testing.assert_array_equal(Y, again.standard_normal((2, 5)))
    assert after == again.standard_normal()


@pytest.mark.parametrize("kind", sorted(set(LABELS.values())))
def test_label_kinds(kind):
    Y = labels(np.random.default_rng(0), kind, 4, 50)
    assert Y.shape == (4, 50)
    if kind == "onehot":
        np.testing.assert_array_equal(Y.sum(axis=0), 1.0)
    if kind == "binary":
        assert set(np.unique(Y)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="unknown label kind"):
        labels(np.random.default_rng(0), "soft", 4, 50)
