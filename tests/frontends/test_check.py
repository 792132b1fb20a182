"""fastgc.check and fastgc.assert_gradients_close against closed-form gradients.

Every expected value here is a derivative worked out by hand (A x for x^T A x / 2, cos x for
sum(sin x), ...), never a number fastgc produced. The validation tests hold one
``pytest.raises(..., match=...)`` per rule of ``fastgc._check._validate`` (scipy's convention).
"""

from __future__ import annotations

import collections
import io
import re
import sys

import numpy as np
import pytest

import fastgc
from fastgc._core.noise import NOISE_NFEV
from fastgc._errors import Float32Warning

EPS = np.finfo(np.float64).eps
# The default central step: h_k = cbrt(eps) * max(1, |theta_k|) ~ 6.06e-6 * max(1, |theta_k|).
H0 = 6.0554544523933395e-06
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fd_tolerance(theta, cost_scale, third=0.0, terms=1):
    """Bound on |numeric - exact| for central differences at the default step.

    Truncation: h^2 |f'''| / 6 with ``third`` bounding |f'''| along any coordinate.
    Rounding: J(theta +- h e_k) are each rounded to a few ulps of the magnitude of the terms
    summed (``cost_scale``, ``terms`` of them), and the difference is divided by 2h, so the
    quotient carries about ``terms * eps * cost_scale / h``. A factor 10 on the sum keeps the
    bound safe without hiding a real error (real errors in these tests are >= 1e-3).
    """
    h = H0 * max(1.0, float(np.max(np.abs(theta))))
    return 10.0 * (h * h * third / 6.0 + (terms + 1) * EPS * max(cost_scale, 1.0) / h)


def flat(structure):
    if isinstance(structure, dict):
        return np.concatenate([np.ravel(v) for v in structure.values()])
    if isinstance(structure, (list, tuple)):
        return np.concatenate([np.ravel(v) for v in structure])
    return np.ravel(structure)


# ---- closed-form costs ----------------------------------------------------------------------
def test_quadratic_form_single_array():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(5, 5))
    A = B @ B.T + np.eye(5)  # symmetric, so grad (x^T A x / 2) = A x
    x = rng.normal(size=5)

    result = fastgc.check(lambda v: 0.5 * v @ A @ v, lambda v: A @ v, x, engine="loop")

    assert result.passed and bool(result)
    assert result.engine == "loop"
    assert result.nfev == 2 * x.size + 1 + NOISE_NFEV  # + the cost's noise, measured
    # f''' = 0: only rounding, on a cost of magnitude ~ |x| |A| |x|.
    tol = fd_tolerance(x, np.abs(x) @ np.abs(A) @ np.abs(x), terms=25)
    np.testing.assert_allclose(result.numeric, A @ x, rtol=0, atol=tol)
    assert set(result.blocks) == {"params"}
    assert result.blocks["params"].diagnosis == "ok"
    assert result.difference <= result.threshold


def test_sum_sin_three_d_array():
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, size=(2, 3, 4))

    result = fastgc.check(lambda v: np.sum(np.sin(v)), np.cos(x), x)

    assert result.passed
    assert result.numeric.shape == x.shape
    # |d^3 sin| <= 1; the cost is a sum of 24 terms of magnitude <= 1.
    tol = fd_tolerance(x, 24.0, third=1.0, terms=24)
    np.testing.assert_allclose(result.numeric, np.cos(x), rtol=0, atol=tol)
    assert result.nfev == 2 * x.size + 1 + NOISE_NFEV


def _dict_problem(seed):
    """cost = alpha^3/3 + sum(exp(v)) + sum(C * T^2) / 2 with closed-form derivatives."""
    rng = np.random.default_rng(seed)
    C = rng.uniform(0.5, 2.0, size=(2, 3, 2))
    params = {
        "alpha": np.array(0.7),  # 0-d
        "v": rng.uniform(-1, 1, size=4),  # 1-d
        "T": rng.normal(size=(2, 3, 2)),  # 3-d
    }

    def cost(p):
        return p["alpha"] ** 3 / 3 + np.sum(np.exp(p["v"])) + 0.5 * np.sum(C * p["T"] ** 2)

    def exact(p):
        return {"alpha": p["alpha"] ** 2, "v": np.exp(p["v"]), "T": C * p["T"]}

    return cost, exact, params


