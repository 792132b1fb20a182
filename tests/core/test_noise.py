"""The cost's noise: a cost that is not a function of its parameters is refused, however small
its random part, while the last-bit jitter of a threaded sum is not mistaken for one.

The costs are built here with known random parts (seeded generators drawn at every call), so
the expected verdict follows from their size alone.
"""

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
