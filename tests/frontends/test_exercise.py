"""The exercise, reproduced: fastgc's checks, called in place of the exercise's, give the
exercise's numbers.

The exercise's code (its gc_utils helpers, its cells and its data, numpy only) is in
``exercise_cells.py``; run here, on this machine, it is the bit-for-bit reference. The numbers
the exercise publishes (``EXPECTED_VALUES``) were produced on another machine: the last bits of
its costs depend on the BLAS kernels, so they are only a documented loose check.
"""

import subprocess
import sys

import exercise_cells as exercise
import numpy as np
import pytest
from exercise_cells import (
    backward_propagation_n,
    exercise_setup,
    forward_propagation_n,
    gradient_check_n,
)

import fastgc
import fastgc.gc_utils as gc_utils
from fastgc.gc_utils import (
    dictionary_to_vector,
    gradients_to_vector,
    relu,
    sigmoid,
    vector_to_dictionary,
)

# The exercise's published values (its cell 9): buggy backprop, fixed backprop.
EXPECTED_VALUES = [0.2850931567761623, 1.1890913024229996e-07]
# How far another machine may put them: the buggy value is the bugs' size, and summing the
# forward pass in another order moves it by 4e-10 relative (measured); the fixed value is the
# rounding noise of eps=1e-7 quotients itself, and the same reordering moves it by 4.5e-4
# relative. Each tolerance leaves a margin of about 20 over what was measured.
PUBLISHED_RTOL = [1e-8, 1e-2]


def _published_close(difference, fixed):
    return difference == pytest.approx(EXPECTED_VALUES[int(fixed)],
                                       rel=PUBLISHED_RTOL[int(fixed)], abs=0)


# ---- the tests ----------------------------------------------------------------------------
@pytest.mark.parametrize("fixed", [False, True])
def test_exercise_cells_give_the_published_values(fixed, capsys):
    X, Y, parameters = exercise_setup()
    cost, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache, fixed)
    difference = gradient_check_n(parameters, gradients, X, Y, 1e-7, True)
    assert not isinstance(difference, np.ndarray)
    assert _published_close(difference, fixed)  # loose: published on another machine
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
    assert _published_close(difference, fixed)


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
    # Other arithmetic than the loop's (differences propagated, not two costs subtracted), so
    # not bit for bit: each quotient may move by the loop's rounding noise, ~1e-9 of the
    # gradient; 1e-6 relative on a difference made of the bugs' size is far above that.
    assert d_buggy == pytest.approx(gradient_check_n(parameters, buggy, X, Y, 1e-7),
                                    rel=1e-6, abs=0)
    assert d_fixed <= 2e-7  # rounding noise: may be smaller than the exercise's 1.19e-7


def test_one_dimensional_check():
    # J = theta * x, dJ/dtheta = x: the exact answer is 2 at x=2; the relative difference is the
    # rounding of the difference quotient, |a - 2| / (2 + |a|), computed here independently.
    x, theta, eps = 2, 4, 1e-7
    approx = ((theta + eps) * x - (theta - eps) * x) / (2 * eps)
    expected = abs(x - approx) / (abs(x) + abs(approx))
    assert fastgc.gradient_check(x, theta) == pytest.approx(expected, rel=1e-12, abs=0)
    assert 0 <= fastgc.gradient_check(x, theta) < 1e-8
    with pytest.raises(ValueError, match="epsilon must be a positive finite float, not 0.0"):
        fastgc.gradient_check(2, 4, epsilon=0)
    with pytest.raises(TypeError, match="epsilon must be a positive float, not str"):
        fastgc.gradient_check(2, 4, epsilon="1e-7")


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


def test_fastgc_gc_utils_agree_with_the_exercise_helpers():
    # fastgc.gc_utils is a drop-in for the exercise's gc_utils: on the exercise's network it must
    # return what the exercise's helpers return, to the bit.
    X, Y, parameters = exercise_setup()
    theta, keys = gc_utils.dictionary_to_vector(parameters)
    ref_theta, ref_keys = exercise.dictionary_to_vector(parameters)
    assert theta.shape == ref_theta.shape == (47, 1)
    np.testing.assert_array_equal(theta, ref_theta)
    assert keys == ref_keys
    rng = np.random.default_rng(5)
    vector = rng.standard_normal((47, 1))
    back, ref_back = gc_utils.vector_to_dictionary(vector), exercise.vector_to_dictionary(vector)
    assert list(back) == list(ref_back)
    for k in ref_back:
        assert back[k].shape == ref_back[k].shape
        np.testing.assert_array_equal(back[k], ref_back[k])
    _, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache)  # also holds dZ*, dA*: both ignore them
    np.testing.assert_array_equal(gc_utils.gradients_to_vector(gradients),
                                  exercise.gradients_to_vector(gradients))
    z = np.concatenate([np.linspace(-40.0, 40.0, 161), [-0.0, 0.0, 1e-300, -1e-300, 710.0]])
    np.testing.assert_array_equal(gc_utils.relu(z), exercise.relu(z))
    with np.errstate(over="ignore"):  # exp(710) overflows in both: sigmoid -> 0
        np.testing.assert_array_equal(gc_utils.sigmoid(-z), exercise.sigmoid(-z))
    np.testing.assert_array_equal(gc_utils.sigmoid(z), exercise.sigmoid(z))


@pytest.mark.parametrize("statement", ["from fastgc import gc_utils; gc_utils.relu(1.0)",
                                       "import fastgc; fastgc.gc_utils.relu(1.0)"])
def test_gc_utils_is_reachable_from_the_package(statement):
    # A fresh interpreter: in this one fastgc.gc_utils is already imported, which hides the bug.
    run = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True,
                         timeout=60)
    assert "RecursionError" not in run.stderr
    assert run.returncode == 0, run.stderr[-500:]


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
