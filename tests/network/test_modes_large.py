"""Directions mode on a dense network of about 10^6 parameters: each kind of wrong block is
detected, the right block is blamed, a single wrong entry is named, and correct gradients pass.
"""

import numpy as np
import pytest
from problems import network_problem

import fastgc

DIMS, M = [784, 1024, 128, 10], 8


@pytest.fixture(scope="module")
def problem():
    net = fastgc.MLP(DIMS, "relu", "ce")
    params, X, Y = network_problem(DIMS, M, "onehot", 0, 1)
    return net, params, X, Y, net.gradients(params, X, Y)


def test_size(problem):
    assert problem[0].param_count == 936_330


def test_correct_gradients_pass_with_exact_evaluation_count(problem):
    net, params, X, Y, grads = problem
    result = fastgc.check(net, grads, params, X, Y, directions=2)
    assert result.passed, result.report()
    assert result.nfev == 4 * 2 * 6 + 1  # +/- at h and h/2, 2 directions, 6 blocks, base


@pytest.mark.parametrize("kind", ["scaled", "sign", "entry", "row"])
def test_wrong_block_is_found(problem, kind):
    net, params, X, Y, grads = problem
    wrong = {k: v.copy() for k, v in grads.items()}
    W = wrong["dW1"]  # 802,816 entries
    if kind == "scaled":
        wrong["dW1"] = 2 * W
    elif kind == "sign":
        wrong["dW1"] = -W
    elif kind == "entry":
        # an entry of median magnitude (|g_i| ~ 6e-4 ||g_block||), off by 1e-3 relative: it
        # moves g.v by ~1e-6 relative, where the check's floor is 1e-9
        nonzero = np.flatnonzero(W.ravel())
        median = nonzero[np.argsort(np.abs(W.ravel()[nonzero]))[nonzero.size // 2]]
        entry = np.unravel_index(median, W.shape)
        W[entry] *= 1 + 1e-3
    else:
        W[5] = 0.0
    result = fastgc.check(net, wrong, params, X, Y, directions=2)
    assert [n for n, b in result.blocks.items() if not b.passed] == ["W1"], result.report()
    diagnosis = result.blocks["W1"].diagnosis
    if kind == "scaled":
        assert "dW1 is 2 x the numeric gradient" in diagnosis
    elif kind == "sign":
        assert "wrong sign" in diagnosis
    elif kind == "entry":
        assert diagnosis.startswith(f"localised to W1[{entry[0]}, {entry[1]}] (")
        # on the order of a hundred evaluations, not a million
        assert result.blocks["W1"].localisation_nfev <= 400
    else:
        assert diagnosis.startswith("localised to W1[5, :] (")
