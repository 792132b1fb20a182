"""check_hvp and check_hessian against closed-form Hessians, with planted bugs that must fail
in the right block with the right diagnosis."""

import copy
import pickle

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod
from scipy.sparse.linalg import LinearOperator, aslinearoperator
from second_order_problems import Logistic, Quadratic, TanhNet, flatten, nested_fd_hessian

import fastgc
from fastgc import CostError

X0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])


def failing(result):
    return {k for k, p in result.pairs.items() if not p.passed}


# ---- correct Hessians pass ----------------------------------------------------------------
def test_rosenbrock_hvp_and_hessian_pass_and_numeric_matches_rosen_hess():
    r = fastgc.check_hvp(rosen_der, rosen_hess_prod, X0, cost=rosen)
    assert r.passed and r.failed == () and r.gradient.passed
    h = fastgc.check_hessian(rosen_der, rosen_hess, X0)
    assert h.passed and h.mode == "full"
    # the numeric Hessian is differences of rosen_der: compare with the closed form
    np.testing.assert_allclose(h.numeric, rosen_hess(X0), rtol=1e-8, atol=1e-7)


@pytest.mark.parametrize("kind", ["dense", "sparse", "operator"])
def test_quadratic_hessian_any_matrix_kind_passes(kind):
    q = Quadratic()
    wrap = {"dense": np.asarray, "sparse": sparse.csr_matrix, "operator": aslinearoperator}[kind]
    r = fastgc.check_hessian(q.grad, lambda p: wrap(q.hess(p)), q.params, cost=q.cost)
    assert r.passed, r.report(color=False)
    assert len(r.pairs) == 9
    assert (r.linearity is not None) == (kind == "operator")


def test_quadratic_hvp_passes_with_every_method():
    q = Quadratic()
    for method in ("central", "two-step", "richardson"):
        r = fastgc.check_hvp(q.grad, q.hvp, q.params, method=method, directions=2)
        assert r.passed, (method, r.report(color=False))
        assert r.method == method


def test_logistic_regression_hessian_and_hvp_pass():
    lr = Logistic()
    assert fastgc.check_hessian(lr.grad, lr.hess, lr.params, cost=lr.cost).passed
    assert fastgc.check_hvp(lr.grad, lr.hvp, lr.params, cost=lr.cost).passed


def test_tanh_net_hvp_agrees_with_nested_differences_and_passes():
    net = TanhNet()
    keys = list(net.params)
    H = nested_fd_hessian(net.cost, net.params)
    v = {k: np.random.default_rng(5).standard_normal(np.shape(a)) for k, a in net.params.items()}
    # the R-op under test agrees with the test's own nested differences of the cost
    np.testing.assert_allclose(flatten(net.hvp(net.params, v), keys), H @ flatten(v, keys),
                               rtol=1e-5, atol=1e-6)
    r = fastgc.check_hvp(net.grad, net.hvp, net.params, cost=net.cost, directions=2)
    assert r.passed, r.report(color=False)


