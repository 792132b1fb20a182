"""taylor_test: the rates on smooth costs, a wrong gradient or Hessian term, a float32 cost and
a noisy one (against pyadjoint's fixed ladder, written out here)."""

import copy
import pickle
import zlib

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess_prod
from second_order_problems import Quadratic, TanhNet

import fastgc
from fastgc import CostError

X0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])


def pyadjoint_rates(cost, x, h, dJ, d2=None, first=1e-2):
    """pyadjoint's taylor_test ladder: 1e-2 halved 4 times, rates between neighbours."""
    J0 = cost(x)
    eps = first / 2.0 ** np.arange(5)
    r = np.array([abs(cost(x + e * h) - J0 - e * dJ - (0.5 * e * e * d2 if d2 is not None
                                                       else 0.0)) for e in eps])
    return np.log2(r[:-1] / r[1:])


def test_rates_2_and_3_on_rosenbrock():
    r = fastgc.taylor_test(rosen, rosen_der, X0)
    assert r.passed and r.order == 1 and r.expected_rate == 2
    assert abs(r.rate - 2) < 0.05 and r.window[1] - r.window[0] >= 5
    r3 = fastgc.taylor_test(rosen, rosen_der, X0, hvp=rosen_hess_prod)
    assert r3.passed and r3.order == 2 and abs(r3.rate - 3) < 0.05


def test_rates_on_a_tanh_network_with_its_hand_written_hvp():
    net = TanhNet()
    r = fastgc.taylor_test(net.cost, net.grad, net.params)
    assert r.passed and abs(r.rate - 2) < 0.05
    r = fastgc.taylor_test(net.cost, net.grad, net.params, hvp=net.hvp)
    assert r.passed and abs(r.rate - 3) < 0.05


def test_ladder_starts_at_pyadjoints_step_and_halves():
    h = np.array([0.5, -2.0, 1.0, 0.0, 1.0])
    r = fastgc.taylor_test(rosen, rosen_der, X0, direction=h)
    assert r.steps[0] == pytest.approx(1e-2 * 1.9 / 2.0)
    np.testing.assert_allclose(r.steps[:-1] / r.steps[1:], 2.0)
    assert len(r.rates) == len(r.steps) - 1
    assert r.derivative == pytest.approx(rosen_der(X0) @ h, rel=1e-14)
    # J(params) once, the noise table (7), one cost per step
    assert r.nfev == 1 + 7 + len(r.steps)


def test_wrong_gradient_has_rate_1():
    def grad(x):
        return rosen_der(x) * np.array([1, 1, 1.01, 1, 1])

    r = fastgc.taylor_test(rosen, grad, X0)
    assert not r.passed and abs(r.tail_rate - 1) < 0.1
    assert "rate 1.0" in r.message and "the gradient is wrong along this direction" in r.message


def test_wrong_hessian_term_has_rate_2():
    r = fastgc.taylor_test(rosen, rosen_der, X0, hvp=lambda x, v: 0.5 * rosen_hess_prod(x, v))
    assert not r.passed and abs(r.tail_rate - 2) < 0.1
    assert "the Hessian term is wrong" in r.message


def test_float32_cost_is_a_stated_noise_floor_failure_not_a_rate():
    def cost32(x):
        return float(rosen(x.astype(np.float32)))

    r = fastgc.taylor_test(cost32, rosen_der, X0)
    assert not r.passed and np.isnan(r.rate) and r.window == (0, 0)
    assert "reached the noise floor after" in r.message and "too noisy" in r.message
    assert 1e-8 < r.noise / rosen(X0) < 1e-6  # float32 noise, measured


def test_exact_expansion_passes_at_the_floor():
    q = Quadratic()
    r = fastgc.taylor_test(q.cost, q.grad, q.params, hvp=q.hvp)
    assert r.passed and np.isnan(r.rate) and "from the first step" in r.message
    # a wrong Hessian on the same quadratic is not at the floor
    r = fastgc.taylor_test(q.cost, q.grad, q.params, hvp=lambda p, v: {
        k: 0.9 * a for k, a in q.hvp(p, v).items()})
    assert not r.passed and abs(r.tail_rate - 2) < 0.1


def test_per_block_names_the_wrong_block():
    q = Quadratic()

    def grad(p):
        g = q.grad(p)
        g["W"] = 1.01 * g["W"]
        return g

    r = fastgc.taylor_test(q.cost, grad, q.params, per_block=True)
    assert not r.passed
    assert {k for k, b in r.blocks.items() if not b.passed} == {"W"}
    good = fastgc.taylor_test(q.cost, q.grad, q.params, per_block=True)
    assert good.passed and set(good.blocks) == {"x", "z", "W"}


