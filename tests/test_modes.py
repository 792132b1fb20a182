"""Randomised modes: stratified subsets, random directions per block, and localisation."""

import math

import numpy as np
import pytest
from problems import network_problem

import fastgc
from fastgc._layout import Layout
from fastgc._plan import MIN_PER_BLOCK, miss_probability, subset_sizes


def _net_problem(dims=(6, 9, 5, 3), act="tanh", loss="ce", m=12, seed=0):
    net = fastgc.MLP(list(dims), act, loss)
    kind = "onehot" if loss == "ce" else "binary"
    params, X, Y = network_problem(dims, m, kind, seed, seed + 100)
    return net, params, X, Y, net.gradients(params, X, Y)


# ---- subset mode ------------------------------------------------------------------------------
@pytest.mark.parametrize("subset", [30, 0.25, 1, 1.0])
def test_subset_checks_a_stratified_sample_and_counts_evaluations(subset):
    net, params, X, Y, grads = _net_problem()
    result = fastgc.check(net, grads, params, X, Y, subset=subset, seed=3)
    layout, _ = Layout.of(params)
    sizes = subset_sizes(layout, subset)
    checked = result.checked
    assert np.all(np.diff(checked) > 0)  # sorted, no repeats
    per_block = np.bincount(layout.block_index(checked), minlength=len(layout.blocks))
    assert list(per_block) == sizes
    for b, k in zip(layout.blocks, per_block, strict=True):
        assert k == b.size or k >= MIN_PER_BLOCK  # a small block is checked whole
        assert result.blocks[b.name].count == k
    assert result.nfev == 2 * checked.size + 1  # no silent fallback to a full check
    assert result.passed
    assert any("chance that a bug touching 1%" in n for n in result.notes)


def test_subset_values_are_the_full_checks_values_on_the_checked_coordinates():
    net, params, X, Y, grads = _net_problem()
    full = fastgc.check(net, grads, params, X, Y)
    part = fastgc.check(net, grads, params, X, Y, subset=0.3, seed=1)
    layout, _ = Layout.of(params)
    flat_full = np.concatenate([full.numeric[k].ravel() for k in params])
    flat_part = np.concatenate([part.numeric[k].ravel() for k in params])
    mask = np.zeros(layout.size, bool)
    mask[part.checked] = True
    np.testing.assert_array_equal(flat_part[mask], flat_full[mask])
    assert np.isnan(flat_part[~mask]).all()


def test_subset_is_reproducible_and_seed_dependent():
    net, params, X, Y, grads = _net_problem()
    a = fastgc.check(net, grads, params, X, Y, subset=40, seed=7)
    b = fastgc.check(net, grads, params, X, Y, subset=40, seed=7, engine="loop")
    c = fastgc.check(net, grads, params, X, Y, subset=40, seed=8)
    np.testing.assert_array_equal(a.checked, b.checked)
    assert not np.array_equal(a.checked, c.checked)
    assert a.passed == b.passed


def test_subset_finds_a_wrong_block():
    net, params, X, Y, grads = _net_problem()
    grads["dW2"] = grads["dW2"] * 1.5
    result = fastgc.check(net, grads, params, X, Y, subset=20)
    assert not result.passed
    assert not result.blocks["W2"].passed
    assert "1.5 x" in result.blocks["W2"].diagnosis


def test_miss_probability_is_the_hypergeometric_figure():
    # C(n - w, k) / C(n, k), computed here with exact integers
    for n, k, q in [(100, 10, 0.01), (1000, 40, 0.05), (50, 49, 0.02), (10, 10, 0.1)]:
        w = max(1, math.ceil(q * n))
        expected = math.comb(n - w, k) / math.comb(n, k)
        assert miss_probability(n, k, q) == pytest.approx(expected, rel=1e-12, abs=1e-300)


# ---- directions mode ----------------------------------------------------------------------------
def test_directions_pass_correct_gradients_with_two_evaluations_per_direction():
    net, params, X, Y, grads = _net_problem()
    result = fastgc.check(net, grads, params, X, Y, directions=3)
    assert result.passed, result.report()
    assert result.nfev == 4 * 3 * len(params) + 1  # +/- at h and h/2
    assert all(b.count == 3 for b in result.blocks.values())
    assert any("measure zero" in n for n in result.notes)


