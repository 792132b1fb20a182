"""The cotangent of check_vjp / check_layer: drawn from a stream no user draws data from, and
handed to every backward call as a fresh copy.

References are hand-written numpy backward passes (an affine layer), correct or with a
planted bug.
"""

import warnings

import numpy as np
import pytest

import fastgc


def _matmul_forward(x, w):
    return x @ w, (x, w)


def _matmul_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout


def _transposed_dw_backward(dout, cache):
    x, w = cache
    return dout @ w.T, (x.T @ dout).T  # the bug: dW transposed


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_data_drawn_like_the_default_cotangent_does_not_blind_the_check(seed):
    # x = default_rng(seed).normal(size=s) and an output of shape s (x @ W with W square):
    # were the cotangent drawn from default_rng(seed) too, it would equal x, dW = x^T x would
    # be symmetric, and a transposed dW would pass
    x = np.random.default_rng(seed).normal(size=(4, 4))
    w = np.random.default_rng(100 + seed).normal(size=(4, 4))
    assert np.allclose(np.random.default_rng(seed).standard_normal((4, 4)), x)  # precondition
    assert fastgc.check_layer(_matmul_forward, _matmul_backward, (x, w), seed=seed).passed
    wrong = fastgc.check_layer(_matmul_forward, _transposed_dw_backward, (x, w), seed=seed)
    assert not wrong.passed, wrong.report(color=False)
    assert not wrong.blocks["w"].passed and wrong.blocks["x"].passed


def _dividing_backward(dout, cache):
    """A correct backward that scales its upstream gradient in place (seen in third-party
    code: ``dout /= m`` before use)."""
    x, w = cache
    dout /= 2.0
    return 2.0 * (dout @ w.T), 2.0 * (x.T @ dout)


def test_a_backward_that_divides_its_cotangent_in_place_is_named_and_its_values_pass():
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(5, 3)), rng.normal(size=(3, 2))
    with pytest.warns(fastgc.FastgcWarning, match="modified its upstream gradient in place"):
        result = fastgc.check_layer(_matmul_forward, _dividing_backward, (x, w))
    assert result.passed, result.report(color=False)


def test_a_backward_that_leaves_its_cotangent_alone_warns_nothing():
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(5, 3)), rng.normal(size=(3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastgc.FastgcWarning)
        assert fastgc.check_layer(_matmul_forward, _matmul_backward, (x, w)).passed


def test_a_given_cotangent_is_used_and_never_modified():
    rng = np.random.default_rng(4)
    x, w = rng.normal(size=(5, 3)), rng.normal(size=(3, 2))
    dout = rng.normal(size=(5, 2))
    kept = dout.copy()
    with pytest.warns(fastgc.FastgcWarning, match="in place"):
        result = fastgc.check_layer(_matmul_forward, _dividing_backward, (x, w), cotangent=dout)
    assert result.passed
    assert np.array_equal(dout, kept)
