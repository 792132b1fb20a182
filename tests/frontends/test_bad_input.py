"""Bad input, tried systematically across the front ends: each gets one clear error that names
the culprit, raised before any work. The docs' bad-input page (docs/reference/bad-input.md)
lists the same cases; the last test keeps the two in step."""

import pathlib
import subprocess
import sys

import numba
import numpy as np
import pytest
from exercise_cells import backward_propagation_n, exercise_setup, forward_propagation_n
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod
from scipy.sparse.linalg import LinearOperator

import fastgc

# The exercise's data and correct gradients, from the test reference (numpy only): no fastgc
# module builds the inputs that fastgc is asked to reject.
X, Y, P = exercise_setup()
G = backward_propagation_n(X, Y, forward_propagation_n(X, Y, P)[1], fixed=True)
NET = fastgc.MLP([4, 5, 3, 1], "relu", "bce")
x = np.array([1.0, 2.0])


def quad(v):
    return 0.5 * np.sum(v**2)


# The second-order front ends: Rosenbrock (scipy's closed forms) at a 5-vector, and a
# two-block quadratic J = 1/2 |w|^2 + 1/2 |M|^2 whose Hessian is the identity.
X5 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])
Q = {"w": np.ones(3), "M": np.ones((2, 2))}


def q_cost(p):
    return 0.5 * (np.sum(p["w"] ** 2) + np.sum(p["M"] ** 2))


def q_grad(p):
    return {"w": p["w"].copy(), "M": p["M"].copy()}


def q_hvp(p, v):
    return {"w": v["w"].copy(), "M": v["M"].copy()}


def _jittery_grad():
    rng = np.random.default_rng(0)
    return lambda x: rosen_der(x) + 1e-6 * rng.standard_normal(5)


def _wrong_matvec(x):
    return LinearOperator((5, 5), matvec=lambda v: np.zeros(4), dtype=np.float64)


@numba.njit
def _numba_three_args(t, a, b):
    return t.sum() * a * b