@pytest.mark.parametrize("prefix", ["", "d"], ids=["keys=name", "keys=dname"])
def test_dict_of_any_shapes_and_names(prefix):
    cost, exact, params = _dict_problem(2)
    grad = {prefix + k: v for k, v in exact(params).items()}

    result = fastgc.check(cost, grad, params, engine="loop")

    assert result.passed
    assert list(result.blocks) == ["alpha", "v", "T"]
    assert [b.shape for b in result.blocks.values()] == [(), (4,), (2, 3, 2)]
    assert [b.count for b in result.blocks.values()] == [1, 4, 12]
    assert result.nfev == 2 * 17 + 1 + NOISE_NFEV
    # The numeric gradient comes back in the user's structure, keyed by parameter name.
    assert isinstance(result.numeric, dict) and list(result.numeric) == ["alpha", "v", "T"]
    # |f'''|: 2 (alpha^3/3), e (exp on [-1, 1]), 0 (quadratic).
    tol = fd_tolerance(flat(params), 20.0, third=np.e, terms=17)
    for name, value in exact(params).items():
        assert result.numeric[name].shape == np.shape(value)
        np.testing.assert_allclose(result.numeric[name], value, rtol=0, atol=tol)


@pytest.mark.parametrize("container", [list, tuple])
def test_list_and_tuple(container):
    rng = np.random.default_rng(3)
    params = container([rng.normal(size=(2, 3)), rng.normal(size=3)])

    def cost(p):  # sum(W^2)/2 + sum(sin(b))
        return 0.5 * np.sum(p[0] ** 2) + np.sum(np.sin(p[1]))

    grad = container([params[0].copy(), np.cos(params[1])])
    result = fastgc.check(cost, grad, params)

    assert result.passed
    assert list(result.blocks) == ["[0]", "[1]"]
    assert type(result.numeric) is container
    tol = fd_tolerance(flat(params), 10.0, third=1.0, terms=9)
    np.testing.assert_allclose(result.numeric[0], params[0], rtol=0, atol=tol)
    np.testing.assert_allclose(result.numeric[1], np.cos(params[1]), rtol=0, atol=tol)


def test_namedtuple_params():
    Params = collections.namedtuple("Params", "w b")
    params = Params(np.array([0.5, -1.5]), np.array(2.0))

    def cost(p):  # the cost uses attribute access, so the structure must survive unflattening
        return np.sum(p.w ** 2) + 3.0 * p.b

    result = fastgc.check(cost, lambda p: Params(2 * p.w, 3.0), params)

    assert result.passed
    assert isinstance(result.numeric, Params)
    tol = fd_tolerance(np.array([1.5, 2.0]), 10.0, terms=3)
    np.testing.assert_allclose(result.numeric.w, 2 * params.w, rtol=0, atol=tol)
    np.testing.assert_allclose(result.numeric.b, 3.0, rtol=0, atol=tol)


def test_callable_grad_and_args_reach_cost_and_grad():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(6, 3)), rng.normal(size=6)
    w = rng.normal(size=3)
    seen = {"cost": [], "grad": []}

    def cost(p, X_, y_):
        seen["cost"].append((X_ is X, y_ is y))
        r = X_ @ p["w"] - y_
        return 0.5 * r @ r

    def grad(p, X_, y_):  # least squares: X^T (X w - y)
        seen["grad"].append((X_ is X, y_ is y))
        return {"dw": X_.T @ (X_ @ p["w"] - y_)}

    result = fastgc.check(cost, grad, {"w": w}, X, y)

    assert result.passed
    assert seen["grad"] == [(True, True)]  # called once, with the args themselves
    assert len(seen["cost"]) == result.nfev == 7 + NOISE_NFEV
    assert all(a and b for a, b in seen["cost"])
    tol = fd_tolerance(w, 0.5 * np.sum((np.abs(X) @ np.abs(w) + np.abs(y)) ** 2), terms=30)
    np.testing.assert_allclose(result.numeric["w"], X.T @ (X @ w - y), rtol=0, atol=tol)


def test_cost_returning_cost_and_cache():
    x = np.array([0.3, -1.2, 2.0])

    def cost(v):
        return np.sum(v ** 3), {"cache": v ** 2}

    result = fastgc.check(cost, 3 * x ** 2, x)

    assert result.passed
    tol = fd_tolerance(x, 10.0, third=6.0, terms=3)
    np.testing.assert_allclose(result.numeric, 3 * x ** 2, rtol=0, atol=tol)


