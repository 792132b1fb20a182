"""The cost's noise (fastgc._core.noise): a cost that is not a function of its parameters is
refused, however small its random part, while the last-bit jitter of a threaded sum is not
mistaken for one; a cost computed in float32 is checked at the step and threshold its measured
noise allows, and a bug in it still fails.

The costs are built here with known random parts (seeded generators drawn at every call), so
the expected verdict follows from their size alone.
"""

import re

import numpy as np
import pytest

import fastgc


def _quadratic(seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((8, 8))
    x = rng.standard_normal(8)
    return (lambda v: float(0.5 * np.sum((A @ v) ** 2))), A.T @ (A @ x), x


@pytest.mark.parametrize("relative", [1e-8, 1e-6, 1e-2])
def test_a_random_term_is_refused_however_small(relative):
    # J(theta) evaluated twice differs by ~relative: far above float64 rounding (1e-16) even
    # at 1e-8, which a finite difference at the 6e-6 step would read as ~1e-3 noise in the
    # slope. A tolerance loosened to 1e-7 lets it through as "~float32 precision".
    cost, grad, x = _quadratic()
    draws = np.random.default_rng(7)

    def noisy(v):
        c = cost(v)
        return c * (1 + relative * draws.standard_normal())

    with pytest.raises(fastgc.CostError, match="the cost is not deterministic"):
        fastgc.check(noisy, grad, x, engine="loop")


def test_last_bit_jitter_is_not_nondeterminism():
    # A threaded reduction's result may differ in its last bits between calls: a few ulps,
    # ~1e-15 relative. That is float64 rounding: the check runs and passes.
    cost, grad, x = _quadratic()
    draws = np.random.default_rng(7)

    def jittery(v):
        c = cost(v)
        return c * (1 + 4e-16 * draws.integers(-4, 5))

    result = fastgc.check(jittery, grad, x, engine="loop")
    assert result.passed, result.report()
    assert not any("precision" in n for n in result.notes)


# ---- float32 and nondeterministic costs, on real code --------------------------------------------
def _tanh_layer(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, 20)).astype(np.float32)
    C = rng.standard_normal((5, 20)).astype(np.float32)
    p = {"W": 0.5 * rng.standard_normal((5, 6)), "b": 0.1 * rng.standard_normal((5, 1))}
    return p, X, C


def tanh32_cost(p, X, C):
    """A tanh layer computed in float32, as a float32 framework would (the parameters cast)."""
    Z = p["W"].astype(np.float32) @ X + p["b"].astype(np.float32)
    return np.sum(np.tanh(Z) * C) / np.float32(X.shape[1])


def tanh_grad(p, X, C):
    A = np.tanh(p["W"] @ X.astype(np.float64) + p["b"])
    dZ = (1 - A ** 2) * C / X.shape[1]
    return {"dW": dZ @ X.T.astype(np.float64), "db": dZ.sum(1, keepdims=True)}


@pytest.mark.parametrize("float32_params", [False, True])
def test_a_float32_cost_passes_with_default_options(float32_params):
    p, X, C = _tanh_layer()
    if float32_params:
        p = {k: v.astype(np.float32) for k, v in p.items()}
        with pytest.warns(fastgc.Float32Warning, match="measures its noise"):
            result = fastgc.check(tanh32_cost, tanh_grad, p, X, C)
    else:
        result = fastgc.check(tanh32_cost, tanh_grad, p, X, C)
    assert result.passed, result.report(color=False)
    note = next(n for n in result.notes if "precision" in n)
    assert "the cost computes in ~float32 precision" in note
    assert "step" in note and "accuracy ~" in note
    # the step is the one the report states, the cube root of the measured noise: far above
    # float64's 6.1e-06, where float32 rounding would swamp the difference quotient
    step = float(re.search(r"step (\S+) x max", result.step).group(1))
    assert f"step {step:.2g} x max(1, |theta|)" in note
    assert 1e-3 < step < 1e-1
    noise = float(re.search(r"measured noise (\S+) relative", note).group(1))
    assert step == pytest.approx(noise ** (1 / 3), rel=0.05)


