"""The exercise, reproduced: its code cells run against fastgc.gc_utils, and fastgc's checks
called in their place, give the exercise's numbers.

The exercise's code, as written (only the import changed), is in ``exercise_cells.py``; it is
the reference.
"""

import numpy as np
import pytest
from exercise_cells import (
    backward_propagation_n,
    exercise_setup,
    forward_propagation_n,
    gradient_check_n,
)

import fastgc
from fastgc.gc_utils import (
    dictionary_to_vector,
    gradients_to_vector,
    relu,
    sigmoid,
    vector_to_dictionary,
)

EXPECTED_VALUES = [0.2850931567761623, 1.1890913024229996e-07]


# ---- the tests ----------------------------------------------------------------------------
@pytest.mark.parametrize("fixed, expected", [(False, EXPECTED_VALUES[0]),
                                             (True, EXPECTED_VALUES[1])])
def test_exercise_cells_with_fastgc_gc_utils(fixed, expected, capsys):
    X, Y, parameters = exercise_setup()
    cost, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache, fixed)
    difference = gradient_check_n(parameters, gradients, X, Y, 1e-7, True)
    assert not isinstance(difference, np.ndarray)
    assert np.isclose(difference, expected)
    assert np.any(np.isclose(difference, EXPECTED_VALUES))
    assert ("mistake" in capsys.readouterr().out) is not fixed


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("use_forward", [True, False], ids=["user-forward", "forward=None"])
def test_fastgc_gradient_check_n_gives_the_exercise_numbers_to_the_bit(fixed, use_forward):
    X, Y, parameters = exercise_setup()
    cost, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache, fixed)
    reference = gradient_check_n(parameters, gradients, X, Y, 1e-7)
    difference = fastgc.gradient_check_n(
        parameters, gradients, X, Y, 1e-7, forward=forward_propagation_n if use_forward else None
    )
    assert not isinstance(difference, np.ndarray)
    assert difference == reference  # bit for bit: the same arithmetic, the same order
    assert np.isclose(difference, EXPECTED_VALUES[int(fixed)])
    assert np.any(np.isclose(difference, EXPECTED_VALUES))


@pytest.mark.parametrize("fixed", [False, True])
def test_gradient_check_n_prints_the_exercise_verdict(fixed, capsys):
    X, Y, parameters = exercise_setup()
    _, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache, fixed)
    fastgc.gradient_check_n(parameters, gradients, X, Y, print_msg=True)
    out = capsys.readouterr().out
    assert ("There is a mistake" in out) is not fixed
    assert ("works perfectly fine" in out) is fixed


def test_network_engine_gives_the_exercise_verdicts():
    X, Y, parameters = exercise_setup()
    _, cache = forward_propagation_n(X, Y, parameters)
    buggy = backward_propagation_n(X, Y, cache)
    fixed = backward_propagation_n(X, Y, cache, fixed=True)
    d_buggy = fastgc.gradient_check_n(parameters, buggy, X, Y, engine="network")
    d_fixed = fastgc.gradient_check_n(parameters, fixed, X, Y, engine="network")
    assert d_buggy == pytest.approx(EXPECTED_VALUES[0], rel=1e-6)
    assert d_fixed <= 2e-7  # rounding noise: may be smaller than the exercise's 1.19e-7


def test_one_dimensional_check():
    # J = theta * x, dJ/dtheta = x: the exact answer is 2 at x=2; the relative difference is the
    # rounding of the difference quotient, |a - 2| / (2 + |a|), computed here independently.
    x, theta, eps = 2, 4, 1e-7
    approx = ((theta + eps) * x - (theta - eps) * x) / (2 * eps)
    expected = abs(x - approx) / (abs(x) + abs(approx))
    assert fastgc.gradient_check(x, theta) == pytest.approx(expected, rel=1e-12, abs=0)
    assert 0 <= fastgc.gradient_check(x, theta) < 1e-8
    with pytest.raises(ValueError, match="epsilon must be positive"):
        fastgc.gradient_check(2, 4, epsilon=0)


def test_buggy_backprop_diagnosis_names_the_blocks_and_factors():
    X, Y, parameters = exercise_setup()
    _, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache)
    result = fastgc.check(lambda p, X, Y: forward_propagation_n(X, Y, p), gradients, parameters,
                          X, Y)
    assert not result.passed
    failing = {name for name, b in result.blocks.items() if not b.passed}
    assert failing == {"W2", "b1"}
    assert "dW2 is 2 x" in result.blocks["W2"].diagnosis
    assert "db1 is 4 x" in result.blocks["b1"].diagnosis
    assert result.ignored_keys == ["dZ3", "dA2", "dZ2", "dA1", "dZ1"]


@pytest.mark.parametrize("eps, threshold", [(None, None), (1e-7, 2e-7)])
def test_fixed_backprop_passes_every_block(eps, threshold):
    # With the exercise's eps, b1 and b3 have per-block differences of 3.3e-7 and 2.5e-7 (one
    # entry, no averaging): the error model must keep them from failing.
    X, Y, parameters = exercise_setup()
    _, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache, fixed=True)
    result = fastgc.check(lambda p, X, Y: forward_propagation_n(X, Y, p), gradients, parameters,
                          X, Y, eps=eps, threshold=threshold)
    assert result.passed, result.report()


def test_gc_utils_round_trip_and_generalisation():
    X, Y, parameters = exercise_setup()
    theta, keys = dictionary_to_vector(parameters)
    assert theta.shape == (47, 1)
    assert keys[:20] == ["W1"] * 20 and keys[-1] == "b3"
    back = vector_to_dictionary(theta)
    for k in parameters:
        np.testing.assert_array_equal(back[k], parameters[k])
    deep = {"W1": np.ones((2, 3)), "b1": np.zeros((2, 1)), "W2": np.ones((4, 2)),
            "b2": np.zeros((4, 1)), "W3": np.ones((2, 4)), "b3": np.zeros((2, 1)),
            "W4": np.ones((1, 2)), "b4": np.zeros((1, 1))}
    theta, keys = dictionary_to_vector(deep)
    assert theta.shape == (6 + 2 + 8 + 4 + 8 + 2 + 2 + 1, 1)
    for shapes in (deep, [3, 2, 4, 2, 1]):
        back = vector_to_dictionary(theta, shapes)
        assert list(back) == list(deep)
        for k in deep:
            np.testing.assert_array_equal(back[k], deep[k])
    grads = {"d" + k: v for k, v in deep.items()} | {"dZ1": np.zeros(3)}
    np.testing.assert_array_equal(gradients_to_vector(grads), theta)
    with pytest.raises(ValueError, match="theta has 47 entries"):
        vector_to_dictionary(np.zeros(47), [3, 2, 1])
    with pytest.raises(ValueError, match="'b2' is missing"):
        dictionary_to_vector({"W1": 1, "b1": 1, "W2": 1})
    np.testing.assert_array_equal(relu(np.array([-1.0, 2.0])), [0.0, 2.0])
    assert sigmoid(0.0) == 0.5
