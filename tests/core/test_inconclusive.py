"""Passes that cannot fail are not passes: zero-residual minimisers get a real verdict, a
threshold no difference can exceed gives "inconclusive", and so do kinks at the point whose
chain-rule value lies outside both one-sided slopes.

References: closed-form gradients (Rosenbrock, Freudenstein-Roth) and a hand-written numpy
ReLU layer; no value is read from fastgc.
"""

import numpy as np
import pytest

import fastgc


# ---- zero-residual minimisers: J(theta) = 0 exactly -------------------------------------------
def _rosenbrock(x):
    return float(np.sum(100.0 * (x[1::2] - x[::2] ** 2) ** 2 + (1.0 - x[::2]) ** 2))


def _rosenbrock_grad(x):
    g = np.zeros_like(x)
    u = x[1::2] - x[::2] ** 2
    g[::2] = -400.0 * x[::2] * u - 2.0 * (1.0 - x[::2])
    g[1::2] = 200.0 * u
    return g


def _freudenstein_roth(x):
    r1 = -13.0 + x[0] + ((5.0 - x[1]) * x[1] - 2.0) * x[1]
    r2 = -29.0 + x[0] + ((x[1] + 1.0) * x[1] - 14.0) * x[1]
    return float(r1 * r1 + r2 * r2)


def _freudenstein_roth_grad(x):
    r1 = -13.0 + x[0] + ((5.0 - x[1]) * x[1] - 2.0) * x[1]
    r2 = -29.0 + x[0] + ((x[1] + 1.0) * x[1] - 14.0) * x[1]
    d1 = 10.0 * x[1] - 3.0 * x[1] ** 2 - 2.0
    d2 = 3.0 * x[1] ** 2 + 2.0 * x[1] - 14.0
    return np.array([2.0 * (r1 + r2), 2.0 * (r1 * d1 + r2 * d2)])


MINIMISERS = {
    "rosenbrock": (_rosenbrock, _rosenbrock_grad, np.ones(2)),
    "extended-rosenbrock": (_rosenbrock, _rosenbrock_grad, np.ones(10)),
    "freudenstein-roth": (_freudenstein_roth, _freudenstein_roth_grad, np.array([5.0, 4.0])),
}


@pytest.mark.parametrize("method", ["central", "richardson"])
@pytest.mark.parametrize("name", sorted(MINIMISERS))
def test_a_zero_residual_minimiser_gets_a_real_verdict(name, method):
    cost, grad, x = MINIMISERS[name]
    assert cost(x) == 0.0 and not np.any(grad(x))  # precondition: exactly at the minimum
    default = {"central": 1e-6, "richardson": 1e-8}[method]
    correct = fastgc.check(cost, grad(x), x, method=method)
    assert correct.passed, correct.report(color=False)
    # a float64 cost near 0 is not low-precision: the threshold stays the scheme's own
    assert correct.threshold == default
    assert not any("precision" in n for n in correct.notes)
    assert correct.kinks == []
    wrong = grad(x)
    wrong[0] += 1e-3
    result = fastgc.check(cost, wrong, x, method=method)
    assert not result.passed and result.inconclusive == [], result.report(color=False)


# ---- a threshold no difference can exceed: never a pass ---------------------------------------
def _noisy(amplitude):
    """sum x^2 with a deterministic, noise-like relative perturbation of ``amplitude`` (it
    oscillates on a scale of 1e-9, far below any step)."""
    def cost(x):
        k = np.arange(1, len(x) + 1)
        return np.sum(x ** 2) * (1 + amplitude * np.sin(1e9 * np.sum(x * k)))
    return cost


SCHEMES = [{"method": "central"}, {"method": "richardson"}, {"method": "complex"},
           {"directions": 2}]


@pytest.mark.parametrize("amplitude", [0.2, 1.0])
@pytest.mark.parametrize("options", SCHEMES, ids=lambda o: "-".join(map(str, o.values())))
def test_no_scheme_passes_with_a_threshold_that_cannot_be_exceeded(options, amplitude):
    x = np.array([0.7, -1.1, 0.4])
    try:
        result = fastgc.check(_noisy(amplitude), 2 * x, x, **options)
    except fastgc.CostError:
        assert options.get("method") == "complex"  # the probe sees the cost is not analytic
        return
    # a relative difference is at most 1; 0.25 lets anything short of a sign error through
    assert not (result.passed and result.threshold >= 0.25), result.report(color=False)
    if result.threshold >= 0.25:
        assert result.inconclusive == ["params"]
        assert result.report(color=False).startswith("fastgc check INCONCLUSIVE")