def test_tanh_net_hvp_agrees_with_mlp_hvp():
    # fastgc's own network computes the same cost (with a zero output bias): its R-op is the
    # reference here, itself tested against nested differences in tests/network/test_mlp_hvp.py
    ref = TanhNet()
    h, d = ref.params["W1"].shape
    o = ref.params["W2"].shape[0]
    net = fastgc.MLP([d, h, o], ["tanh", "identity"], "mse")
    params = {"W1": ref.params["W1"], "b1": ref.params["b1"][:, None], "W2": ref.params["W2"],
              "b2": np.zeros((o, 1))}
    rng = np.random.default_rng(1)
    v_ref = {k: rng.standard_normal(np.shape(a)) for k, a in ref.params.items()}
    v = {"W1": v_ref["W1"], "b1": v_ref["b1"][:, None], "W2": v_ref["W2"],
         "b2": np.zeros((o, 1))}
    assert net(params, ref.X, ref.Y) == pytest.approx(ref.cost(ref.params), rel=1e-14)
    got, want = net.hvp(params, v, ref.X, ref.Y), ref.hvp(ref.params, v_ref)
    np.testing.assert_allclose(got["W1"], want["W1"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got["b1"][:, 0], want["b1"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got["W2"], want["W2"], rtol=1e-12, atol=1e-14)
    bad = ref.hvp(ref.params, v_ref, drop_tanh2=True)
    assert not np.allclose(bad["W1"], got["W1"], rtol=1e-6)  # the planted bug is visible


# ---- planted bugs: the right block, the right diagnosis ------------------------------------
def test_half_off_diagonal_block_in_hvp():
    q = Quadratic()

    def hvp(p, v):
        out = q.hvp(p, v)
        A = q.A[q.slices["x"], q.slices["z"]]
        out["x"] = out["x"] - 0.5 * A @ v["z"]  # H[x, z] halved, H[z, x] left alone
        return out

    r = fastgc.check_hvp(q.grad, hvp, q.params)
    assert failing(r) == {("x", "z")}
    assert r.pairs["x", "z"].diagnosis == "H[x, z] is 0.5 x the numeric Hessian"
    assert r.failed == ("hessian", "symmetry")
    assert r.linearity.passed


def test_half_off_diagonal_block_in_dense_hessian():
    q = Quadratic()

    def hess(p):
        H = q.hess(p)
        H[q.slices["z"], q.slices["W"]] *= 0.5
        return H

    r = fastgc.check_hessian(q.grad, hess, q.params)
    assert failing(r) == {("z", "W")}
    assert r.pairs["z", "W"].diagnosis == "H[z, W] is 0.5 x the numeric Hessian"
    assert not r.symmetry.passed and "not symmetric" in r.symmetry.detail


def test_transposed_off_diagonal_block():
    q = Quadratic()
    sx, sz = q.slices["x"], q.slices["z"]

    def hess(p):  # H[x, z] and H[z, x] swapped for their transposes: still symmetric
        H = q.hess(p)
        H[sx, sz], H[sz, sx] = H[sx, sz].T.copy(), H[sz, sx].T.copy()
        return H

    r = fastgc.check_hessian(q.grad, hess, q.params)
    assert failing(r) == {("x", "z"), ("z", "x")}
    assert r.pairs["x", "z"].diagnosis.startswith("H[x, z] is transposed")
    assert r.symmetry.passed and r.failed == ("hessian",)

    def hvp(p, v):  # the same bug in a product: H[x, z] applied as its transpose
        out = q.hvp(p, v)
        M = q.A[sx, sz]
        out["x"] = out["x"] - M @ v["z"] + M.T @ v["z"]
        return out

    r = fastgc.check_hvp(q.grad, hvp, q.params)
    assert failing(r) == {("x", "z")}
    assert r.pairs["x", "z"].diagnosis.startswith("H[x, z] is transposed")


def test_transposed_output_of_a_square_block():
    q = Quadratic()

    def hvp(p, v):
        out = q.hvp(p, v)
        out["W"] = out["W"].T
        return out

    r = fastgc.check_hvp(q.grad, hvp, q.params)
    assert {row for row, _ in failing(r)} == {"W"}
    assert all("(H v)[W] is transposed" in r.pairs[k].diagnosis for k in failing(r))


def test_upper_triangle_only():
    q = Quadratic()
    r = fastgc.check_hessian(q.grad, lambda p: np.triu(q.hess(p)), q.params)
    names = list(q.shapes)
    lower = {(names[i], names[j]) for i in range(3) for j in range(i)}
    diagonal = {(n, n) for n in names}
    assert failing(r) == lower | diagonal
    assert r.pairs["x", "x"].diagnosis.startswith("H[x, x] holds only its upper triangle")
    assert "only one triangle of H is filled" in r.pairs["z", "x"].diagnosis
    assert r.failed == ("hessian", "symmetry")


def test_dropped_regulariser_is_a_multiple_of_the_identity():
    lr = Logistic()
    r = fastgc.check_hessian(lr.grad, lambda p: lr.hess(p, lam=0.0), lr.params)
    assert failing(r) == {("w", "w")}
    assert r.pairs["w", "w"].diagnosis.startswith("H[w, w] is off by -0.3 x I")
    r = fastgc.check_hvp(lr.grad, lambda p, v: lr.hvp(p, v, lam=0.0), lr.params)
    assert failing(r) == {("w", "w")}
    assert r.pairs["w", "w"].diagnosis.startswith("H[w, w] is off by -0.3 x I")


def test_dropped_diagonal_term_of_rosen_hess():
    def hess(x):  # drops the 2 of d^2/dx_i^2 (1 - x_i)^2 on the diagonal
        return rosen_hess(x) - 2 * np.diag(np.r_[np.ones(len(x) - 1), 0.0])

    r = fastgc.check_hessian(rosen_der, hess, X0)
    assert r.pairs["params", "params"].diagnosis.startswith(
        "the diagonal of H[params, params] disagrees (4 of 5 entries")


def test_dropped_tanh_second_derivative_term_in_network_hvp():
    net = TanhNet()
    r = fastgc.check_hvp(net.grad, lambda p, v: net.hvp(p, v, drop_tanh2=True), net.params)
    # the tanh'' term couples only the first layer's parameters with each other
    assert failing(r) == {(a, b) for a in ("W1", "b1") for b in ("W1", "b1")}
    assert r.symmetry.passed  # a dropped symmetric term keeps H symmetric


def test_wrong_sign_on_a_block():
    q = Quadratic()

    def hess(p):
        H = q.hess(p)
        H[q.slices["W"], q.slices["W"]] *= -1
        return H

    r = fastgc.check_hessian(q.grad, hess, q.params)
    assert failing(r) == {("W", "W")}
    assert r.pairs["W", "W"].diagnosis == "H[W, W] has the wrong sign (-1 x the numeric Hessian)"


def test_wrong_gradient_is_reported_as_the_gradients_failure():
    q = Quadratic()

    def grad(p):
        g = q.grad(p)
        g["z"] = 2 * g["z"]
        return g

    for r in (fastgc.check_hvp(grad, q.hvp, q.params, cost=q.cost),
              fastgc.check_hessian(grad, q.hess, q.params, cost=q.cost)):
        assert not r.passed and r.failed == ("gradient",)
        assert not r.gradient.passed and r.gradient.blocks["z"].diagnosis.startswith("dz is 2")
        assert r.pairs == {} and "the gradient is wrong" in r.message
        assert "Hessian was not checked" in r.report(color=False)


def test_nonlinear_and_affine_hvp_fail_linearity():
    q = Quadratic()

    def affine(p, v):  # a term that does not multiply v
        out = q.hvp(p, v)
        out["x"] = out["x"] + 1e-3
        return out

    r = fastgc.check_hvp(q.grad, affine, q.params)
    assert not r.linearity.passed and "not zero for a zero vector" in r.linearity.detail


def _kinked(offset=3e-6):
    """J = a^2 + 1.5 b^2 + a b + 3 relu(a - c), with the kink c half a default step (6e-6 x
    max(1, |a|), a one-entry block moves by exactly that) above a: the gradient jumps by 3
    between theta - h v and theta + h v, and H = [[2, 1], [1, 3]] everywhere else."""
    params = {"a": np.array([1.3]), "b": np.array([0.7])}
    c = 1.3 + offset * 1.3

    def grad(p):
        a, b = p["a"], p["b"]
        return {"a": 2 * a + b + 3.0 * (a > c), "b": 3 * b + a}

    def hvp(p, v):
        return {"a": 2 * v["a"] + v["b"], "b": v["a"] + 3 * v["b"]}

    return params, grad, hvp


def test_a_kink_of_the_gradient_within_the_step_is_differenced_again():
    params, grad, hvp = _kinked()
    r = fastgc.check_hvp(grad, hvp, params)
    assert r.passed, r.report(color=False)
    # the noise table crosses the kink too (a finer table, 6 more, tells it from noise); the
    # direction on a is differenced once more at 1/16 of the step
    assert r.ngev == 1 + 7 + 6 + 2 * 2 + 2
    assert r.threshold == 1e-6  # not raised: the kink is not taken for noise
    assert any("1 direction crossed a kink of the gradient" in n for n in r.notes)

    def half(p, v):  # a wrong block is still found on the kinked problem
        out = hvp(p, v)
        out["b"] = out["b"] - 0.5 * v["a"]
        return out

    r = fastgc.check_hvp(grad, half, params)
    assert failing(r) == {("b", "a")} and "H[b, a]" in r.message


def test_a_steep_smooth_gradient_is_differenced_again_but_not_called_a_kink():
    # g = exp(400 x) / 400: the second difference is h g'' / 2 g' = 1.2e-3 of the first at the
    # default step, above the kink test's 1e-3; at 1/16 of the step it shrinks 16x, as a
    # smooth gradient's does, so no kink is reported
    r = fastgc.check_hvp(lambda p: {"x": np.exp(400 * p["x"]) / 400},
                         lambda p, v: {"x": np.exp(400 * p["x"]) * v["x"]}, {"x": np.array([0.5])})
    assert r.passed, r.report(color=False)
    assert r.ngev == 1 + 7 + 2 + 2
    assert not any("kink" in n for n in r.notes)


# ---- modes, counts, precision ----------------------------------------------------------------
def test_evaluation_counts():
    # 1 gradient at params, 7 for its noise, 2 per column (central)
    r = fastgc.check_hessian(rosen_der, rosen_hess, X0)
    assert r.ngev == 1 + 7 + 2 * 5
    q = Quadratic()
    r = fastgc.check_hvp(q.grad, q.hvp, q.params, directions=2)
    assert r.ngev == 1 + 7 + 2 * 3 * 2  # 3 blocks, 2 directions each
    assert r.nhvp == 3 * 2 + 5  # the products, then symmetry (2) and linearity (3)
    r = fastgc.check_hvp(q.grad, q.hvp, q.params, method="two-step")
    assert r.ngev == 1 + 7 + 4 * 3


def test_subset_and_directions_modes_of_check_hessian():
    x = np.linspace(0.5, 1.5, 30)
    r = fastgc.check_hessian(rosen_der, rosen_hess, x, subset=10)
    assert r.passed and r.mode == "subset"
    assert np.isnan(r.numeric).all(axis=0).sum() == 20  # 20 columns not differenced
    assert r.ngev == 1 + 7 + 2 * 10
    q = Quadratic()
    r = fastgc.check_hessian(q.grad, q.hess, q.params, directions=3)
    assert r.passed and r.mode == "directions" and r.numeric is None


def test_float32_gradient_is_measured_and_a_correct_hessian_passes():
    def grad32(x):
        return rosen_der(x.astype(np.float32)).astype(np.float64)

    r = fastgc.check_hessian(grad32, rosen_hess, X0)
    assert r.passed, r.report(color=False)
    assert any("float32" in n for n in r.notes)
    assert r.threshold > 1e-6


def test_exclude_holds_a_block_fixed():
    q = Quadratic()
    r = fastgc.check_hessian(q.grad, q.hess, q.params, exclude="z")
    assert r.passed and set(r.pairs) == {("x", "x"), ("x", "W"), ("W", "x"), ("W", "W")}


def test_params_are_never_modified():
    q = Quadratic()
    before = copy.deepcopy(q.params)

    def grad(p):
        g = q.grad(p)
        p["x"] += 1.0  # a user function that scribbles on its argument
        return g

    def hvp(p, v):
        out = q.hvp(p, v)
        v["x"][...] = 0.0
        return out

    fastgc.check_hvp(grad, hvp, q.params)
    fastgc.check_hessian(grad, q.hess, q.params)
    for k in before:
        np.testing.assert_array_equal(q.params[k], before[k])


def test_results_pickle_and_compare():
    q = Quadratic()
    r = fastgc.check_hvp(q.grad, q.hvp, q.params, cost=q.cost)
    again = pickle.loads(pickle.dumps(r))
    assert again == r and isinstance(again, fastgc.HessianResult)
    assert fastgc.check_hvp(q.grad, q.hvp, q.params, cost=q.cost) == r  # seconds ignored
    assert fastgc.check_hvp(q.grad, q.hvp, q.params, seed=1) != r
    h = fastgc.check_hessian(q.grad, q.hess, q.params)
    assert pickle.loads(pickle.dumps(h)) == h
    assert "H[x, z]" in str(h)


# ---- bad input ----------------------------------------------------------------------------
def test_bad_input():
    q = Quadratic()
    with pytest.raises(ValueError, match=r"hess\(params\) has shape \(9, 10\) but params "
                                         r"flatten to 10 entries"):
        fastgc.check_hessian(q.grad, lambda p: np.zeros((9, 10)), q.params)
    with pytest.raises(TypeError, match="hess\\(params\\) must return a 2-D array"):
        fastgc.check_hessian(q.grad, lambda p: {"x": 1}, q.params)
    with pytest.raises(ValueError, match=r"non-finite value at H\[z\[1\], x\[0\]\]"):
        def nan_hess(p):
            H = q.hess(p)
            H[4, 0] = np.nan
            return H
        fastgc.check_hessian(q.grad, nan_hess, q.params)
    with pytest.raises(ValueError, match=r"hvp\(params, v\)\['W'\] has shape \(4,\)"):
        fastgc.check_hvp(q.grad, lambda p, v: {**q.hvp(p, v), "W": np.zeros(4)}, q.params)
    with pytest.raises(TypeError, match=r"hvp\(params, v\) must be a dict like params"):
        fastgc.check_hvp(q.grad, lambda p, v: list(q.hvp(p, v).values()), q.params)
    with pytest.raises(ValueError, match="hvp\\(params, v\\) has no key 'z'|'z'"):
        fastgc.check_hvp(q.grad, lambda p, v: {"x": v["x"], "W": v["W"]}, q.params)
    with pytest.raises(ValueError, match=r"grad\(params\)\['x'\] has shape"):
        fastgc.check_hvp(lambda p: {**q.grad(p), "x": np.zeros(2)}, q.hvp, q.params)
    with pytest.raises(TypeError, match="hvp must be callable"):
        fastgc.check_hvp(q.grad, None, q.params)
    with pytest.raises(TypeError, match="grad must be callable"):
        fastgc.check_hessian(q.grad(q.params), q.hess, q.params)
    with pytest.raises(ValueError, match="directions must be at least 1"):
        fastgc.check_hvp(q.grad, q.hvp, q.params, directions=0)
    with pytest.raises(ValueError, match="method must be one of"):
        fastgc.check_hvp(q.grad, q.hvp, q.params, method="complex")
    with pytest.raises(ValueError, match="subset and directions"):
        fastgc.check_hessian(q.grad, q.hess, q.params, subset=3, directions=1)
    with pytest.raises(ValueError, match="subset as a fraction"):
        fastgc.check_hessian(q.grad, q.hess, q.params, subset=1.5)
    with pytest.raises(TypeError, match="cost must be callable"):
        fastgc.check_hvp(q.grad, q.hvp, q.params, cost=3.0)


def test_nondeterministic_gradient_raises():
    q = Quadratic()
    rng = np.random.default_rng(0)

    def noisy(p):
        g = q.grad(p)
        g["x"] = g["x"] + 1e-6 * rng.standard_normal(3)
        return g

    with pytest.raises(CostError, match="grad is not deterministic"):
        fastgc.check_hvp(noisy, q.hvp, q.params)


def test_linear_operator_with_a_wrong_matvec_shape():
    q = Quadratic()
    op = LinearOperator((10, 10), matvec=lambda v: np.zeros(9), dtype=np.float64)
    with pytest.raises(ValueError):
        fastgc.check_hessian(q.grad, lambda p: op, q.params)
