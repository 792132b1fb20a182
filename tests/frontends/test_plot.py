"""``result.plot(kind=...)``: every kind drawn with the Agg backend, checked through its artists
(bars and their heights, the threshold line's y, the image's values, the reference slopes), and
the errors for a kind that is unknown or does not apply.

References do not come from fastgc: the step curve of ``b^3`` is the closed form ``h^2``
(``((x + h)^3 - (x - h)^3) / 2h = 3x^2 + h^2``), the heat map's entries are recomputed from
the gradient the test wrote, the Taylor slopes are fitted here on the drawn line.
"""

import display_cases as cases
import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import fastgc  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _bars(ax):
    return [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]


def test_difference_draws_a_bar_per_block_against_the_threshold_line():
    result, _ = cases.failing_check()
    fig, given = plt.subplots()
    ax = result.plot(ax=given)  # "difference" is the default kind
    assert ax is given
    bars = _bars(ax)
    assert len(bars) == 3
    heights = [b.get_height() for b in bars]
    assert heights == pytest.approx([b.difference for b in result.blocks.values()])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["W", cases.SCRIPT, "c"]
    (line,) = [x for x in ax.get_lines() if x.get_linestyle() == "--"]
    assert set(line.get_ydata()) == {1e-6}  # the default threshold of central differences
    assert result.threshold == 1e-6
    colours = [matplotlib.colors.to_hex(b.get_facecolor()) for b in bars]
    assert colours[1] == colours[2] != colours[0]  # the two failing blocks stand out
    assert ax.get_yscale() == "log"
    assert ax.get_ylabel() == "relative difference"
    assert "2 of 3 failing" in ax.get_title()


def test_difference_of_a_model_ticks_each_bar_at_its_own_threshold():
    result = cases.failing_model()
    # thresholds differ between checks (a float32 layer's is raised); results are data, so
    # one check's is set here
    result["fc1"].params.threshold = 1e-5
    ax = result.plot("difference")
    bars = _bars(ax)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    # fc1: w, b, input x; relu: input x; the bad layer: w, b, input x
    assert len(bars) == len(labels) == 7
    assert f"{cases.SCRIPT} b" in labels
    bad = labels.index(f"{cases.SCRIPT} b")
    assert bars[bad].get_height() == pytest.approx(
        result[cases.SCRIPT].params.blocks["b"].difference)
    assert len(ax.collections) == 1  # the thresholds, as a tick per bar
    ys = [seg[0][1] for seg in ax.collections[0].get_segments()]
    assert ys == [1e-5, 1e-5, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6]


def test_difference_of_a_hessian_draws_its_block_pairs():
    result = cases.failing_hessian()
    ax = result.plot()
    assert [t.get_text() for t in ax.get_xticklabels()] == [p.name for p in
                                                              result.pairs.values()]
    assert [b.get_height() for b in _bars(ax)] == pytest.approx(
        [p.difference for p in result.pairs.values()])


def test_step_curve_is_the_closed_form_and_its_evaluations_are_counted():
    cost, grad, params = cases.quadratic()
    result = fastgc.check(cost, grad(params), params)
    calls = []

    def counted(p):
        calls.append(1)
        return cost(p)

    steps = np.logspace(-1, -2, 5)
    entry = f"{cases.SCRIPT}[2]"
    ax = result.plot("step", cost=counted, params=params, entries=[entry, "c[0]"],
                     steps=steps)
    assert len(calls) == 2 * 2 * 5
    assert "20 extra cost evaluations" in ax.get_title()
    line = next(x for x in ax.get_lines() if x.get_label() == f"{entry}: |D_h - numeric|")
    assert line.get_xdata() == pytest.approx(steps)
    # (x + h)^3 - (x - h)^3 = 6 x^2 h + 2 h^3: the central difference is 3 x^2 + h^2, and
    # fastgc's estimate is 3 x^2 to ~1e-9 (its noise), 1e-5 of h^2 at h = 1e-2
    assert line.get_ydata() == pytest.approx(steps ** 2, rel=1e-5)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert params[cases.SCRIPT][2] == cases.quadratic()[2][cases.SCRIPT][2]  # not modified


