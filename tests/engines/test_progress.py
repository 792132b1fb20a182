"""The progress bar: drawn on request, silent by default off a terminal, results unchanged."""

import numpy as np
import pytest

import fastgc
from fastgc._core.noise import NOISE_NFEV


def _problem():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 600)) / 25
    x = rng.standard_normal(600)
    return (lambda v: 0.5 * np.sum((A @ v) ** 2)), A.T @ (A @ x), x


def test_progress_true_draws_and_clears_a_bar(capsys):
    cost, grad, x = _problem()
    plain = fastgc.check(cost, grad, x, progress=False)
    shown = fastgc.check(cost, grad, x, progress=True)
    err = capsys.readouterr().err
    assert "fastgc [" in err and "evaluations" in err
    assert err.endswith("\r")  # the line is cleared at the end
    np.testing.assert_array_equal(shown.numeric, plain.numeric)
    assert shown.nfev == plain.nfev == 2 * 600 + 1 + NOISE_NFEV


def test_progress_default_is_silent_off_a_terminal(capsys):
    cost, grad, x = _problem()
    fastgc.check(cost, grad, x)
    assert capsys.readouterr().err == ""


def test_interrupt_between_chunks_leaves_params_untouched():
    cost, grad, x = _problem()
    before = x.copy()
    calls = {"n": 0}

    def interrupted(v):
        calls["n"] += 1
        if calls["n"] == 700:
            raise KeyboardInterrupt
        return cost(v)

    with pytest.raises(KeyboardInterrupt):
        fastgc.check(interrupted, grad, x, progress=True)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("value, error", [("yes", TypeError), (0, ValueError)])
def test_progress_and_max_memory_are_validated(value, error):
    cost, grad, x = _problem()
    with pytest.raises(error, match="progress must be|max_memory must be"):
        if error is TypeError:
            fastgc.check(cost, grad, x, progress=value)
        else:
            fastgc.check(cost, grad, x, max_memory=value)
