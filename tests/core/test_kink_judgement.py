"""Kinks judged by behaviour: the one-sided judgement's extrapolation, and the network engine's
kink mask on both sides of the step.

References are worked out by hand (the one-sided intervals of a piecewise quadratic) or in
plain numpy (which relu pre-activations change sign within the step).
"""

import numpy as np
import pytest
from problems import network_problem

import fastgc

# ---- the one-sided judgement extrapolates each side ----------------------------------------
# Along each coordinate the cost is a quadratic with curvature K plus a kink at distance C from
# theta, inside the step H but beyond H/2: coordinate 0 has it on the + side, coordinate 1 on
# the - side. Its true derivative at theta is B. One-sided difference quotients of a quadratic
# are D(+-h) = B +- K h / 2 exactly (no rounding worth the name at these sizes), so on the side
# without the kink:
#   extrapolated, 2 D(h/2) - D(h) = B, widened by |D(h/2) - D(h)| = K H / 4:
#       interval B +- K H / 4 (what fastgc documents);
#   not extrapolated, D(h/2) = B +- K H / 4 widened by the same K H / 4:
#       interval [B, B + K H / 2] on the + side, [B - K H / 2, B] on the - side.
# An analytic value off by 0.4 K H towards the side's interval lies in the second and not in the
# first. The side with the kink: its h/2 quotient is still clean, its h quotient picks up
# -A (H - C) / H, so its extrapolated interval is [B + 2u - K H / 4, B + K H / 4] with
# u = A (H - C) / H = 0.01 < K H / 4 = 0.025: it does not reach the wrong values either.
H, K, B, A = 1e-5, 1e4, 1.0, 0.04
C = 0.75 * H


def _kinked_quadratic(x):
    return float(np.sum(B * x + K / 2 * x * x)
                 - A * max(x[0] - C, 0.0) - A * max(-x[1] - C, 0.0))


def test_kinked_coordinates_are_found_and_pass_with_the_true_derivative():
    x = np.zeros(2)
    result = fastgc.check(_kinked_quadratic, np.full(2, B), x, eps=H, engine="loop")
    assert result.kinks == ["params[0]", "params[1]"]
    assert result.passed, result.report()


@pytest.mark.parametrize("coordinate, wrong", [(0, B - 0.4 * K * H), (1, B + 0.4 * K * H)],
                         ids=["kink-on-plus-side", "kink-on-minus-side"])
def test_one_sided_judgement_extrapolates_each_side(coordinate, wrong):
    x = np.zeros(2)
    grad = np.full(2, B)
    grad[coordinate] = wrong
    result = fastgc.check(_kinked_quadratic, grad, x, eps=H, engine="loop")
    # found as a kink (the estimate moves when the step is cut to H/16) ...
    assert f"params[{coordinate}]" in result.kinks
    # ... and judged wrong: 0.4 K H = 0.04 is outside the extrapolated interval B +- 0.025,
    # though inside the first-order one (which would pass it)
    assert not result.passed, result.report()
    assert "outside the one-sided differences" in result.blocks["params"].diagnosis


@pytest.mark.parametrize("offset", [-0.2, 0.2])
def test_one_sided_judgement_accepts_values_inside_the_extrapolated_interval(offset):
    # B +- 0.2 K H lies within B +- K H / 4 on the clean side: accepted on either coordinate
    grad = np.full(2, B + offset * K * H)
    result = fastgc.check(_kinked_quadratic, grad, np.zeros(2), eps=H, engine="loop")
    assert result.kinks == ["params[0]", "params[1]"]
    assert result.passed, result.report()


# ---- the network engine's kink mask looks at both sides -------------------------------------
# A relu network, identity output, squared error: piecewise quadratic along every coordinate, so
# a central difference that crosses no kink is exact and only crossing coordinates can look
# wrong. One pre-activation is set to +0.3 eps: its bias's -eps step crosses the kink and its
# +eps step does not.
DIMS = (4, 5, 3)
EPS = 1e-4


def _relu_masks(p, X):
    Z1 = p["W1"] @ X + p["b1"]
    return Z1 > 0


def _crossing(params, X, name, index, step):
    q = {k: v.copy() for k, v in params.items()}
    q[name][index] += step
    return bool(np.any(_relu_masks(q, X) != _relu_masks(params, X)))


def test_network_kink_mask_checks_the_minus_side_too():
    net = fastgc.MLP(list(DIMS), ["relu", "identity"], "mse")
    params, X, Y = network_problem(DIMS, 3, "normal", 4, 104)
    unit = 2
    params["b1"][unit, 0] = 0.3 * EPS - params["W1"][unit] @ X[:, 0]
    # plain numpy: the bias's step crosses a kink on the - side only
    assert _crossing(params, X, "b1", (unit, 0), -EPS)
    assert not _crossing(params, X, "b1", (unit, 0), +EPS)
    crossing = {f"{name}[{i}, {j}]"
                for name in ("W1", "b1") for (i, j) in np.ndindex(params[name].shape)
                if _crossing(params, X, name, (i, j), EPS)
                or _crossing(params, X, name, (i, j), -EPS)}
    grads = net.gradients(params, X, Y)
    result = fastgc.check(net, {k: grads["d" + k] for k in params}, params, X, Y, eps=EPS)
    assert result.engine == "network"
    assert f"b1[{unit}, 0]" in result.kinks
    assert result.kinks and set(result.kinks) <= crossing
    assert result.passed, result.report()


# ---- result.difference leaves kinked coordinates out ---------------------------------------
def test_difference_is_over_the_smooth_coordinates_only():
    # sum(relu(x)) + |x|^2 / 2 with three coordinates exactly at the kink: there the analytic
    # derivative (the subgradient 0, plus x = 0) lies between the one-sided slopes 0 and 1, and
    # passes, but the central difference reads 0.5. Counted in the norm, those three would make
    # result.difference ~0.1 on a passing check; the smooth coordinates alone agree to
    # rounding (the cost is piecewise quadratic: no truncation error, ~1e-10 relative).
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20)
    x[[2, 5, 11]] = 0.0
    grad = (x > 0).astype(float) + x
    result = fastgc.check(lambda v: float(np.sum(np.maximum(v, 0.0)) + 0.5 * np.sum(v * v)),
                          grad, x)
    assert result.passed and result.kinks == ["params[2]", "params[5]", "params[11]"]
    assert result.difference < 1e-8 < result.threshold
    assert result.blocks["params"].difference < 1e-8