def test_step_curve_of_a_wrong_entry_sits_far_below_its_discrepancy():
    result, (cost, grad, params) = cases.failing_check()
    ax = result.plot("step", cost=cost, params=params, k=1)
    curve, gap = ax.get_lines()
    assert curve.get_label().startswith(f"{cases.SCRIPT}[2]")  # the worst entry
    x = params[cases.SCRIPT][2]
    # the gradient was doubled: analytic 6 x^2 against the true 3 x^2
    assert gap.get_ydata()[0] == pytest.approx(3 * x ** 2, rel=1e-8)
    steps, errors = curve.get_xdata(), curve.get_ydata()
    assert errors[steps == steps.max()] == pytest.approx(steps.max() ** 2, rel=1e-5)
    assert np.nanmin(errors) < 1e-6 * 3 * x ** 2  # the V's bottom: far below the gap
    assert "90 extra cost evaluations" in ax.get_title()  # 45 default steps, 2 each


def test_heatmap_shows_a_blocks_relative_errors():
    cost, grad, params = cases.quadratic()
    g = grad(params)
    g["W"][1, 2] += 0.5
    result = fastgc.check(cost, g, params)
    ax = result.plot("heatmap")  # the failing 2-D block: W
    (image,) = ax.images
    shown = np.asarray(image.get_array())
    assert shown.shape == (3, 4)
    assert np.unravel_index(np.argmax(shown), shown.shape) == (1, 2)
    true = grad(params)["W"][1, 2]  # the numeric derivative is this within ~1e-9
    expected = 0.5 / (abs(true + 0.5) + abs(true))
    assert shown[1, 2] == pytest.approx(expected, rel=1e-6)
    assert np.all(np.delete(shown.ravel(), 6) < 1e-8)
    assert image.norm.vmin > 0 and image.norm.vmax >= 1e-5  # log scale over the threshold
    colorbar_ax = ax.figure.axes[1]
    assert [ln.get_ydata()[0] for ln in colorbar_ax.get_lines()] == [result.threshold]
    assert "W (3, 4): FAIL" in ax.get_title()


def test_heatmap_of_a_subset_leaves_unchecked_entries_blank():
    cost, grad, params = cases.quadratic()
    result = fastgc.check(cost, grad(params), params, subset=5, seed=1)
    ax = result.plot("heatmap", block="W")
    shown = np.ma.getdata(ax.images[0].get_array())
    checked_in_w = int(np.sum(result.checked < 12))
    assert np.isfinite(shown).sum() == checked_in_w


def test_taylor_draws_remainders_with_reference_slopes():
    result = cases.taylor(wrong=True)
    assert not result.passed
    ax = result.plot()
    remainder = ax.get_lines()[0]
    assert remainder.get_ydata() == pytest.approx(result.remainders)
    slopes = {}
    for line in ax.get_lines()[1:3]:
        x, y = np.log(line.get_xdata()), np.log(line.get_ydata())
        slopes[line.get_label()] = np.polyfit(x, y, 1)[0]
    assert slopes == {"slope 2": pytest.approx(2), "slope 1": pytest.approx(1)}
    floor = ax.get_lines()[3]
    assert set(floor.get_ydata()) == {result.noise_floor}
    # a wrong gradient: the remainder falls at rate 1, along the dotted reference
    k = len(result.steps) - 1
    fitted = np.polyfit(np.log(result.steps[:k]), np.log(result.remainders[:k]), 1)[0]
    assert fitted == pytest.approx(1, abs=0.1)
    assert "FAILED" in ax.get_title()


def test_a_scipy_check_draws_a_bar_per_point():
    result = cases.scipy_check()
    ax = result.plot()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["jac x0", "jac point 1", "jac point 2"]


def test_unknown_kinds_and_kinds_that_do_not_apply_are_clear_errors():
    result, _ = cases.failing_check()
    with pytest.raises(ValueError, match=r"unknown kind 'bogus'; a CheckResult draws "
                                         r"'difference', 'step', 'heatmap'"):
        result.plot("bogus")
    with pytest.raises(ValueError, match=r"kind 'taylor' does not apply to a CheckResult"):
        result.plot("taylor")
    with pytest.raises(ValueError, match=r"kind 'heatmap' does not apply to a TaylorResult"):
        cases.taylor().plot("heatmap")
    with pytest.raises(TypeError, match="kind must be a str"):
        result.plot(3)
    with pytest.raises(ValueError, match="pass cost= and params="):
        result.plot("step")
    with pytest.raises(ValueError, match=r"2-D block; 'c' has shape \(2,\)"):
        result.plot("heatmap", block="c")
    with pytest.raises(ValueError, match="block 'nope' is not a block"):
        result.plot("heatmap", block="nope")
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'block' for kind 'difference'"):
        result.plot("difference", block="W")
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        result.plot(ax="not axes")
    cost, grad, params = cases.quadratic()
    directions = fastgc.check(cost, grad(params), params, directions=2)
    with pytest.raises(ValueError, match="needs a check of coordinates"):
        directions.plot("heatmap")
