"""Notebook display: every result's ``_repr_html_`` is well-formed static HTML (parsed here with
the standard library's ``html.parser``, not by string matching), escapes user strings, puts
failing blocks first with their diagnosis and worst entries, and falls back on the report.

The real-kernel test (a notebook executed by nbclient) is tests/frontends/test_notebook.py.
"""

import display_cases as cases
import numpy as np
import pytest
from display_cases import Page

import fastgc


def _html_of(result):
    html = result._repr_html_()
    assert isinstance(html, str)
    return html, Page(html)


@pytest.fixture(scope="module")
def failing():
    return cases.failing_check()[0]


def test_check_html_is_static_and_escapes_a_block_named_script(failing):
    html, page = _html_of(failing)
    assert "script" not in page.tags  # the block named "<script>..." is text, not a tag
    assert "<script" not in html
    assert not any(name.startswith("on") for name, _ in page.attrs)
    assert "javascript:" not in html.lower()
    block_rows = [r for r in page.rows if r and r[0] == cases.SCRIPT]
    assert len(block_rows) == 1  # the parser reads the escaped name back as the user's string
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_check_html_lists_failing_blocks_first_with_diagnosis_and_worst_entries(failing):
    _, page = _html_of(failing)
    header = page.rows[0]
    assert header[:5] == ["block", "shape", "checked", "difference", "verdict"]
    names = [r[0] for r in page.rows[1:4]]
    # parameter order is W, <script>, c; W passes: failing ones first, in their order
    assert names == [cases.SCRIPT, "c", "W"]
    verdicts = [r[4] for r in page.rows[1:4]]
    assert verdicts == ["FAIL", "FAIL", "ok"]
    sections = page.details
    assert [opened for opened, _, _ in sections] == [True, True, False]
    b = failing.blocks
    assert b[cases.SCRIPT].diagnosis in sections[0][1]
    assert "is 2 x the numeric gradient" in sections[0][1]
    assert b["c"].diagnosis in sections[1][1]
    # the worst entries of a block are in its section, c[1] first (the wrong one)
    entry_rows = [r for r in page.rows if r and r[0].startswith("c[")]
    assert [r[0] for r in entry_rows] == ["c[1]", "c[0]"]
    worst_c = [e for e in failing.worst(20) if e.name == "c[1]"][0]
    assert float(entry_rows[0][1]) == pytest.approx(worst_c.analytic, rel=1e-5)
    assert float(entry_rows[0][2]) == pytest.approx(worst_c.numeric, rel=1e-5)


def test_the_text_fallback_is_the_report(failing):
    _, page = _html_of(failing)
    assert page.fallback == failing.report(color=False)


def test_text_plain_is_the_report_not_the_dataclass_dump(failing):
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(failing)
    text = data["text/plain"]
    assert text == failing.report(color=False)
    assert data["text/html"] == failing._repr_html_()
    assert "\033[" not in text
    assert "CheckResult(" not in text


def test_a_passing_check_has_its_blocks_closed():
    result = cases.passing_check()
    _, page = _html_of(result)
    assert result.passed
    assert page.details and not any(opened for opened, _, _ in page.details)
    assert "FAIL" not in "".join(r[4] for r in page.rows[1:])


@pytest.mark.parametrize("make", [cases.failing_model, cases.failing_hessian,
                                  lambda: cases.taylor(wrong=True), cases.scipy_check],
                         ids=["model", "hessian", "taylor", "scipy"])
def test_every_result_type_renders_static_html_with_its_failure(make):
    result = make()
    assert not result.passed
    html, page = _html_of(result)
    assert "script" not in page.tags
    assert "<script" not in html
    assert page.fallback == (result.report() if type(result).__name__ == "ModelResult"
                             else result.report(color=False))
    assert "FAILED" in page.shown


def test_model_html_opens_the_guilty_layer_first_with_its_diagnosis():
    result = cases.failing_model()
    _, page = _html_of(result)
    assert result.guilty == [cases.SCRIPT]
    layer_rows = [r for r in page.rows if r and r[0] in (cases.SCRIPT, "relu", "fc1")]
    assert [r[0] for r in layer_rows][0] == cases.SCRIPT
    opened = [s for o, s, _ in page.details if o]
    assert cases.SCRIPT in opened[0] and "db is 2 x the numeric gradient" in opened[0]


def test_hessian_html_shows_the_failing_pairs_first():
    result = cases.failing_hessian()
    _, page = _html_of(result)
    pair_rows = [r[0] for r in page.rows if r and r[0].startswith("H[")]
    assert pair_rows == ["H[u, v]", "H[v, u]", "H[u, u]", "H[v, v]"]
    assert any("H[u, v] is 0.5 x the numeric Hessian" in s for o, s, _ in page.details if o)


def test_layer_result_has_a_repr_of_its_own():
    layer = cases.failing_model()[cases.SCRIPT]
    html, page = _html_of(layer)
    assert "script" not in page.tags
    assert "db is 2 x the numeric gradient" in page.fallback
    assert "FAILED" in html


def test_a_torch_result_displays_as_a_check_with_its_framework_findings():
    torch = pytest.importorskip("torch")
    import torch_ops

    import fastgc.torch as ft

    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, 5, generator=gen, dtype=torch.float64, requires_grad=True),
          torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True),
          torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)]
    result = ft.check(torch_ops.make_layernorm("dropped term").apply, *xs)
    assert type(result).__name__ == "FrameworkResult" and not result.passed
    html, page = _html_of(result)
    assert page.fallback == result.report(color=False)
    assert "dtype float64" in page.shown
    failing = [r for r in page.rows[1:] if len(r) > 4 and r[4] == "FAIL"]
    assert failing and failing[0][0] == result.worst(1)[0].name.split("[")[0]


def test_a_check_of_many_blocks_keeps_its_display_small_and_ranks_entries_per_block():
    rng = np.random.default_rng(11)
    params = {f"w{i}": rng.standard_normal(3) for i in range(120)}
    grad = {k: 3 * v ** 2 for k, v in params.items()}
    grad["w7"] = grad["w7"] * np.array([1.0, 1.5, 1.2])  # two wrong entries, [1] the worst
    result = fastgc.check(lambda p: float(sum(np.sum(v ** 3) for v in p.values())), grad,
                          params)
    _, page = _html_of(result)
    assert len([r for r in page.rows if r and r[0].startswith("w")]) >= 120  # every row
    summaries = [s for _, s, _ in page.details]
    assert len(summaries) == 50  # the failing block and 49 passing ones
    assert summaries[0].startswith("FAIL w7")
    assert "70 more passing blocks" in page.shown
    entries = [r[0] for r in page.rows if r and r[0].startswith("w7[")]
    ranked = [e.name for e in result.worst(360) if e.name.startswith("w7[")]
    assert entries == ranked == ["w7[1]", "w7[2]", "w7[0]"]