def _wrong(grads, kind):
    g = {k: v.copy() for k, v in grads.items()}
    W = g["dW2"]
    if kind == "scaled":
        g["dW2"] = 2 * W
    elif kind == "sign":
        g["dW2"] = -W
    elif kind == "entry":
        i = np.unravel_index(np.argmax(np.abs(W)), W.shape)  # the block's largest entry
        W[i] *= 1 + 1e-3
    elif kind == "row":
        W[2] = 0.0
    return g


@pytest.mark.parametrize("engine", ["network", "loop"])
@pytest.mark.parametrize("kind", ["scaled", "sign", "entry", "row"])
def test_directions_detect_and_localise(kind, engine):
    net, params, X, Y, grads = _net_problem()
    result = fastgc.check(net, _wrong(grads, kind), params, X, Y, directions=2, engine=engine)
    failing = [name for name, b in result.blocks.items() if not b.passed]
    assert failing == ["W2"], result.report()
    diagnosis = result.blocks["W2"].diagnosis
    W = grads["dW2"]
    if kind == "scaled":
        assert "dW2 is 2 x" in diagnosis
    elif kind == "sign":
        assert "wrong sign" in diagnosis
    elif kind == "entry":
        i = np.unravel_index(np.argmax(np.abs(W)), W.shape)
        assert diagnosis.startswith(f"localised to W2[{i[0]}, {i[1]}] (")
        assert result.worst(1)[0].name == f"W2[{i[0]}, {i[1]}]"
    elif kind == "row":
        assert diagnosis.startswith("localised to W2[2, :] (")
    assert result.blocks["W2"].localisation_nfev <= fastgc._localise.DEFAULT_BUDGET


def test_same_seed_same_directions_on_every_engine():
    net, params, X, Y, grads = _net_problem()
    bad = _wrong(grads, "entry")
    a = fastgc.check(net, bad, params, X, Y, directions=2, seed=11, engine="network")
    b = fastgc.check(net, bad, params, X, Y, directions=2, seed=11, engine="loop")
    assert a.nfev == b.nfev
    assert [x.diagnosis for x in a.blocks.values()] == [x.diagnosis for x in b.blocks.values()]
    np.testing.assert_array_equal(a.checked, b.checked)


def test_budget_bounds_localisation_and_zero_disables_it():
    net, params, X, Y, grads = _net_problem()
    bad = _wrong(grads, "entry")
    none = fastgc.check(net, bad, params, X, Y, directions=2, budget=0)
    assert not none.passed and "localisation disabled" in none.blocks["W2"].diagnosis
    assert none.nfev == 4 * 2 * len(params) + 1
    small = fastgc.check(net, bad, params, X, Y, directions=2, budget=8)
    assert small.blocks["W2"].localisation_nfev <= 8
    assert "budget exhausted" in small.blocks["W2"].diagnosis


@pytest.mark.parametrize("options, error, match", [
    (dict(subset=0), ValueError, "subset must be at least 1"),
    (dict(subset=-3), ValueError, "subset must be at least 1"),
    (dict(subset=1.5), ValueError, r"subset as a fraction must lie in \(0, 1\]"),
    (dict(subset=0.0), ValueError, r"subset as a fraction must lie in \(0, 1\]"),
    (dict(subset="10"), TypeError, "subset must be an int"),
    (dict(subset=True), TypeError, "subset must be an int"),
    (dict(directions=0), ValueError, "directions must be at least 1"),
    (dict(directions=2.0), TypeError, "directions must be an int"),
    (dict(directions=2, subset=5), ValueError, "subset and directions are two different modes"),
    (dict(directions=2, budget=-1), ValueError, "budget must be a non-negative int"),
    (dict(seed="x"), TypeError, "seed must be"),
    (dict(directions=2, method="complex"), ValueError, "leave method='central'"),
])
def test_mode_options_are_validated(options, error, match):
    net, params, X, Y, grads = _net_problem()
    with pytest.raises(error, match=match):
        fastgc.check(net, grads, params, X, Y, **options)