# ---- several ReLUs at 0 at once: an all-zero input row with zero biases -----------------------
def _relu_forward(x, w, b):
    z = x @ w + b
    return np.maximum(z, 0.0), (x, w, z)


def _relu_backward(dout, cache):
    x, w, z = cache
    dz = dout * (z > 0)  # relu'(0) = 0: a valid choice at the kink
    return dz @ w.T, x.T @ dz, dz.sum(axis=0)


def _relu_backward_with_a_bug(dout, cache):
    dx, dw, db = _relu_backward(dout, cache)
    dx = dx.copy()
    dx[0, 1] += 0.05  # a wrong entry on the zero row
    return dx, dw, db


def _zero_row_layer():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3))
    x[0] = 0.0
    return x, rng.normal(size=(3, 5)), np.zeros(5)


@pytest.mark.parametrize("method", ["central", "richardson"])
def test_a_zero_input_row_is_inconclusive_with_the_slopes_shown(method):
    x, w, b = _zero_row_layer()
    # precondition (plain numpy): moving x[0, k] either way switches on different units, so
    # the one-sided slopes of <c, relu(x w)> along x[0, k] are sums over different units and
    # the chain rule's 0 (relu'(0) = 0) can lie outside both
    z = x @ w + b
    assert np.all(z[0] == 0.0)
    result = fastgc.check_layer(_relu_forward, _relu_backward, (x, w, b), method=method)
    assert not result.passed
    assert result.inconclusive == ["x"], result.report(color=False)
    assert result.blocks["w"].passed and result.blocks["b"].passed
    text = result.report(color=False)
    assert text.startswith("fastgc check INCONCLUSIVE") and "FAIL" not in text
    diagnosis = result.blocks["x"].diagnosis
    assert "several pieces meet at the point" in diagnosis
    assert "one-sided slopes [" in diagnosis and "point off the kink" in diagnosis


def test_a_real_bug_on_the_zero_row_is_caught_at_a_shifted_point():
    x, w, b = _zero_row_layer()
    at_kink = fastgc.check_layer(_relu_forward, _relu_backward_with_a_bug, (x, w, b))
    assert not at_kink.passed  # never a pass, even where no verdict is possible
    # the report's remedy: the inputs shifted by a small seeded amount, off every kink
    shifted = x + 1e-3 * np.random.default_rng(1).standard_normal(x.shape)
    correct = fastgc.check_layer(_relu_forward, _relu_backward, (shifted, w, b))
    assert correct.passed, correct.report(color=False)
    wrong = fastgc.check_layer(_relu_forward, _relu_backward_with_a_bug, (shifted, w, b))
    assert not wrong.passed and wrong.inconclusive == [], wrong.report(color=False)
    assert not wrong.blocks["x"].passed and "x[0, 1]" in wrong.blocks["x"].diagnosis


# ---- the report says what decided ---------------------------------------------------------
def test_the_header_shows_the_error_term_where_it_decides_and_counts_the_kinks():
    # Brown's badly scaled function at its start (J ~ 1e12): the rounding term, not the 1e-6
    # threshold, sets the tolerance; the header says so
    def brown(x):
        return float((x[0] - 1e6) ** 2 + (x[1] - 2e-6) ** 2 + (x[0] * x[1] - 2) ** 2)

    def brown_grad(x):
        r3 = x[0] * x[1] - 2
        return np.array([2 * (x[0] - 1e6) + 2 * r3 * x[1], 2 * (x[1] - 2e-6) + 2 * r3 * x[0]])

    x = np.ones(2)
    result = fastgc.check(brown, brown_grad(x), x)
    assert result.passed
    header = result.report(color=False).splitlines()[0]
    assert "(threshold 1.0e-06 + error term, up to " in header
    tolerance = result.blocks["params"].tolerance
    assert tolerance > 2e-6 and f"{tolerance:.1e}" in header
    # kinked coordinates are left out of the difference: the header counts them
    x, w, b = _zero_row_layer()
    layer = fastgc.check_layer(_relu_forward, _relu_backward, (x, w, b))
    assert (f"; {len(layer.kinks)} kinked coordinates judged by their one-sided slopes"
            in layer.report(color=False).splitlines()[0])
