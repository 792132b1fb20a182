"""CheckResult holds data only: it pickles, and compares field by field (seconds excepted)."""

import dataclasses
import pickle

import numpy as np
import pytest

import fastgc


def _problem():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((6, 6))
    A = A @ A.T
    params = {"W": rng.standard_normal((2, 3)), "b": rng.standard_normal(4)}

    def cost(p):
        x = np.concatenate([p["W"].ravel(), p["b"][:0]])
        return 0.5 * x @ A @ x + np.sum(p["b"] ** 3)

    def grad(p):
        x = p["W"].ravel()
        return {"W": (A @ x).reshape(2, 3), "b": 3 * p["b"] ** 2}

    return cost, grad, params


@pytest.mark.parametrize("options", [{}, {"subset": 3}, {"directions": 2},
                                     {"method": "richardson"}, {"method": "complex"}])
@pytest.mark.parametrize("wrong", [False, True])
def test_a_result_pickles_and_compares_equal(options, wrong):
    cost, grad, params = _problem()
    g = grad(params)
    if wrong:
        g["W"][1, 2] += 0.5
    result = fastgc.check(cost, g, params, **options)
    assert result.passed is not wrong
    copy = pickle.loads(pickle.dumps(result))
    assert copy == result
    assert str(copy) == str(result)  # the report, worst entries included
    assert [str(e) for e in copy.worst(3)] == [str(e) for e in result.worst(3)]
    again = fastgc.check(cost, g, params, **options)
    assert again == result  # a fresh run: equal, though its seconds differ


def test_results_that_differ_compare_unequal():
    cost, grad, params = _problem()
    one = fastgc.check(cost, grad(params), params)
    g = grad(params)
    g["b"][0] *= 1 + 1e-3
    other = fastgc.check(cost, g, params)
    assert one != other
    assert one != "not a result"
    # one bit of one number is enough
    shifted = pickle.loads(pickle.dumps(one))
    block = shifted.blocks["W"]
    shifted.blocks["W"] = dataclasses.replace(block,
                                              difference=np.nextafter(block.difference, 1.0))
    assert shifted != one


def test_mode_and_method_are_separate():
    cost, grad, params = _problem()
    assert (fastgc.check(cost, grad(params), params).mode,
            fastgc.check(cost, grad(params), params).method) == ("full", "central")
    d = fastgc.check(cost, grad(params), params, directions=2)
    assert (d.mode, d.method) == ("directions", "two-step")
    s = fastgc.check(cost, grad(params), params, subset=3, method="richardson")
    assert (s.mode, s.method) == ("subset", "richardson")
    with pytest.raises(ValueError, match="pass directions=k"):
        fastgc.check(cost, grad(params), params, method="two-step")


def test_with_failures_builds_a_new_result_and_leaves_the_checked_one_alone():
    cost, grad, params = _problem()
    result = fastgc.check(cost, grad, params)
    before = pickle.loads(pickle.dumps(result))
    failed = result.with_failures({"b": "not zero for a zero cotangent", "absent": "ignored"})
    assert result == before and result.passed and result.blocks["b"].diagnosis == "ok"
    assert type(failed) is type(result) and failed is not result
    assert not failed.passed and not failed.blocks["b"].passed
    assert failed.blocks["b"].diagnosis == "not zero for a zero cotangent"
    assert failed.blocks["W"] is result.blocks["W"] and list(failed.blocks) == ["W", "b"]
    # what was measured stays as measured
    assert failed.difference == result.difference and failed.nfev == result.nfev
    assert failed.blocks["b"].difference == result.blocks["b"].difference
    assert result.with_failures({}) == result


def test_nonzero_failures_names_the_largest_entry_and_keeps_the_last_reason():
    from fastgc._core.layout import Layout
    from fastgc._core.result import nonzero_failures

    layout, _ = Layout.of({"W": np.zeros((2, 2)), "b": np.zeros(3)})
    first = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0])
    second = np.array([0.0, -3.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    failures = nonzero_failures(layout, [(first, "one"), (second, "two")])
    assert failures == {"W": "two (max 3 at W[0, 1])", "b": "two (max 1 at b[1])"}
    assert nonzero_failures(layout, [(np.zeros(7), "none")]) == {}


@pytest.mark.parametrize("factor, expected", [(2.0, 1 / 3), (0.5, 1 / 3), (-1.0, 1.0)])
def test_difference_is_the_exercises_relative_difference(factor, expected):
    # ||c g - g|| / (||c g|| + ||g||) = |c - 1| / (|c| + 1) whatever g: 1/3 for a gradient
    # twice or half the true one, 1 for the wrong sign. The whole check's difference, over
    # every block (the blocks' own differences come from the same norms block by block).
    cost, grad, params = _problem()
    g = {k: factor * v for k, v in grad(params).items()}
    result = fastgc.check(cost, g, params)
    assert not result.passed
    # the finite differences' own error (~1e-10 relative) is all that separates the two
    assert result.difference == pytest.approx(expected, rel=1e-8)


def test_a_block_and_an_entry_are_built_once():
    cost, grad, params = _problem()
    g = grad(params)
    g["b"] = 2 * g["b"]
    result = fastgc.check(cost, g, params)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.blocks["b"].passed = True
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.worst(1)[0].numeric = 0.0
