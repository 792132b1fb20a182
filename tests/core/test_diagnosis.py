"""Per-block verdicts and the diagnosis of a failing block.

The cost is linear in W (gradient M, exact: central differences of a linear function have no
truncation error) so every wrong analytic gradient below is M with a known, hand-made bug,
and the diagnosis must name that bug.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgc
from fastgc._core.diagnosis import diagnose
from fastgc._core.driver import Diagnosis, Measured, judge_blocks
from fastgc._core.layout import Layout


def _problem(seed=0, shape=(3, 3)):
    rng = np.random.default_rng(seed)
    M = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    params = {"W": rng.normal(size=shape), "b": rng.normal(size=2)}

    def cost(p):
        return np.sum(M * p["W"]) + 0.5 * np.sum(p["b"] ** 2)

    return cost, params, M


def _check_W(gW, seed=0, shape=(3, 3)):
    cost, params, M = _problem(seed, shape)
    return fastgc.check(cost, {"dW": gW(M), "db": params["b"].copy()}, params), M


def _with(M, fn):
    g = M.copy()
    fn(g)
    return g


@pytest.mark.parametrize(
    "bug, expected",
    [
        (lambda M: 2 * M, "dW is 2 x the numeric gradient"),
        (lambda M: 0.5 * M, "dW is 0.5 x the numeric gradient"),
        (lambda M: -M, "dW has the wrong sign (-1 x the numeric gradient)"),
        (lambda M: M.T.copy(), "dW is transposed (it matches the numeric gradient's transpose)"),
        (lambda M: _with(M, lambda g: g.__setitem__(1, -g[1])),
         "rows [1] of dW disagree; the other rows agree; row 1 is -1 x the numeric gradient"),
        (lambda M: _with(M, lambda g: g.__setitem__((slice(None), 2), 0.0)),
         "columns [2] of dW disagree; the other columns agree"),
        (lambda M: _with(M, lambda g: g.__setitem__((1, 2), g[1, 2] + 1.0)),
         "1 of 9 entries disagree: W[1, 2]"),
        (lambda M: _with(M, lambda g: g.__setitem__(((0, 2), (1, 0)), 7.0)),
         "2 of 9 entries disagree: W[0, 1], W[2, 0]"),
        (lambda M: np.zeros_like(M), "dW is zero where the numeric gradient is not"),
    ],
    ids=["x2", "x0.5", "sign", "transposed", "row", "column", "entry", "entries", "zero"],
)
def test_diagnosis_names_the_bug(bug, expected):
    result, _ = _check_W(bug)
    assert not result.passed
    assert not result.blocks["W"].passed
    assert result.blocks["W"].diagnosis == expected
    assert result.blocks["b"].passed and result.blocks["b"].diagnosis == "ok"
    assert expected in result.report(color=False)


def test_rows_and_columns_on_a_rectangular_block():
    result, _ = _check_W(lambda M: _with(M, lambda g: g.__setitem__([0, 3], 0.0)), shape=(4, 5))
    assert result.blocks["W"].diagnosis == "rows [0, 3] of dW disagree; the other rows agree"
    result, _ = _check_W(lambda M: _with(M, lambda g: g.__setitem__((slice(None), 4), 1e3)),
                         shape=(4, 5))
    assert result.blocks["W"].diagnosis == "columns [4] of dW disagree; the other columns agree"


def test_many_wrong_entries_are_listed_with_a_count():
    # seven scattered entries: no whole row, no whole column
    wrong = [(0, 0), (0, 2), (1, 1), (1, 3), (2, 0), (3, 1), (3, 2)]
    rows, cols = zip(*wrong, strict=True)
    result, _ = _check_W(lambda M: _with(M, lambda g: g.__setitem__((rows, cols), 9.0)),
                         shape=(4, 4))
    assert result.blocks["W"].diagnosis == (
        "7 of 16 entries disagree: W[0, 0], W[0, 2], W[1, 1], W[1, 3], W[2, 0] and 2 more"
    )


def test_numeric_gradient_zero():
    # The cost does not depend on W at all, but the analytic gradient says it does.
    b = np.array([0.3, -0.2])
    result = fastgc.check(lambda p: np.sum(p["b"] ** 2),
                          {"dW": np.ones((2, 2)), "db": 2 * b}, {"W": np.ones((2, 2)), "b": b})
    assert result.blocks["W"].diagnosis == "dW is nonzero where the numeric gradient is zero"
    assert result.blocks["b"].passed


def test_block_names_in_the_diagnosis():
    x = np.array([0.5, -1.0])

    def cost(p):
        return np.sum(p[0] ** 2)

    listed = fastgc.check(cost, [4 * x], [x])
    assert listed.blocks["[0]"].diagnosis == "grad[0] is 2 x the numeric gradient"

    keyed = fastgc.check(lambda p: np.sum(p["my-w"] ** 2), {"my-w": 4 * x}, {"my-w": x})
    assert keyed.blocks["my-w"].diagnosis == "grad['my-w'] is 2 x the numeric gradient"

    single = fastgc.check(lambda v: np.sum(v ** 2), 4 * x, x)
    assert single.blocks["params"].diagnosis == "dparams is 2 x the numeric gradient"


def test_exercise_style_keys():
    # The exercise's gradient dict: dW1 etc., plus backprop intermediates, which are ignored.
    rng = np.random.default_rng(7)
    params = {"W1": rng.normal(size=(2, 3)), "b1": rng.normal(size=(2, 1))}

    def cost(p):
        return 0.5 * np.sum(p["W1"] ** 2) + np.sum(p["b1"])

    grad = {"dZ1": np.ones((2, 5)), "dW1": 2 * params["W1"], "db1": np.ones((2, 1)),
            "dA1": np.ones(3)}
    result = fastgc.check(cost, grad, params)
    assert result.blocks["W1"].diagnosis == "dW1 is 2 x the numeric gradient"
    assert result.blocks["b1"].passed
    assert result.ignored_keys == ["dZ1", "dA1"]


def test_entries_within_tolerance_imply_a_passing_block():
    # Every entry is within its own tolerance thr (|g| + |a|) + 10 err. By the triangle
    # inequality the block's ||g - a|| is then within thr (||g|| + ||a||) + 10 ||err||, the
    # block rule: a failing block always has a wrong entry to name (never "rows []").
    layout, _ = Layout.of({"W": np.zeros((2, 2))})
    index = np.arange(4)
    a, err, thr = np.ones(4), np.full(4, 2e-4), 1e-3
    g = a + 0.9 * (thr * 2 + 10 * err) * np.array([1.0, -1.0, 1.0, -1.0])
    blocks = _judge(layout, index, g, a, err, thr)
    assert blocks["W"].passed
    # Just past one entry's tolerance, the block fails and that entry is named.
    g[2] = a[2] + 1.2 * (thr * 2 + 10 * err[2]) * 4
    blocks = _judge(layout, index, g, a, err, thr)
    assert not blocks["W"].passed
    assert "W[1, 0]" in blocks["W"].diagnosis


def _judge(layout, index, g, a, err, thr):
    """The driver's block verdict on given numbers, with the coordinate diagnosis."""
    n = len(index)
    measured = Measured(layout.block_index(index), g, a, err, np.zeros(n, bool), np.ones(n, bool))

    def diagnose_block(b_i, block, sel, wrong):
        return Diagnosis(diagnose(block, g[sel], a[sel], wrong[sel], index[sel] - block.offset))

    return judge_blocks(layout, measured, thr, diagnose_block).blocks


def test_diagnose_directly():
    layout, _ = Layout.of({"W": np.zeros((3, 3)), "s": np.zeros(())})
    W, s = layout.blocks
    a = np.arange(1.0, 10.0)
    wrong = np.ones(9, dtype=bool)
    assert diagnose(W, 3 * a, a, wrong) == "dW is 3 x the numeric gradient"
    # a 0-d block: any wrong value is a factor of the numeric one
    assert diagnose(s, np.array([-2.0]), np.array([2.0]), np.array([True])) == (
        "ds has the wrong sign (-1 x the numeric gradient)"
    )
    # no simple pattern: every entry wrong, unrelated values
    rng = np.random.default_rng(0)
    g = rng.normal(size=9)
    assert diagnose(W, g, a, wrong) == (
        "dW disagrees with the numeric gradient throughout (no simple pattern)"
    )
    # a partial check (a subset of entries): rows/transpose rules need the full block
    checked = np.array([0, 4, 8])
    assert diagnose(W, np.array([1.0, 9.0, 3.0]), np.array([1.0, 2.0, 3.0]),
                    np.array([False, True, False]), checked) == (
        "1 of 3 entries disagree: W[1, 1]"
    )