# (front end, what is wrong, call, exception, message pattern)
CASES = [
    ("check", "missing gradient key", lambda: fastgc.check(
        NET, {k: v for k, v in G.items() if k != "db2"}, P, X, Y),
     ValueError, "grad has no gradient for parameter 'b2': expected key 'b2' or 'db2'"),
    ("check", "extra gradient key", lambda: fastgc.check(NET, dict(G, dW9=G["dW1"]), P, X, Y),
     ValueError, r"grad has keys that match no parameter: \['dW9'\]"),
    ("check", "shape mismatch", lambda: fastgc.check(NET, dict(G, dW1=G["dW1"].T), P, X, Y),
     ValueError, r"grad\['dW1'\] has shape \(4, 5\) but parameter 'W1' has shape \(5, 4\)"),
    ("check", "int parameters", lambda: fastgc.check(quad, x, np.array([1, 2])),
     TypeError, "params has dtype int64; parameters and gradients must be floating point"),
    ("check", "bool parameters", lambda: fastgc.check(quad, x, np.array([True, False])),
     TypeError, "params has dtype bool"),
    ("check", "object parameters", lambda: fastgc.check(
        quad, x, np.array([1.0, "a"], dtype=object)), TypeError, "params has dtype object"),
    ("check", "complex parameters", lambda: fastgc.check(quad, x, x + 1j),
     TypeError, r"params is complex \(complex128\); fastgc checks real parameters"),
    ("check", "NaN in parameters", lambda: fastgc.check(quad, x, np.array([1.0, np.nan])),
     ValueError, r"params has a non-finite value nan at params\[1\]"),
    ("check", "inf in the gradient", lambda: fastgc.check(quad, np.array([1.0, np.inf]), x),
     ValueError, r"grad has a non-finite value inf at params\[1\]"),
    ("check", "empty block", lambda: fastgc.check(quad, {"w": np.zeros(0)}, {"w": np.zeros(0)}),
     ValueError, r"params\['w'\] is empty \(shape \(0,\)\): nothing to check"),
    ("check", "zero-size data", lambda: fastgc.check(NET, G, P, X[:, :0], Y[:0]),
     ValueError, r"X must have shape \(4, m\) with m >= 1, got \(4, 0\)"),
    ("check", "NaN in the data", lambda: fastgc.check(NET, G, P, np.where(X > 1, np.nan, X), Y),
     ValueError, r"X has a non-finite value nan at X\[0, 0\]"),
    ("check", "cost returns NaN at a step", lambda: fastgc.check(
        lambda v: np.log(v[0]) if v[0] > 0 else np.nan, x, np.array([1e-9, 1.0]), eps=1e-6),
     ValueError, r"cost returned nan at params\[0\] - 1e-06"),
    ("check", "cost returns None", lambda: fastgc.check(lambda v: None, x, x),
     ValueError, "cost returned None at the unperturbed parameters; it must return a float"),
    ("check", "cost returns an array", lambda: fastgc.check(lambda v: v, x, x),
     ValueError, r"cost returned an array of shape \(2,\) at the unperturbed parameters"),
    ("check", "cost returns a string", lambda: fastgc.check(lambda v: "1.0", x, x),
     ValueError, "cost returned a string '1.0'"),
    ("check", "numba cost with a wrong signature", lambda: fastgc.check(
        _numba_three_args, x, x, 1.0),
     TypeError, "the numba cost cannot be compiled for cost"),
    ("check", "stacked cost returns the wrong batch size", lambda: fastgc.check(
        fastgc.batched(lambda v: np.ones(1)), x, x),
     ValueError, r"the batched cost returned shape \(1,\) for a batch of 4 points"),
    ("check", "negative subset", lambda: fastgc.check(quad, x, x, subset=-1),
     ValueError, r"subset must be at least 1 \(coordinates\), not -1"),
    ("check", "eps <= 0", lambda: fastgc.check(quad, x, x, eps=0.0),
     ValueError, "eps must be a positive finite float, not 0.0"),
    ("check", "eps too small for float64", lambda: fastgc.check(quad, x, x, eps=1e-20),
     ValueError, "eps=1e-20 is too small for float64"),
    ("check", "unknown method", lambda: fastgc.check(quad, x, x, method="forward"),
     ValueError, "method must be one of"),
    ("check", "unknown engine", lambda: fastgc.check(quad, x, x, engine="gpu"),
     ValueError, "engine must be one of"),
    ("check", "conflicting modes", lambda: fastgc.check(quad, x, x, subset=1, directions=1),
     ValueError, "subset and directions are two different modes"),
    ("check", "engine that does not fit the cost", lambda: fastgc.check(
        quad, x, x, engine="network"), ValueError, "engine='network' needs a fastgc.MLP"),
    ("check", "complex step on a cost that drops the imaginary part", lambda: fastgc.check(
        lambda v: float(np.sum(np.abs(v))), x, x, method="complex"),
     ValueError, "method='complex' needs a complex-safe cost"),
    ("assert_gradients_close", "a wrong gradient", lambda: fastgc.assert_gradients_close(
        quad, 2 * x, x), AssertionError, "gradient check failed"),
    ("gradient_check_n", "parameters not a dict", lambda: fastgc.gradient_check_n(
        [1], G, X, Y), TypeError, r"parameters must be a dict \{'W1': ..., 'b1': ...\}"),
    ("gradient_check_n", "a layer without its bias", lambda: fastgc.gradient_check_n(
        {"W1": P["W1"]}, G, X, Y), ValueError, "'W1' is present but 'b1' is missing"),
    ("gradient_check_n", "user forward with the network engine", lambda: fastgc.gradient_check_n(
        P, G, X, Y, forward=forward_propagation_n, engine="network"),
     ValueError, "engine='network' runs fastgc's own network"),
    ("check_hvp", "hvp returns the wrong structure", lambda: fastgc.check_hvp(
        q_grad, lambda p, v: list(q_hvp(p, v).values()), Q),
     TypeError, r"hvp\(params, v\) must be a dict like params \(keys 'W1' or 'dW1'\), not list"),
    ("check_hvp", "hvp block of the wrong shape", lambda: fastgc.check_hvp(
        q_grad, lambda p, v: {**q_hvp(p, v), "M": np.zeros(4)}, Q),
     ValueError, r"hvp\(params, v\)\['M'\] has shape \(4,\) but parameter 'M' has shape \(2, 2\)"),
    ("check_hvp", "hvp leaves out a block", lambda: fastgc.check_hvp(
        q_grad, lambda p, v: {"w": v["w"]}, Q),
     ValueError, r"hvp\(params, v\) has no gradient for parameter 'M'"),
    ("check_hvp", "hvp returns NaN", lambda: fastgc.check_hvp(
        rosen_der, lambda x, v: np.full(5, np.nan), X5),
     ValueError, r"hvp\(params, v\) has a non-finite value nan at params\[0\]"),
    ("check_hvp", "grad of the wrong shape", lambda: fastgc.check_hvp(
        lambda x: rosen_der(x)[:4], rosen_hess_prod, X5),
     ValueError, r"grad\(params\) has shape \(4,\) but parameter 'params' has shape \(5,\)"),
    ("check_hvp", "hvp not callable", lambda: fastgc.check_hvp(rosen_der, rosen_hess(X5), X5),
     TypeError, "hvp must be callable; got ndarray"),
    ("check_hvp", "zero directions", lambda: fastgc.check_hvp(
        rosen_der, rosen_hess_prod, X5, directions=0),
     ValueError, r"directions must be at least 1 \(directions per block\), not 0"),
    ("check_hvp", "nondeterministic gradient", lambda: fastgc.check_hvp(
        _jittery_grad(), rosen_hess_prod, X5),
     fastgc.CostError, "grad is not deterministic: two calls at params gave"),
    ("check_hessian", "hess of the wrong shape", lambda: fastgc.check_hessian(
        rosen_der, lambda x: rosen_hess(x)[:4, :4], X5),
     ValueError, r"hess\(params\) has shape \(4, 4\) but params flatten to 5 entries"),
    ("check_hessian", "hess returns a dict", lambda: fastgc.check_hessian(
        q_grad, lambda p: {"w": 1.0}, Q),
     TypeError, r"hess\(params\) must return a 2-D array, a scipy sparse matrix or a scipy"),
    ("check_hessian", "NaN in hess", lambda: fastgc.check_hessian(
        rosen_der, lambda x: np.where(np.eye(5) > 0, np.nan, rosen_hess(x)), X5),
     ValueError, r"hess\(params\) has a non-finite value at H\[params\[0\], params\[0\]\]"),
    ("check_hessian", "complex hess", lambda: fastgc.check_hessian(
        rosen_der, lambda x: rosen_hess(x) + 0j, X5),
     TypeError, r"hess\(params\) must be a real matrix, not dtype complex128"),
    ("check_hessian", "LinearOperator whose matvec returns the wrong shape",
     lambda: fastgc.check_hessian(rosen_der, _wrong_matvec, X5),
     ValueError, r"hess\(params\)'s matvec returned shape \(4,\), not \(5,\)"),
    ("check_hessian", "subset and directions", lambda: fastgc.check_hessian(
        rosen_der, rosen_hess, X5, subset=2, directions=1),
     ValueError, "subset and directions are two different modes: pass one of them"),
    ("taylor_test", "direction of the wrong shape", lambda: fastgc.taylor_test(
        rosen, rosen_der, X5, direction=np.ones(4)),
     ValueError, r"direction has shape \(4,\) but params has shape \(5,\)"),
    ("taylor_test", "direction block of the wrong shape", lambda: fastgc.taylor_test(
        q_cost, q_grad, Q, direction={"w": np.ones(3), "M": np.ones(4)}),
     ValueError, r"direction\['M'\] has shape \(4,\) but parameter 'M' has shape \(2, 2\)"),
    ("taylor_test", "zero direction", lambda: fastgc.taylor_test(
        rosen, rosen_der, X5, direction=np.zeros(5)),
     ValueError, "direction is zero on every checked entry: nothing to test"),
    ("taylor_test", "hvp of the wrong shape", lambda: fastgc.taylor_test(
        rosen, rosen_der, X5, hvp=lambda x, v: np.zeros(3)),
     ValueError, r"hvp\(params, v\) has shape \(3,\) but parameter 'params' has shape"),
    ("taylor_test", "cost returns an array", lambda: fastgc.taylor_test(
        lambda v: v, rosen_der, X5),
     fastgc.CostError, r"cost must return a real scalar, not ndarray of shape \(5,\)"),
    ("check_scipy", "x0 not 1-D", lambda: fastgc.check_scipy(rosen, np.ones((2, 2)), jac=rosen_der),
     ValueError, r"x0 must be 1-D \(scipy.optimize.minimize requires it\), not shape \(2, 2\)"),
    ("check_scipy", "hess without jac", lambda: fastgc.check_scipy(rosen, X5, hess=rosen_hess),
     ValueError, "hess= and hessp= are checked against differences of the gradient: pass jac="),
    ("check_scipy", "jac of the wrong shape", lambda: fastgc.check_scipy(
        rosen, X5, jac=lambda x: rosen_der(x)[:4]),
     ValueError, r"jac\(x\) returned shape \(4,\), but x0 has shape \(5,\)"),
    ("check_scipy", "jac=True but fun returns a float", lambda: fastgc.check_scipy(
        rosen, X5, jac=True),
     TypeError, r"with jac=True, fun must return \(f, g\) \(scipy's convention\), not float"),
    ("check_scipy", "hess of the wrong shape", lambda: fastgc.check_scipy(
        rosen, X5, jac=rosen_der, hess=lambda x: np.eye(4)),
     ValueError, r"hess\(x\) returned shape \(4, 4\), but x0 has shape \(5,\)"),
    ("check_scipy", "hessp of the wrong shape", lambda: fastgc.check_scipy(
        rosen, X5, jac=rosen_der, hessp=lambda x, p: np.zeros(3)),
     ValueError, r"hessp\(x, p\) returned shape \(3,\), but x0 has shape \(5,\)"),
    ("check_scipy", "unknown jac string", lambda: fastgc.check_scipy(rosen, X5, jac="4-point"),
     TypeError, r"jac must be a callable, True, None or one of \('2-point', '3-point', 'cs'\)"),
    ("MLP.hvp", "v of the wrong shape", lambda: NET.hvp(P, dict(P, b1=np.zeros(5)), X, Y),
     ValueError, r"v\['b1'\] has shape \(5,\), expected \(5, 1\)"),
    ("MLP", "one layer size", lambda: fastgc.MLP([4]),
     ValueError, "layer_dims needs at least 2 entries"),
    ("MLP", "unknown activation", lambda: fastgc.MLP([4, 3, 1], "relux"),
     ValueError, r"activations\[0\] \(layer 1\) is 'relux'; allowed"),
    ("MLP", "loss that does not fit the output", lambda: fastgc.MLP(
        [4, 3, 2], ["relu", "softmax"], "bce"),
     ValueError, "loss 'bce' needs a 'sigmoid' output activation, got 'softmax'"),
    ("MLP", "softmax over one output unit", lambda: fastgc.MLP([4, 3, 1], "relu", "ce"),
     ValueError, "softmax over a single output unit is the constant 1"),
    ("MLP", "data of the wrong shape", lambda: NET(P, X[:3], Y),
     ValueError, r"X must have shape \(4, m\) with m >= 1, got \(3, 3\)"),
]


@pytest.mark.parametrize("front, what, call, error, pattern", CASES,
                         ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input_gets_a_clear_error(front, what, call, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        call()
    assert "\n" not in str(info.value).split("\n")[0]  # the first line stands alone
    if error is not AssertionError:
        assert len(str(info.value).splitlines()) == 1


CLI_CASES = [
    (["demo", "--repeat", "0"], "--repeat must be at least 1"),
    (["bench", "--workloads", "exercise,nope"], "--workloads: unknown nope; choose from"),
    (["bench", "--contenders", "magic"], "--contenders: unknown magic; choose from"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv, message", CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_bad_input_exits_2_with_a_usage_error(argv, message):
    run = subprocess.run([sys.executable, "-m", "fastgc", *argv], capture_output=True, text=True)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_docs_table_lists_every_case():
    page = pathlib.Path(__file__).resolve().parents[2] / "docs" / "reference" / "bad-input.md"
    section = page.read_text()
    for front, what, *_ in CASES:
        assert f"| {front} | {what} |" in section, (front, what)