def test_per_block_finds_errors_that_cancel_along_the_whole_direction():
    q = Quadratic()
    rng = np.random.default_rng(4)
    h = {k: rng.standard_normal(np.shape(a)) for k, a in q.params.items()}
    # errors in dx and dW whose contributions to dJ.h cancel: the whole-direction test is
    # blind to them, the per-block tests are not
    e = {"x": -0.05 * h["x"] / np.sum(h["x"] ** 2), "W": 0.05 * h["W"] / np.sum(h["W"] ** 2)}

    def grad(p):
        g = q.grad(p)
        return {k: g[k] + e.get(k, 0.0) for k in g}

    r = fastgc.taylor_test(q.cost, grad, q.params, direction=h, per_block=True)
    assert not r.passed and "fails along block(s) x, W" in r.message
    assert {k for k, b in r.blocks.items() if not b.passed} == {"x", "W"}
    assert all(abs(r.blocks[k].tail_rate - 1) < 0.1 for k in ("x", "W"))
    assert fastgc.taylor_test(q.cost, grad, q.params, direction=h).passed


def _noisy_rosen(amp, salt=3):
    """Rosenbrock plus deterministic noise of amplitude ``amp`` (a hash of x's bits: random
    at every scale, as a solver's tolerance is)."""
    def cost(x):
        u = zlib.crc32(np.ascontiguousarray(x, dtype=np.float64).tobytes(), salt) / 2 ** 32
        return rosen(x) + amp * (u - 0.5)

    return cost


def test_noisy_cost_pyadjoints_fixed_ladder_gives_a_wrong_rate_fastgcs_does_not():
    x = X0 / 2  # |x|_inf < 1: both ladders start at 1e-2
    h = np.random.default_rng(0).standard_normal(5)
    h /= np.abs(h).max()
    dJ, d2 = rosen_der(x) @ h, h @ rosen_hess_prod(x, h)
    # noise ~2e-8: pyadjoint's last halvings are in it, and its min rate fails a correct H
    cost = _noisy_rosen(2e-8)
    rates = pyadjoint_rates(cost, x, h, dJ, d2)
    assert rates.min() < 2.9  # pyadjoint's "min(rates) > expected - 0.1" would fail
    r = fastgc.taylor_test(cost, rosen_der, x, hvp=rosen_hess_prod, direction=h)
    assert r.passed and abs(r.rate - 3) < 0.05 and r.window[1] < len(r.steps)
    # more noise: pyadjoint's rate is further off; fastgc says the cost is too noisy
    cost = _noisy_rosen(5e-8)
    rates = pyadjoint_rates(cost, x, h, dJ, d2)
    assert abs(rates[-1] - 3) > 0.5
    r = fastgc.taylor_test(cost, rosen_der, x, hvp=rosen_hess_prod, direction=h)
    assert not r.passed and np.isnan(r.rate) and "too noisy" in r.message


def test_params_unchanged_and_nothing_printed(capsys):
    net = TanhNet()
    before = copy.deepcopy(net.params)

    def cost(p):
        value = net.cost(p)
        p["W1"] *= 2.0  # a cost that scribbles on its argument
        return value

    r = fastgc.taylor_test(cost, net.grad, net.params, hvp=net.hvp)
    assert r.passed
    for k in before:
        np.testing.assert_array_equal(net.params[k], before[k])
    assert capsys.readouterr() == ("", "")


def test_result_pickles_compares_and_reports():
    r = fastgc.taylor_test(rosen, rosen_der, X0, hvp=rosen_hess_prod)
    assert pickle.loads(pickle.dumps(r)) == r
    assert fastgc.taylor_test(rosen, rosen_der, X0, hvp=rosen_hess_prod) == r
    assert fastgc.taylor_test(rosen, rosen_der, X0, seed=1) != r
    text = r.report(color=False)
    assert "fitted" in text and "expected rate 3" in text


def test_bad_input():
    q = Quadratic()
    with pytest.raises(ValueError, match=r"direction has shape \(4,\) but params has shape "
                                         r"\(5,\)"):
        fastgc.taylor_test(rosen, rosen_der, X0, direction=np.ones(4))
    with pytest.raises(ValueError, match=r"direction\['W'\] has shape \(4,\) but parameter "
                                         r"'W' has shape \(2, 2\)"):
        fastgc.taylor_test(q.cost, q.grad, q.params,
                           direction={"x": np.ones(3), "z": np.ones(3), "W": np.ones(4)})
    with pytest.raises(ValueError, match="direction is zero"):
        fastgc.taylor_test(rosen, rosen_der, X0, direction=np.zeros(5))
    with pytest.raises(ValueError, match=r"hvp\(params, v\)\['W'\] has shape"):
        fastgc.taylor_test(q.cost, q.grad, q.params,
                           hvp=lambda p, v: {**q.hvp(p, v), "W": np.zeros(3)})
    with pytest.raises(TypeError, match="cost must be callable"):
        fastgc.taylor_test(None, rosen_der, X0)
    with pytest.raises(TypeError, match="hvp must be callable"):
        fastgc.taylor_test(rosen, rosen_der, X0, hvp=np.eye(5))
    with pytest.raises(ValueError, match="max_halvings"):
        fastgc.taylor_test(rosen, rosen_der, X0, max_halvings=1)
    with pytest.raises(CostError, match="real scalar"):
        fastgc.taylor_test(lambda x: np.ones(2), rosen_der, X0)


def test_nondeterministic_cost_raises():
    rng = np.random.default_rng(0)
    with pytest.raises(CostError, match="not deterministic"):
        fastgc.taylor_test(lambda x: rosen(x) + 1e-6 * rng.standard_normal(), rosen_der, X0)