def test_python_scalar_params():
    result = fastgc.check(lambda t: np.exp(t), lambda t: np.exp(t), 0.25)
    assert result.passed
    assert abs(float(result.numeric) - np.exp(0.25)) <= fd_tolerance(0.25, 2.0, third=2.0)


def test_large_parameters_scale_the_step():
    # h_k = 6.06e-6 * |theta_k| for |theta_k| > 1. The cost is ~5e11, so its rounding error is
    # ~1e-4 and a fixed 6.06e-6 step turns it into an error ~10 on a derivative ~1e6 (1e-5
    # relative); the scaled step divides by 6 instead (1e-10 relative).
    x = np.array([1e6, -3e5])
    scaled = fastgc.check(lambda v: np.sum(v ** 2) / 2, x.copy(), x)
    fixed = fastgc.check(lambda v: np.sum(v ** 2) / 2, x.copy(), x, eps=H0)
    assert scaled.passed
    np.testing.assert_allclose(scaled.numeric, x, rtol=1e-9)
    assert np.max(np.abs(fixed.numeric - x) / np.abs(x)) > 1e-7


def test_user_eps_is_an_absolute_step():
    # sum(x^3): central difference is exactly 3x^2 + h^2 (f''' = 6, h^2 f'''/6 = h^2).
    x = np.array([0.5, 1.5])
    h = 1e-3
    result = fastgc.check(lambda v: np.sum(v ** 3), 3 * x ** 2, x, eps=h, threshold=1e-3)
    np.testing.assert_allclose(result.numeric, 3 * x ** 2 + h ** 2, rtol=0, atol=1e-9)
    assert result.passed
    assert "1e-3" in result.step or "0.001" in result.step


def test_threshold_decides_the_verdict():
    # analytic 2x(1 + 1e-4): relative difference 1e-4 / (2 + 1e-4) ~ 5e-5.
    x = np.array([0.5, -1.0, 2.0])
    grad = 2 * x * (1 + 1e-4)
    assert not fastgc.check(lambda v: np.sum(v ** 2), grad, x).passed  # default 1e-6
    assert fastgc.check(lambda v: np.sum(v ** 2), grad, x, threshold=1e-4).passed


# ---- verdicts, report, assert helper --------------------------------------------------------
def _two_blocks(gW, gb=None):
    rng = np.random.default_rng(5)
    M = rng.normal(size=(3, 3))
    params = {"W": rng.normal(size=(3, 3)), "b": rng.normal(size=2)}

    def cost(p):  # linear in W (gradient M), quadratic in b (gradient b)
        return np.sum(M * p["W"]) + 0.5 * np.sum(p["b"] ** 2)

    grad = {"W": gW(M), "b": params["b"].copy() if gb is None else gb}
    return cost, grad, params, M


def test_failing_block_fails_the_check_and_correct_block_passes():
    cost, grad, params, M = _two_blocks(lambda M: 2 * M)
    result = fastgc.check(cost, grad, params)
    assert not result.passed and not bool(result)
    assert not result.blocks["W"].passed
    assert result.blocks["W"].diagnosis == "dW is 2 x the numeric gradient"
    assert result.blocks["b"].passed and result.blocks["b"].diagnosis == "ok"
    # ||2M - M|| / (||2M|| + ||M||) = 1/3, exactly, up to the finite-difference error.
    assert result.blocks["W"].difference == pytest.approx(1 / 3, rel=1e-8)


def test_worst_names_the_worst_entry_first():
    def bad(M):
        g = M.copy()
        g[1, 2] += 1.0
        g[0, 0] += 1e-3
        return g

    cost, grad, params, M = _two_blocks(bad)
    result = fastgc.check(cost, grad, params)
    worst = result.worst(2)
    assert [e.name for e in worst] == ["W[1, 2]", "W[0, 0]"]
    assert worst[0].analytic == M[1, 2] + 1.0
    assert worst[0].numeric == pytest.approx(M[1, 2], abs=1e-8)
    assert worst[0].abs_error == pytest.approx(1.0, abs=1e-8)
    assert "W[1, 2]" in str(worst[0]) and "analytic" in str(worst[0])
    assert len(result.worst(100)) == 11
    assert result.worst(0) == []
    with pytest.raises(ValueError, match="k must be >= 0"):
        result.worst(-1)


