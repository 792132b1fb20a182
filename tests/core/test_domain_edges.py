"""Costs undefined on one side of a coordinate: smaller steps near the edge, one-sided
differences on it. References are closed-form gradients.
"""

import numpy as np
import pytest

import fastgc

X = 0.5 + 1e-7 * np.random.default_rng(2).standard_normal(20)


def _nll(p):
    """Gaussian negative log-likelihood of X (NaN for sigma <= 0, as numpy's log gives)."""
    mu, sigma = p
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(np.log(sigma) + 0.5 * ((X - mu) / sigma) ** 2))


def _nll_grad(p):
    mu, sigma = p
    return np.array([-np.sum(X - mu) / sigma ** 2,
                     np.sum(1 / sigma - (X - mu) ** 2 / sigma ** 3)])


def test_a_log_likelihood_at_sigma_1e_7_is_checked_near_its_edge():
    p = np.array([0.5, 1e-7])  # the default step (6.1e-6) would take sigma below 0
    result = fastgc.check(_nll, _nll_grad, p)
    assert result.passed, result.report(color=False)
    assert any("within the default step" in n and "params[1] (step" in n
               for n in result.notes)
    for bug in (lambda g: g * np.array([1.0, 1 + 1e-4]),
                lambda g: g - np.array([0.0, len(X) / p[1]])):  # a dropped 1/sigma term
        wrong = fastgc.check(_nll, bug(_nll_grad(p)), p)
        assert not wrong.passed, wrong.report(color=False)


def _bounded(p):
    """Smooth on p >= 0 (a probability), NaN outside, as a guarded cost returns."""
    if np.any(p < 0):
        return float("nan")
    return float(np.sum(np.log1p(p) + p ** 2) + 0.3 * p[0] * p[1])


def _bounded_grad(p):
    g = 1 / (1 + p) + 2 * p
    g[0] += 0.3 * p[1]
    g[1] += 0.3 * p[0]
    return g


def test_a_cost_at_its_bound_is_checked_one_sided():
    p = np.array([0.0, 0.4, 0.0])  # two coordinates on the bound
    result = fastgc.check(_bounded, _bounded_grad(p), p)
    assert result.passed, result.report(color=False)
    assert any("one-sided differences" in n and "params[0] (+ side)" in n
               and "params[2] (+ side)" in n for n in result.notes)
    for j in (0, 2):
        wrong = _bounded_grad(p)
        wrong[j] *= 1 + 1e-4
        bad = fastgc.check(_bounded, wrong, p)
        assert not bad.passed and f"params[{j}]" in bad.blocks["params"].diagnosis, (
            bad.report(color=False))


def test_a_cost_undefined_on_both_sides_still_says_where():
    p = np.array([1.0, 2.0])

    def nowhere(q):
        return float("nan") if not np.array_equal(q, p) else 1.0

    with pytest.raises(fastgc.CostError, match=r"cost returned nan at params\[0\]"):
        fastgc.check(nowhere, np.zeros(2), p)


# ---- bounds=, as in scipy.optimize.approx_derivative ------------------------------------------
def _quartic(p):
    """Smooth everywhere; the bounds alone keep the steps inside [0, 1]."""
    return float(np.sum(np.exp(p) * (1 + p ** 2)) + p[0] * p[2] ** 2)


def _quartic_grad(p):
    g = np.exp(p) * (1 + p) ** 2
    g[0] += p[2] ** 2
    g[2] += 2 * p[0] * p[2]
    return g


def test_bounds_keep_every_step_inside_and_check_one_sided_at_an_active_bound():
    p = np.array([0.0, 0.5, 1.0, 1e-9])  # lower bound active at 0, upper at 2, near at 3
    seen = []

    def cost(q):
        seen.append(q.copy())
        return _quartic(q)

    result = fastgc.check(cost, _quartic_grad(p), p, bounds=(0.0, 1.0))
    assert result.passed, result.report(color=False)
    assert all(np.all((q >= 0.0) & (q <= 1.0)) for q in seen[1 + 7:])  # after the noise table
    notes = " ".join(result.notes)
    assert "params[0] (+ side)" in notes and "params[2] (- side)" in notes
    # 1e-9 from the bound, on a cost smooth on the scale of the default step: one-sided too
    assert "params[3] (+ side)" in notes
    for j in (0, 2, 3):
        wrong = _quartic_grad(p)
        wrong[j] *= 1 + 1e-4
        bad = fastgc.check(_quartic, wrong, p, bounds=(0.0, 1.0))
        assert not bad.passed and f"params[{j}]" in bad.blocks["params"].diagnosis, (
            bad.report(color=False))


def test_bounds_are_validated():
    p = np.array([0.0, 0.5, 0.2])
    with pytest.raises(ValueError, match="outside bounds at flat index 1"):
        fastgc.check(_quartic, _quartic_grad(p), p, bounds=(0.0, 0.4))
    with pytest.raises(ValueError, match="needs method='central'"):
        fastgc.check(_quartic, _quartic_grad(p), p, bounds=(0.0, 1.0), method="richardson")
    with pytest.raises(TypeError, match="bounds must be a pair"):
        fastgc.check(_quartic, _quartic_grad(p), p, bounds=0.0)
