"""check_scipy: scipy.optimize.minimize's conventions (args, jac=True, hess kinds, hessp) and
bugs that show only away from x0."""

import pickle

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import aslinearoperator

import fastgc

X0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])


def test_rosenbrock_jac_hess_hessp_pass_at_x0_and_nearby():
    r = fastgc.check_scipy(rosen, X0, jac=rosen_der, hess=rosen_hess, hessp=rosen_hess_prod)
    assert r.passed and list(r.sections) == ["jac", "hess", "hessp"]
    assert r.points.shape == (3, 5) and np.array_equal(r.points[0], X0)
    assert all(len(v) == 3 and all(x.passed for x in v) for v in r.sections.values())
    assert r.sections["hess"][0].pairs["x", "x"].passed


def test_args_and_jac_true_follow_minimize():
    def fun(x, a, b):  # scaled Rosenbrock, returning (f, g) as with jac=True
        return a * rosen(x) + b, a * rosen_der(x)

    def hessp(x, p, a, b):
        return a * rosen_hess_prod(x, p)

    r = fastgc.check_scipy(fun, X0, args=(3.0, 1.0), jac=True, hessp=hessp)
    assert r.passed, r.report(color=False)
    # a bare (non-tuple) args is one argument, as minimize wraps it
    r = fastgc.check_scipy(lambda x, a: a * rosen(x), X0, args=2.0,
                           jac=lambda x, a: a * rosen_der(x),
                           hess=lambda x, a: csr_matrix(a * rosen_hess(x)))
    assert r.passed


def test_args_reach_every_callable_and_x0_is_left_alone():
    x0 = X0.copy()

    def fun(x, a, b):
        x *= 2.0  # a callable that scribbles on its argument
        return a * rosen(x / 2.0) + b

    def jac(x, a, b):
        return a * rosen_der(x)

    def hess(x, a, b):
        return a * rosen_hess(x) + 0.0 * b

    def hessp(x, p, a, b):
        return a * rosen_hess_prod(x, p) + 0.0 * b

    r = fastgc.check_scipy(fun, x0, args=(3.0, 1.0), jac=jac, hess=hess, hessp=hessp)
    assert r.passed, r.report(color=False)
    np.testing.assert_array_equal(x0, X0)
    # the second argument matters: dropping it anywhere would raise a TypeError
    with pytest.raises(TypeError):
        fastgc.check_scipy(fun, x0, args=(3.0,), jac=jac)


def test_wrong_sign_hessp_is_diagnosed():
    r = fastgc.check_scipy(rosen, X0, jac=rosen_der, hessp=lambda x, p: -rosen_hess_prod(x, p),
                           points=0)
    assert not r.passed and r.message == "hessp fails at x0"
    assert r.sections["hessp"][0].pairs["x", "x"].diagnosis == (
        "H[x, x] has the wrong sign (-1 x the numeric Hessian)")


def test_linear_operator_hess():
    r = fastgc.check_scipy(rosen, X0, jac=rosen_der,
                           hess=lambda x: aslinearoperator(rosen_hess(x)))
    assert r.passed and r.sections["hess"][0].linearity.passed


def test_a_bug_away_from_x0_is_found_at_a_nearby_point():
    def hessp(x, p):  # wrong only where x[0] > 1.31 (x0[0] = 1.3)
        return rosen_hess_prod(x, p) * (0.5 if x[0] > 1.31 else 1.0)

    r = fastgc.check_scipy(rosen, X0, jac=rosen_der, hessp=hessp, points=4)
    assert not r.passed
    verdicts = [h.passed for h in r.sections["hessp"]]
    assert verdicts[0] and not all(verdicts)
    assert all((p[0] > 1.31) == (not v) for p, v in zip(r.points, verdicts, strict=True))
    bad = r.sections["hessp"][verdicts.index(False)]
    assert bad.pairs["x", "x"].diagnosis == "H[x, x] is 0.5 x the numeric Hessian"


def test_wrong_jac_skips_the_hessian_there():
    r = fastgc.check_scipy(rosen, X0, jac=lambda x: 2 * rosen_der(x), hess=rosen_hess)
    assert not r.passed and all(not g.passed for g in r.sections["jac"])
    assert r.sections["hess"] == [None, None, None]
    assert "jac fails at x0" in r.message
    assert "not checked (jac fails there)" in r.report(color=False)


def test_scipy_strings_are_noted_not_checked():
    r = fastgc.check_scipy(rosen, X0, jac=rosen_der, hess="2-point")
    assert r.passed and list(r.sections) == ["jac"]
    assert any("not checked" in n for n in r.notes)


def test_result_pickles_and_compares():
    r = fastgc.check_scipy(rosen, X0, jac=rosen_der, hessp=rosen_hess_prod, points=1)
    assert pickle.loads(pickle.dumps(r)) == r
    assert fastgc.check_scipy(rosen, X0, jac=rosen_der, hessp=rosen_hess_prod, points=1) == r


def test_bad_input():
    with pytest.raises(ValueError, match="x0 must be 1-D"):
        fastgc.check_scipy(rosen, np.ones((2, 2)), jac=rosen_der)
    with pytest.raises(ValueError, match="pass jac="):
        fastgc.check_scipy(rosen, X0, hess=rosen_hess)
    with pytest.raises(ValueError, match="nothing to check"):
        fastgc.check_scipy(rosen, X0)
    with pytest.raises(ValueError, match=r"jac\(x\) returned shape \(4,\), but x0 has shape "
                                         r"\(5,\)"):
        fastgc.check_scipy(rosen, X0, jac=lambda x: rosen_der(x)[:4])
    with pytest.raises(ValueError, match=r"hessp\(x, p\) returned shape"):
        fastgc.check_scipy(rosen, X0, jac=rosen_der, hessp=lambda x, p: np.zeros(3))
    with pytest.raises(ValueError, match=r"hess\(x\) returned shape \(4, 4\), but x0 has "
                                         r"shape \(5,\)"):
        fastgc.check_scipy(rosen, X0, jac=rosen_der, hess=lambda x: np.eye(4))
    with pytest.raises(TypeError, match=r"with jac=True, fun must return \(f, g\)"):
        fastgc.check_scipy(rosen, X0, jac=True)
    with pytest.raises(TypeError, match="jac must be a callable"):
        fastgc.check_scipy(rosen, X0, jac="4-point")
    with pytest.raises(ValueError, match="points must be"):
        fastgc.check_scipy(rosen, X0, jac=rosen_der, points=-1)