def test_tiny_correct_gradient_passes_by_the_error_model():
    # d/dv of 1e-14 * sum(v) is 1e-14, far below the rounding error of the numeric estimate
    # (eps * |J| / h ~ 4e-11 with |J| ~ 1): the relative difference is ~1, yet the block
    # passes because the discrepancy is within the estimated noise.
    w, v = np.array([0.8, -0.6]), np.array([0.3, 0.1])

    def cost(p):
        return np.sum(p["w"] ** 2) + 1e-14 * np.sum(p["v"])

    result = fastgc.check(cost, {"w": 2 * w, "v": np.full(2, 1e-14)}, {"w": w, "v": v})
    assert result.blocks["v"].passed
    assert result.blocks["v"].difference > result.threshold
    assert result.passed
    # ...but a wrong gradient of the same block, far above the noise, fails.
    bad = fastgc.check(cost, {"w": 2 * w, "v": np.full(2, 1e-3)}, {"w": w, "v": v})
    assert not bad.blocks["v"].passed and bad.blocks["w"].passed


def test_assert_gradients_close():
    cost, grad, params, M = _two_blocks(lambda M: M.copy())
    result = fastgc.assert_gradients_close(cost, grad, params)
    assert isinstance(result, fastgc.CheckResult) and result.passed

    cost, grad, params, M = _two_blocks(lambda M: -M)
    with pytest.raises(AssertionError, match="wrong sign") as info:
        fastgc.assert_gradients_close(cost, grad, params)
    message = str(info.value)
    assert "FAILED" in message and "worst entries" in message
    assert ANSI.search(message) is None


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


def test_report_colour(monkeypatch):
    cost, grad, params, M = _two_blocks(lambda M: 2 * M)
    result = fastgc.check(cost, grad, params)
    monkeypatch.delenv("NO_COLOR", raising=False)

    monkeypatch.setattr(sys, "stdout", _Stream(tty=False))
    assert ANSI.search(str(result)) is None

    monkeypatch.setattr(sys, "stdout", _Stream(tty=True))
    assert ANSI.search(str(result)) is not None  # a terminal gets colour...
    monkeypatch.setenv("NO_COLOR", "1")
    assert ANSI.search(str(result)) is None  # ...unless NO_COLOR is set
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: an empty NO_COLOR does not count
    assert ANSI.search(str(result)) is not None

    assert ANSI.search(result.report(color=True)) is not None
    assert ANSI.search(result.report(color=False)) is None
    plain = result.report(color=False)
    assert plain.startswith("fastgc check FAILED")
    assert "dW is 2 x the numeric gradient" in plain
    assert f"{result.nfev} cost evaluations" in plain


def test_report_lists_ignored_keys():
    x = {"W1": np.array([1.0, 2.0])}
    grad = {"dW1": 2 * x["W1"], "dZ1": np.zeros(3), "dA2": "anything"}
    result = fastgc.check(lambda p: np.sum(p["W1"] ** 2), grad, x)
    assert result.passed
    assert result.ignored_keys == ["dZ1", "dA2"]
    assert "dZ1, dA2" in result.report(color=False)


def test_float32_params_warn_and_still_check():
    x = np.array([0.5, -1.25, 2.0], dtype=np.float32)
    with pytest.warns(Float32Warning, match="float32.*upcast") as record:
        result = fastgc.check(lambda v: np.sum(v ** 3), 3 * x.astype(np.float64) ** 2, x)
    assert record[0].filename == __file__  # attributed to the caller, not to fastgc
    assert result.passed
    assert x.dtype == np.float32  # the user's array is left as it was
    np.testing.assert_allclose(result.numeric, 3 * x.astype(np.float64) ** 2, atol=1e-8)


def test_float32_in_one_block_names_it():
    params = {"W": np.ones((2, 2)), "b": np.ones(2, dtype=np.float32)}
    with pytest.warns(Float32Warning, match=r"params\['b'\] is float32"):
        result = fastgc.check(lambda p: np.sum(p["W"]) + np.sum(p["b"]),
                              {"W": np.ones((2, 2)), "b": np.ones(2, dtype=np.float32)}, params)
    assert result.passed


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
