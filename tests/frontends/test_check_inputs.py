"""fastgc.check's inputs: one ``pytest.raises(..., match=...)`` per rule of
``fastgc._check._validate`` (scipy's convention), what the cost may return, and the user's
arrays never modified, also when the cost raises midway.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import fastgc


# ---- validation: one rule per test ----------------------------------------------------------
def _cost(p):
    return float(np.sum(p["W"] ** 2) + np.sum(p["b"]))


def _params():
    return {"W": np.arange(1.0, 7.0).reshape(2, 3), "b": np.array([0.5, -0.5])}


def _grad():
    p = _params()
    return {"dW": 2 * p["W"], "db": np.ones(2)}


def test_missing_grad_key():
    grad = _grad()
    del grad["db"]
    with pytest.raises(ValueError, match=r"grad has no gradient for parameter 'b'.*'db'"):
        fastgc.check(_cost, grad, _params())


def test_extra_grad_key():
    grad = {**_grad(), "dW9": np.ones(3)}
    with pytest.raises(ValueError, match=r"grad has keys that match no parameter: \['dW9'\]"):
        fastgc.check(_cost, grad, _params())


def test_both_name_and_dname():
    grad = {**_grad(), "W": np.zeros((2, 3))}
    with pytest.raises(ValueError, match=r"grad has both 'W' and 'dW'"):
        fastgc.check(_cost, grad, _params())


def test_shape_mismatch_names_both_shapes():
    grad = {**_grad(), "dW": np.ones((3, 2))}
    with pytest.raises(ValueError, match=r"grad\['dW'\] has shape \(3, 2\) but parameter 'W' "
                                         r"has shape \(2, 3\)"):
        fastgc.check(_cost, grad, _params())


@pytest.mark.parametrize(
    "params, grad, match",
    [
        (_params(), [np.ones((2, 3)), np.ones(2)], r"grad must be a dict like params"),
        ([np.ones(2)], {"d0": np.ones(2)}, r"grad must be a list/tuple like params"),
        (np.ones(2), {"dparams": np.ones(2)}, r"grad must be an array like params"),
        ([np.ones(2), np.ones(1)], [np.ones(2)], r"grad has 1 arrays but params has 2"),
    ],
    ids=["dict-vs-list", "list-vs-dict", "array-vs-dict", "list-length"],
)
def test_grad_structure_mismatch(params, grad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        fastgc.check(lambda p: 0.0, grad, params)


@pytest.mark.parametrize(
    "value, match",
    [
        (np.ones((2, 3), dtype=np.int64), r"params\['W'\] has dtype int64"),
        (np.ones((2, 3), dtype=bool), r"params\['W'\] has dtype bool"),
        (True, r"params\['W'\] is a bool"),
        (np.array([[1.0, None, 2.0]], dtype=object), r"params\['W'\] has dtype object"),
        (np.ones((2, 3), dtype=complex), r"params\['W'\] is complex"),
        (np.ones((2, 3), dtype=np.float16), r"params\['W'\] has dtype float16"),
        ([[1.0, 2.0], [3.0]], r"params\['W'\] cannot be read as an array"),
    ],
    ids=["int", "bool-array", "bool", "object", "complex", "float16", "ragged"],
)
def test_non_float_params(value, match):
    params = {**_params(), "W": value}
    with pytest.raises(TypeError, match=match):
        fastgc.check(_cost, _grad(), params)


@pytest.mark.parametrize(
    "value, match",
    [
        (np.ones((2, 3), dtype=np.int64), r"grad\['dW'\] has dtype int64"),
        (np.ones((2, 3), dtype=bool), r"grad\['dW'\] has dtype bool"),
        (np.full((2, 3), None, dtype=object), r"grad\['dW'\] has dtype object"),
        (np.ones((2, 3), dtype=complex), r"grad\['dW'\] is complex"),
    ],
    ids=["int", "bool", "object", "complex"],
)
def test_non_float_grads(value, match):
    grad = {**_grad(), "dW": value}
    with pytest.raises(TypeError, match=match):
        fastgc.check(_cost, grad, _params())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_params_name_the_coordinate(bad):
    params = _params()
    params["W"][0, 1] = bad
    with pytest.raises(ValueError, match=rf"params has a non-finite value {bad} at W\[0, 1\]"):
        fastgc.check(_cost, _grad(), params)


def test_non_finite_params_single_array_and_count():
    x = np.ones(4)
    x[[1, 3]] = np.nan
    with pytest.raises(ValueError, match=r"at params\[1\] \(and 1 more\)"):
        fastgc.check(lambda v: 0.0, np.ones(4), x)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_grads_name_the_coordinate(bad):
    grad = _grad()
    grad["db"][1] = bad
    with pytest.raises(ValueError, match=rf"grad has a non-finite value {bad} at b\[1\]"):
        fastgc.check(_cost, grad, _params())


@pytest.mark.parametrize("empty", [{}, [], ()], ids=["dict", "list", "tuple"])
def test_empty_params(empty):
    with pytest.raises(ValueError, match=r"params is an empty"):
        fastgc.check(lambda p: 0.0, empty, empty)


def test_zero_size_block():
    params = {**_params(), "b": np.zeros((0,))}
    with pytest.raises(ValueError, match=r"params\['b'\] is empty \(shape \(0,\)\)"):
        fastgc.check(_cost, {**_grad(), "db": np.zeros(0)}, params)


def test_params_of_unsupported_type():
    with pytest.raises(TypeError, match=r"params must be a dict of arrays.*not str"):
        fastgc.check(lambda p: 0.0, "W", "W")


@pytest.mark.parametrize("eps", [0.0, -1e-7, -np.inf, np.inf], ids=["0", "neg", "-inf", "inf"])
def test_eps_not_positive_finite(eps):
    with pytest.raises(ValueError, match=r"eps must be a positive finite float"):
        fastgc.check(_cost, _grad(), _params(), eps=eps)


def test_eps_nan():
    with pytest.raises(ValueError, match=r"eps must be a positive finite float, not nan"):
        fastgc.check(_cost, _grad(), _params(), eps=np.nan)


def test_eps_too_small():
    with pytest.raises(ValueError, match=r"eps=1e-14 is too small for float64"):
        fastgc.check(_cost, _grad(), _params(), eps=1e-14)


@pytest.mark.parametrize("eps", ["1e-7", True, [1e-7]], ids=["str", "bool", "list"])
def test_eps_wrong_type(eps):
    with pytest.raises(TypeError, match=r"eps must be a positive float or None"):
        fastgc.check(_cost, _grad(), _params(), eps=eps)


@pytest.mark.parametrize("threshold", [0.0, -1e-6, np.nan, np.inf])
def test_threshold_not_positive_finite(threshold):
    with pytest.raises(ValueError, match=r"threshold must be a positive finite float"):
        fastgc.check(_cost, _grad(), _params(), threshold=threshold)


def test_threshold_wrong_type():
    with pytest.raises(TypeError, match=r"threshold must be a positive float, not str"):
        fastgc.check(_cost, _grad(), _params(), threshold="1e-6")


def test_unknown_engine():
    with pytest.raises(ValueError, match=r"engine must be one of .* not 'turbo'"):
        fastgc.check(_cost, _grad(), _params(), engine="turbo")


def test_unknown_method():
    with pytest.raises(ValueError, match=r"method must be one of .* not 'forward'"):
        fastgc.check(_cost, _grad(), _params(), method="forward")


def test_cost_not_callable():
    with pytest.raises(TypeError, match=r"cost must be callable.*got float"):
        fastgc.check(1.0, _grad(), _params())


# ---- the cost's return value ----------------------------------------------------------------
BAD_RETURNS = [
    (None, r"cost returned None"),
    ("1.0", r"cost returned a string '1.0'"),
    (np.ones(2), r"cost returned an array of shape \(2,\)"),
    (np.nan, r"cost returned nan"),
    (np.inf, r"cost returned inf"),
    (1.0 + 2.0j, r"cost returned a complex value"),
    ((), r"cost returned an empty tuple"),
    ([1.0], r"cost returned list"),
]
BAD_IDS = ["None", "str", "array", "nan", "inf", "complex", "empty-tuple", "list"]


@pytest.mark.parametrize("value, match", BAD_RETURNS, ids=BAD_IDS)
def test_bad_cost_at_the_base_point(value, match):
    with pytest.raises(ValueError, match=match + r".*unperturbed"):
        fastgc.check(lambda p: value, _grad(), _params())


@pytest.mark.parametrize("value, match", BAD_RETURNS, ids=BAD_IDS)
def test_bad_cost_at_a_perturbed_point_names_coordinate_and_step(value, match):
    base = _params()["W"][0, 1]

    def cost(p):  # misbehaves only where W[0, 1] is perturbed
        return value if p["W"][0, 1] != base else _cost(p)

    # W[0, 1] = 2, so the step is 6.06e-6 * max(1, 2) = 1.21e-5.
    with pytest.raises(ValueError, match=match + r".*at W\[0, 1\] [+-] 1\.21e-05"):
        fastgc.check(cost, _grad(), _params())


def test_cost_error_is_a_value_error_subclass():
    from fastgc._errors import CostError

    with pytest.raises(CostError):
        fastgc.check(lambda p: None, _grad(), _params())


class _Boom(RuntimeError):
    pass


def test_cost_raising_at_base_point_propagates():
    def cost(p):
        raise _Boom("user bug")

    with pytest.raises(_Boom, match="user bug") as info:
        fastgc.check(cost, _grad(), _params())
    if sys.version_info >= (3, 11):
        notes = " ".join(info.value.__notes__)
        assert "fastgc" in notes and "unperturbed" in notes


def test_cost_raising_at_perturbed_point_propagates_with_coordinate():
    params = _params()
    base = params["b"][1]
    others = np.concatenate([params["W"].ravel(), params["b"][[0]]])

    def cost(p):
        # raises when b[1] alone moves: at its own central steps, after the noise table (whose
        # points move every coordinate)
        if p["b"][1] != base and np.array_equal(
                np.concatenate([p["W"].ravel(), p["b"][[0]]]), others):
            raise _Boom("user bug")
        return _cost(p)

    with pytest.raises(_Boom, match="user bug") as info:
        fastgc.check(cost, _grad(), _params())
    if sys.version_info >= (3, 11):
        notes = " ".join(info.value.__notes__)
        assert "fastgc" in notes
        assert re.search(r"b\[1\] [+-] 6\.06e-06", notes)


def test_cost_raising_in_the_noise_table_propagates_saying_so():
    base = _params()["b"][1]

    def cost(p):
        if p["b"][1] != base:  # any move of b[1]: the noise table's first point already
            raise _Boom("user bug")
        return _cost(p)

    with pytest.raises(_Boom, match="user bug") as info:
        fastgc.check(cost, _grad(), _params())
    if sys.version_info >= (3, 11):
        assert "while measuring the cost's noise" in " ".join(info.value.__notes__)


def test_grad_callable_raising_propagates():
    def grad(p):
        raise _Boom("grad bug")

    with pytest.raises(_Boom, match="grad bug"):
        fastgc.check(_cost, grad, _params())


# ---- nothing lost ---------------------------------------------------------------------------
def _snapshot(structure):
    return {k: (v.dtype, v.shape, v.tobytes()) for k, v in structure.items()}


def test_params_and_grads_unchanged_and_never_perturbed():
    params, grad = _params(), _grad()
    before_p, before_g = _snapshot(params), _snapshot(grad)
    users_W = params["W"]

    def cost(p):
        # fastgc perturbs its own copy: the user's arrays never change, even during the check.
        assert p["W"] is not users_W
        assert users_W.tobytes() == before_p["W"][2]
        return _cost(p)

    assert fastgc.check(cost, grad, params).passed
    assert _snapshot(params) == before_p and _snapshot(grad) == before_g
    assert params["W"] is users_W


def test_grad_callable_gets_a_copy():
    params = _params()
    before = _snapshot(params)

    def grad(p):
        g = {"W": 2 * p["W"], "b": np.ones(2)}
        p["W"][...] = 0.0  # a careless grad must not move the point being checked
        return g

    assert fastgc.check(_cost, grad, params).passed
    assert _snapshot(params) == before


@pytest.mark.parametrize("exc_type", [_Boom, KeyboardInterrupt])
def test_nothing_lost_when_the_cost_raises_midway(exc_type):
    params, grad = _params(), _grad()
    before_p, before_g = _snapshot(params), _snapshot(grad)
    reference = fastgc.check(_cost, grad, params)
    calls = 0
    seen_after = []

    def cost(p):
        nonlocal calls
        calls += 1
        if calls == 10:  # midway: W and part of b perturbed in turn already
            raise exc_type("stop")
        if calls > 10:
            seen_after.append({k: v.copy() for k, v in p.items()})
        return _cost(p)

    with pytest.raises(exc_type):
        fastgc.check(cost, grad, params)
    assert calls == 10
    assert _snapshot(params) == before_p and _snapshot(grad) == before_g

    # A later check on the same arrays: its base point is exactly the unperturbed params...
    again = fastgc.check(cost, grad, params)
    np.testing.assert_array_equal(seen_after[0]["W"], _params()["W"])
    np.testing.assert_array_equal(seen_after[0]["b"], _params()["b"])
    # ...and it reproduces the check made before the interruption, bit for bit.
    assert again.passed and again.nfev == reference.nfev
    for k in params:
        np.testing.assert_array_equal(again.numeric[k], reference.numeric[k])
    # And against the closed form: d/dW sum(W^2) = 2W, d/db sum(b) = 1.
    np.testing.assert_allclose(again.numeric["W"], 2 * params["W"], atol=1e-8)
    np.testing.assert_allclose(again.numeric["b"], 1.0, atol=1e-8)