def test_a_factor_two_bug_in_a_float32_cost_fails():
    p, X, C = _tanh_layer()
    g = tanh_grad(p, X, C)
    g["dW"] = 2 * g["dW"]
    result = fastgc.check(tanh32_cost, g, p, X, C)
    assert not result.passed
    assert result.blocks["W"].diagnosis == "dW is 2 x the numeric gradient"
    assert result.blocks["b"].passed


def test_a_float64_cost_keeps_the_float64_step():
    p, X, C = _tanh_layer()

    def cost(p, X, C):
        return np.sum(np.tanh(p["W"] @ X.astype(np.float64) + p["b"]) * C) / X.shape[1]

    result = fastgc.check(cost, tanh_grad, p, X, C)
    assert result.passed and result.threshold == 1e-6
    assert "6.1e-06" in result.step
    assert not any("precision" in n for n in result.notes)


@pytest.mark.parametrize("engine", ["loop", "stacked"])
def test_a_nondeterministic_cost_raises_cost_error(engine):
    p, X, C = _tanh_layer()
    fresh = np.random.default_rng()  # unseeded: a new mask at every call, as dropout does

    def dropout_cost(p, X, C):
        W = p["W"]
        mask = fresh.random(W.shape[:-2] + (X.shape[1],)) > 0.5
        H = np.tanh(W @ X.astype(np.float64) + p["b"]) * mask[..., None, :]
        return np.sum(H * C, axis=(-2, -1))

    if engine == "stacked":
        dropout_cost = fastgc.batched(dropout_cost)
    with pytest.raises(fastgc.CostError, match="not deterministic.*[Dd]ropout"):
        fastgc.check(dropout_cost, tanh_grad, p, X, C, engine=engine)


def test_a_float32_numba_cost():
    numba = pytest.importorskip("numba")

    @numba.njit
    def cost(theta, X, C):  # W (5, 6) then b (5,), computed in float32
        W = theta[:30].reshape(5, 6).astype(np.float32)
        b = theta[30:].astype(np.float32)
        return np.sum(np.tanh(W @ X + b.reshape(5, 1)) * C) / np.float32(X.shape[1])

    p, X, C = _tanh_layer()
    theta = np.concatenate([p["W"].ravel(), p["b"].ravel()])
    g = tanh_grad(p, X, C)
    grad = np.concatenate([g["dW"].ravel(), g["db"].ravel()])
    result = fastgc.check(cost, grad, theta, X, C)
    assert result.engine == "numba"
    assert result.passed, result.report(color=False)
    assert any("~float32 precision" in n for n in result.notes)
    grad[:30] *= 2
    assert not fastgc.check(cost, grad, theta, X, C).passed


def test_a_kink_at_the_point_is_not_taken_for_noise():
    # relu at exactly zero in three coordinates: the noise table (every coordinate moved at
    # once) crosses the kinks and its higher differences fill, as low-precision noise would.
    # A table 10 times finer tells them apart: a kink's differences shrink with the spacing.
    # Taken for noise, the kinks would report "~float32 precision", raise the threshold ~25x
    # and let a 1e-4 relative error in a smooth coordinate pass.
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20)
    x[[2, 5, 11]] = 0.0

    def cost(v):
        return float(np.sum(np.maximum(v, 0.0)) + 0.5 * np.sum(v * v))

    grad = (x > 0).astype(float) + x  # the subgradient 0 at the kinks
    correct = fastgc.check(cost, grad, x)
    assert correct.passed and correct.threshold == 1e-6
    assert not any("precision" in n for n in correct.notes)
    wrong = grad.copy()
    wrong[0] *= 1 + 1e-4
    result = fastgc.check(cost, wrong, x)
    assert not result.passed
