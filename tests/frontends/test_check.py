"""fastgc.check and fastgc.assert_gradients_close against closed-form gradients: the verdicts
and the report. The inputs (validation, the cost's return value, the user's arrays left alone)
are tests/frontends/test_check_inputs.py's.

Every expected value here is a derivative worked out by hand (A x for x^T A x / 2, cos x for
sum(sin x), ...), never a number fastgc produced.
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
