"""Rich display of results in notebooks: a static HTML table, and the report as plain text.

Every result type mixes in :class:`Display`, which gives it IPython's ``_repr_html_`` (this
module's :func:`to_html`), ``_repr_mimebundle_`` (the same HTML, and as ``text/plain`` the
report a terminal shows rather than the dataclass's field dump, which ``repr`` keeps) and
``plot`` (``fastgc._core.plot``).

The HTML follows xarray's ``formatting_html``: no JavaScript, every user string escaped with
:func:`html.escape`, colours from CSS variables that fall back on JupyterLab's ``--jp-*`` theme
variables (so a dark theme recolours it), collapsible ``<details>`` sections, and the report as
a ``<pre>`` fallback: the table is hidden by an inline style that only the stylesheet overrides,
so where a notebook viewer strips ``<style>`` (an untrusted notebook, GitHub) the plain report
shows instead of an unstyled table. Failing blocks come first, each in an open section with its
diagnosis and worst entries; passing ones follow, closed.

Dispatch is on the class name, so that this module (in ``fastgc._core``) needs no import of the
front ends that define ``LayerResult``, ``ModelResult``, ``TaylorResult``, ``ScipyCheckResult``.
"""

from __future__ import annotations

import math
from html import escape
from typing import NamedTuple

import numpy as np

__all__ = ["Display", "to_html", "to_text"]

# Worst entries shown per failing block.
WORST_PER_BLOCK = 5
# Sections for passing blocks, at most (failing ones always have theirs).
_PASSING_SECTIONS = 50
# Rungs of a Taylor ladder shown before the rest is folded away.
_LADDER_ROWS = 40


class _EntryRow(NamedTuple):
    """One entry of a block's worst list (the fields of ``fastgc._core.result.Entry``)."""

    name: str
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    noise: float


class Display:
    """Mixin: notebook display and plots for a result dataclass (adds no fields)."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        return to_html(self)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        # text/plain here, not _repr_pretty_: IPython prefers the dataclass's own __repr__
        # (a field dump) to a _repr_pretty_ inherited from a base class.
        return {"text/plain": to_text(self), "text/html": to_html(self)}

    def plot(self, kind: str | None = None, ax=None, **options):
        """Draw the result with matplotlib and return the Axes (``pip install fastgc[plot]``).

        Parameters
        ----------
        kind : str, optional
            What to draw. :class:`fastgc.CheckResult`: ``"difference"`` (the default: each
            block's relative difference against the threshold), ``"step"`` (central-difference
            error against step for the worst entries, from extra cost evaluations, counted in
            the title) or ``"heatmap"`` (a 2-D block's per-entry relative errors).
            :class:`fastgc.TaylorResult`: ``"taylor"`` (the remainders against step, with
            reference slopes). The other results: ``"difference"`` (per block pair, layer
            block or point).
        ax : matplotlib.axes.Axes, optional
            Where to draw; a new figure's Axes by default.
        **options
            ``kind="step"``: ``cost``, ``params`` and ``args`` as given to the check
            (required: a result holds no cost), ``entries`` (names such as ``"W1[0, 2]"``;
            default the ``k=3`` worst), ``steps`` (default 45 steps from 1e-1 to 1e-12).
            ``kind="heatmap"``: ``block`` (default the first failing 2-D block, else the
            first 2-D block).

        Returns
        -------
        matplotlib.axes.Axes
            The Axes drawn on (``ax`` when given).

        Raises
        ------
        ValueError
            An unknown kind, one that does not apply to this result (``"taylor"`` for a
            CheckResult, a heat map of a directions check or of a 1-D block), or ``"step"``
            without ``cost`` and ``params``.
        ImportError
            matplotlib is not installed.
        """
        from fastgc._core.plot import plot

        return plot(self, kind, ax, **options)


# ---- entry points -----------------------------------------------------------------------------
def to_text(result) -> str:
    """The plain-text report of ``result`` (no ANSI colour)."""
    name = type(result).__name__
    if name == "LayerResult":
        return _layer_text(result)
    report = getattr(result, "report", None)
    if report is None:
        return repr(result)
    try:
        return report(color=False)
    except TypeError:  # ModelResult.report takes no colour: it never paints
        return report()


def to_html(result) -> str:
    """The HTML repr of any fastgc result: a stylesheet, the hidden-by-default table and the
    plain report as its fallback."""
    render = _RENDERERS.get(kind_of(result))
    if render is None:
        raise TypeError(f"no HTML repr for {type(result).__name__}")
    body = render(result)
    return (f"<div class='fgc-root'>{_STYLE}"
            f"<pre class='fgc-text-fallback'>{escape(to_text(result))}</pre>"
            f"<div class='fgc-wrap' style='display:none'>{body}</div></div>")


def kind_of(result) -> str | None:
    """The result type ``result`` is drawn as: its class's name, or the nearest base class's
    that this module knows (``FrameworkResult`` is drawn as a ``CheckResult``)."""
    for cls in type(result).__mro__:
        if cls.__name__ in _RENDERERS:
            return cls.__name__
    return None


# ---- pieces -----------------------------------------------------------------------------------
def _e(value) -> str:
    return escape(str(value), quote=True)


def _num(x, fmt=".2e") -> str:
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return "nan"
    return format(x, fmt)


def _badge(passed) -> str:
    if passed is None:
        return "<span class='fgc-badge fgc-none'>-</span>"
    return ("<span class='fgc-badge fgc-ok'>ok</span>" if passed
            else "<span class='fgc-badge fgc-fail'>FAIL</span>")


def _header(title: str, passed: bool, summary: str, meta: list[str]) -> str:
    verdict = ("<span class='fgc-verdict fgc-ok'>passed</span>" if passed
               else "<span class='fgc-verdict fgc-fail'>FAILED</span>")
    lines = "".join(f"<div class='fgc-meta'>{_e(m)}</div>" for m in meta if m)
    return (f"<div class='fgc-header'><span class='fgc-title'>{_e(title)}</span> {verdict}"
            f"<span class='fgc-summary'>{_e(summary)}</span></div>{lines}")


def _table(head: list[str], rows: list[tuple[bool | None, list[str]]], cls="",
           right=()) -> str:
    """``rows``: (passed, cells already escaped); a failing row is marked for the stylesheet,
    and the columns in ``right`` (numbers) are right-aligned."""
    def cell(tag, i, content):
        return f"<{tag} class='fgc-num'>{content}</{tag}>" if i in right else (
            f"<{tag}>{content}</{tag}>")

    th = "".join(cell("th", i, _e(h)) for i, h in enumerate(head))
    body = "".join(
        f"<tr class='{'fgc-row-fail' if ok is False else ''}'>"
        + "".join(cell("td", i, c) for i, c in enumerate(cells)) + "</tr>"
        for ok, cells in rows)
    return (f"<table class='fgc-table {cls}'><thead><tr>{th}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _details(summary: str, content: str, open_: bool, failing: bool) -> str:
    return (f"<details class='fgc-details{' fgc-details-fail' if failing else ''}'"
            f"{' open' if open_ else ''}><summary>{summary}</summary>"
            f"<div class='fgc-details-body'>{content}</div></details>")


def _said(passed, diagnosis) -> str:
    """A section's summary text: the diagnosis of a failure, a dim "ok" otherwise."""
    if passed:
        return "<span class='fgc-dim'>ok</span>"
    return f"<span class='fgc-diagnosis'>{_e(diagnosis)}</span>"


def _notes(notes) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return f"<ul class='fgc-notes'>{items}</ul>"


def _failing_first(items, passed):
    """Stable: failing items first, each group in its own order."""
    items = list(items)
    return ([x for x in items if not passed(x)] + [x for x in items if passed(x)])


# ---- CheckResult ------------------------------------------------------------------------------
def worst_by_block(result, k: int) -> dict:
    """``{block name: its k worst checked entries}`` (the ranking of ``result.worst``), for
    every block with checked entries: one sort of the entry table, however many blocks."""
    t = result._entries
    if t is None or len(t.index) == 0:
        return {}
    block_of = t.layout.block_index(t.index)
    order = np.lexsort((-t.score, block_of))  # by block, then worst first; stable
    starts = np.flatnonzero(np.r_[True, np.diff(block_of[order]) != 0])
    out = {}
    for start, stop in zip(starts, [*starts[1:], len(order)], strict=True):
        rows = []
        for j in order[start:min(stop, start + k)]:
            g, a = float(t.g[j]), float(t.a[j])
            abs_error = abs(g - a)
            denom = abs(g) + abs(a)
            rows.append(_EntryRow(t.layout.coordinate_name(int(t.index[j])), g, a, abs_error,
                                  abs_error / denom if denom else 0.0, float(t.error[j])))
        out[t.layout.blocks[int(block_of[order[start]])].name] = rows
    return out


def _entries_table(entries) -> str:
    rows = [(None, [_e(x.name), _num(x.analytic, ".6g"), _num(x.numeric, ".6g"),
                    _num(x.abs_error), _num(x.rel_error), _num(x.noise)]) for x in entries]
    return _table(["entry", "analytic", "numeric", "abs error", "rel error", "noise"], rows,
                  "fgc-entries", right=(1, 2, 3, 4, 5))


def _check_meta(r) -> list[str]:
    return [f"{r.mode} check, {r.description} ({r.step}), engine {r.engine}, {r.nfev} cost "
            f"evaluations, {_seconds(r.seconds)}",
            f"tolerance: {r.threshold_rule}" if r.threshold_rule else ""]


def _check_blocks(r) -> str:
    """The block table and one section per block (failing first): shared by every result that
    holds a CheckResult."""
    blocks = _failing_first(r.blocks.values(), lambda b: b.passed)
    rows = [(b.passed, [_e(b.name), _e(_shape(b.shape)), str(b.count), _num(b.difference),
                        _badge(b.passed), _e("" if b.passed else b.diagnosis)])
            for b in blocks]
    table = _table(["block", "shape", "checked", "difference", "verdict", "diagnosis"], rows,
                   right=(2, 3))
    worst_of = worst_by_block(r, WORST_PER_BLOCK)
    # Passing blocks past the first few get a table row but no section: a model with
    # thousands of blocks keeps a display of a reasonable size.
    shown = [b for b in blocks if not b.passed]
    shown += [b for b in blocks if b.passed][: max(0, _PASSING_SECTIONS - len(shown))]
    sections = []
    for b in shown:
        worst = worst_of.get(b.name, [])
        facts = (f"<div class='fgc-facts'>difference {_num(b.difference)} (threshold "
                 f"{_num(r.threshold, '.1e')}), largest |analytic - numeric| "
                 f"{_num(b.max_abs_error)}, noise {_num(b.noise)}"
                 + (f", {b.kinks} kinks" if b.kinks else "")
                 + (f", {b.localisation_nfev} evaluations to localise"
                    if b.localisation_nfev else "") + "</div>")
        content = facts + (_entries_table(worst) if worst else "")
        summary = f"{_badge(b.passed)} <b>{_e(b.name)}</b> " + _said(b.passed, b.diagnosis)
        sections.append(_details(summary, content, open_=not b.passed, failing=not b.passed))
    left = len(blocks) - len(shown)
    more = (f"<div class='fgc-dim'>{left} more passing blocks (in the table above)</div>"
            if left else "")
    return table + "".join(sections) + more


def _check_html(r) -> str:
    failing = sum(not b.passed for b in r.blocks.values())
    summary = (f"{failing} of {len(r.blocks)} blocks fail; " if failing else "") + (
        f"difference {_num(r.difference, '.3e')} (threshold {_num(r.threshold, '.1e')})")
    extra = []
    if r.ignored_keys:
        extra.append("ignored gradient keys (backprop intermediates): "
                     + ", ".join(map(str, r.ignored_keys)))
    meta = _check_meta(r)
    reference = getattr(r, "reference", None)  # a FrameworkResult's float64 re-check
    if getattr(r, "dtype", ""):
        meta.append(f"dtype {r.dtype}, {'batched' if r.batched else 'one call per point'}"
                    + (f", nondeterminism {_num(r.nondeterminism)}" if r.nondeterminism
                       else ""))
    html = (_header("fastgc check", r.passed, summary, meta) + _check_blocks(r)
            + _notes(list(r.notes) + extra))
    if reference is not None:
        html += _details(f"{_badge(reference.passed)} <b>float64 reference check</b>",
                         _check_blocks(reference), open_=not reference.passed,
                         failing=not reference.passed)
    return html


# ---- layers and models ------------------------------------------------------------------------
def _cell(check) -> str:
    if check is None:
        return "-"
    return f"{_num(check.difference, '.1e')} {_badge(check.passed)}"


def _chain_cell(layer) -> str:
    if not layer.chain:
        return "-"
    return f"{_num(max(layer.chain.values()), '.1e')} {_badge(layer.chain_passed)}"


def _layer_sections(layer) -> str:
    parts = []
    for label, check in (("parameters", layer.params), ("input gradient", layer.input)):
        if check is not None:
            parts.append(f"<div class='fgc-sub'>{_e(label)}: {_e(check.mode)} check, "
                         f"{check.nfev} evaluations</div>" + _check_blocks(check))
    if layer.chain:
        rows = [(None, [_e(k), _num(v)]) for k, v in layer.chain.items()]
        parts.append("<div class='fgc-sub'>chain (model gradient against the chain of "
                     "backward passes)</div>" + _table(["block", "difference"], rows,
                                                       right=(1,)))
    return "".join(parts)


def _layer_failed(layer) -> bool:
    return (not layer.passed) or layer.chain_passed is False


def _layer_html(layer) -> str:
    failures = layer.failures()
    summary = "; ".join(failures) if failures else "its backward passes"
    if layer.chain_passed is False:
        summary += "; the model's gradients differ from the chain here"
    return (_header(f"fastgc layer {layer.name}", not _layer_failed(layer), summary, [])
            + _layer_sections(layer))


def _layer_text(layer) -> str:
    ok = "FAILED" if _layer_failed(layer) else "passed"
    lines = [f"fastgc layer {layer.name} {ok}"]
    for label, check in (("params", layer.params), ("input", layer.input)):
        if check is not None:
            lines.extend(f"  {label}: " + line if i == 0 else "  " + line
                         for i, line in enumerate(check.report(color=False).splitlines()))
    for k, v in layer.chain.items():
        lines.append(f"  chain {k}: {v:.2e}")
    return "\n".join(lines)


def _model_html(m) -> str:
    meta = [f"{len(m.layers)} layers, {m.nfev} evaluations, {_seconds(m.seconds)}; chain "
            f"tolerance {_num(m.chain_rtol, '.1e')}"]
    rows_src = []
    if m.loss is not None:
        rows_src.append(("loss", m.loss, None, None, m.loss.passed))
    rows_src += [(x.name, x.params, x.input, x, not _layer_failed(x))
                 for x in reversed(m.layers)]
    rows_src = _failing_first(rows_src, lambda row: row[4])
    rows = [(ok, [_e(name), _cell(params), _cell(inp),
                  "-" if layer is None else _chain_cell(layer)])
            for name, params, inp, layer, ok in rows_src]
    table = _table(["layer", "params", "input", "chain"], rows)
    sections = []
    for name, params, _inp, layer, ok in rows_src:
        if layer is None:
            content = _check_blocks(params)
            what = "" if ok else "; ".join(f"{b.name}: {b.diagnosis}"
                                           for b in params.blocks.values() if not b.passed)
        else:
            content = _layer_sections(layer)
            what = "; ".join(layer.failures())
            if layer.chain_passed is False:
                what = (what + "; " if what else "") + "the chain breaks here"
        summary = f"{_badge(ok)} <b>{_e(name)}</b> " + _said(ok, what)
        sections.append(_details(summary, content, open_=not ok, failing=not ok))
    guilty = (f"guilty: {', '.join(map(str, m.guilty))}" if m.guilty else "")
    return (_header("fastgc check_model", m.passed, m.verdict, meta + [guilty]) + table
            + "".join(sections))


# ---- second order -----------------------------------------------------------------------------
def _hessian_html(r) -> str:
    title = ("fastgc Hessian-vector product check" if r.kind == "hvp"
             else "fastgc Hessian check")
    meta = []
    if r.pairs:
        calls = "hvp calls" if r.kind == "hvp" else "calls of hess and products with it"
        meta.append(f"{r.mode} check, {r.description} ({r.step}), {r.ngev} gradient "
                    f"evaluations, {r.nhvp} {calls}, {_seconds(r.seconds)}; threshold "
                    f"{_num(r.threshold, '.1e')}")
    parts = [_header(title, r.passed, r.message, meta)]
    if r.gradient is not None:
        g = r.gradient
        summary = (f"{_badge(g.passed)} <b>gradient</b> <span class='fgc-dim'>checked first, "
                   f"difference {_num(g.difference, '.3e')}</span>")
        parts.append(_details(summary, _check_blocks(g), open_=not g.passed,
                              failing=not g.passed))
    pairs = _failing_first(r.pairs.values(), lambda p: p.passed)
    if pairs:
        rows = [(p.passed, [_e(p.name), str(p.count), _num(p.difference), _badge(p.passed),
                            _e("" if p.passed else p.diagnosis)]) for p in pairs]
        parts.append(_table(["block", "checked", "difference", "verdict", "diagnosis"], rows,
                            right=(1, 2)))
        for p in pairs:
            if p.passed:
                continue
            content = (f"<div class='fgc-facts'>difference {_num(p.difference)}, largest "
                       f"|analytic - numeric| {_num(p.max_abs_error)}, noise "
                       f"{_num(p.noise)}</div>")
            summary = f"{_badge(False)} <b>{_e(p.name)}</b> " + _said(False, p.diagnosis)
            parts.append(_details(summary, content, open_=True, failing=True))
    props = [x for x in (r.symmetry, r.linearity) if x is not None]
    if props:
        rows = [(x.passed, [_e(x.name), _num(x.value), _num(x.tolerance, ".1e"),
                            _badge(x.passed), _e(x.detail)])
                for x in _failing_first(props, lambda x: x.passed)]
        parts.append(_table(["property", "value", "tolerance", "verdict", "detail"], rows))
    parts.append(_notes(r.notes))
    return "".join(parts)


def _taylor_html(r) -> str:
    meta = [f"dJ.h = {r.derivative:.10g}"
            + (f", h.Hh = {r.curvature:.10g}" if r.order == 2 else "")
            + f"; cost noise {_num(r.noise)}, remainder floor {_num(r.noise_floor)}; "
            f"fitted rate {_num(r.rate, '.2f')} (last steps {_num(r.tail_rate, '.2f')}); "
            f"{r.nfev} cost evaluations, {_seconds(r.seconds)}"]
    parts = [_header(f"fastgc Taylor test (order {r.order}, expected rate "
                     f"{r.expected_rate:g})", r.passed, r.message, meta)]
    blocks = _failing_first(r.blocks.items(), lambda kv: kv[1].passed)
    if blocks:
        rows = [(b.passed, [_e(name), _num(b.rate, ".2f"), _badge(b.passed), _e(b.message)])
                for name, b in blocks]
        parts.append(_table(["block", "rate", "verdict", "message"], rows))
    start, stop = r.window
    rows = []
    for k, (eps, rem) in enumerate(zip(r.steps, r.remainders, strict=True)):
        rate = _num(r.rates[k - 1], ".2f") if k else ""
        fitted = "fitted" if start <= k < stop else ""
        rows.append((None, [_num(eps, ".3e"), _num(rem, ".3e"), rate, fitted]))
    ladder = _table(["step", "remainder", "rate", "window"], rows[:_LADDER_ROWS], "fgc-ladder",
                    right=(0, 1, 2))
    if len(rows) > _LADDER_ROWS:
        ladder += f"<div class='fgc-dim'>{len(rows) - _LADDER_ROWS} more steps</div>"
    parts.append(_details(f"<b>step ladder</b> <span class='fgc-dim'>{len(rows)} steps, "
                          f"window {start}:{stop}</span>", ladder, open_=not r.passed,
                          failing=False))
    return "".join(parts)


def _scipy_html(r) -> str:
    parts = [_header("fastgc scipy.optimize check", r.passed, r.message,
                     [f"{len(r.points)} points, {_seconds(r.seconds)}"])]
    for name, results in r.sections.items():
        rows, sections = [], []
        for k, res in enumerate(results):
            where = "x0" if k == 0 else f"point {k}"
            if res is None:
                rows.append((None, [_e(where), "-", _badge(None), "not checked (jac fails "
                                    "there)"]))
                continue
            text = "" if res.passed else (
                res.message if hasattr(res, "message")
                else "; ".join(b.diagnosis for b in res.blocks.values() if not b.passed))
            rows.append((res.passed, [_e(where), _num(res.difference), _badge(res.passed),
                                      _e(text)]))
            if not res.passed:
                inner = (_check_blocks(res) if kind_of(res) == "CheckResult"
                         else _hessian_html(res))
                sections.append(_details(f"{_badge(False)} <b>{_e(name)} at {_e(where)}</b>",
                                         inner, open_=True, failing=True))
        ok = all(x is None or x.passed for x in results)
        content = _table(["point", "difference", "verdict", "what"], rows) + "".join(sections)
        parts.append(_details(f"{_badge(ok)} <b>{_e(name)}</b>", content, open_=True,
                              failing=not ok))
    parts.append(_notes(r.notes))
    return "".join(parts)


def _shape(shape) -> str:
    return " x ".join(str(s) for s in shape) if shape else "scalar"


def _seconds(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


_RENDERERS = {
    "CheckResult": _check_html,
    "LayerResult": _layer_html,
    "ModelResult": _model_html,
    "HessianResult": _hessian_html,
    "TaylorResult": _taylor_html,
    "ScipyCheckResult": _scipy_html,
}

# Theme colours: fastgc's variables fall back on JupyterLab's (--jp-*), then on light defaults;
# VS Code's and pydata-sphinx-theme's dark markers switch the defaults.
_STYLE = """<style>
.fgc-root {
  --fgc-fg: var(--jp-content-font-color0, rgba(0, 0, 0, 1));
  --fgc-dim: var(--jp-content-font-color2, rgba(0, 0, 0, 0.6));
  --fgc-bg: var(--jp-layout-color0, #ffffff);
  --fgc-bg-alt: var(--jp-layout-color2, #f2f2f2);
  --fgc-border: var(--jp-border-color2, #d6d6d6);
  --fgc-ok: var(--jp-success-color1, #2e7d32);
  --fgc-fail: var(--jp-error-color1, #c62828);
  --fgc-fail-bg: var(--jp-error-color3, rgba(198, 40, 40, 0.08));
}
html[theme="dark"] .fgc-root, html[data-theme="dark"] .fgc-root,
body[data-theme="dark"] .fgc-root, body.vscode-dark .fgc-root {
  --fgc-fg: var(--jp-content-font-color0, rgba(255, 255, 255, 1));
  --fgc-dim: var(--jp-content-font-color2, rgba(255, 255, 255, 0.6));
  --fgc-bg: var(--jp-layout-color0, #111111);
  --fgc-bg-alt: var(--jp-layout-color2, #313131);
  --fgc-border: var(--jp-border-color2, #4a4a4a);
  --fgc-ok: var(--jp-success-color1, #66bb6a);
  --fgc-fail: var(--jp-error-color1, #ef5350);
  --fgc-fail-bg: var(--jp-error-color3, rgba(239, 83, 80, 0.15));
}
.fgc-text-fallback { display: none; }
.fgc-wrap { display: block !important; color: var(--fgc-fg); font-size: 13px;
  font-family: var(--jp-ui-font-family, -apple-system, "Segoe UI", Helvetica, Arial,
  sans-serif); max-width: 1000px; line-height: 1.4; }
.fgc-header { margin: 2px 0 4px 0; }
.fgc-title { font-weight: 600; }
.fgc-verdict { font-weight: 700; margin: 0 6px; }
.fgc-summary, .fgc-meta, .fgc-dim, .fgc-facts { color: var(--fgc-dim); }
.fgc-meta { font-size: 12px; }
.fgc-summary { color: var(--fgc-fg); }
.fgc-ok { color: var(--fgc-ok); }
.fgc-fail { color: var(--fgc-fail); }
.fgc-badge { font-weight: 700; font-size: 11px; padding: 0 4px; border-radius: 3px;
  border: 1px solid currentColor; }
.fgc-badge.fgc-none { color: var(--fgc-dim); }
.fgc-wrap table.fgc-table { border-collapse: collapse; margin: 6px 0; color: var(--fgc-fg);
  background: transparent; font-size: 12px; }
.fgc-wrap table.fgc-table th, .fgc-wrap table.fgc-table td { padding: 2px 10px;
  text-align: left; border-bottom: 1px solid var(--fgc-border); vertical-align: top;
  background: transparent; color: var(--fgc-fg); }
.fgc-wrap table.fgc-table th { font-weight: 600; border-bottom: 2px solid var(--fgc-border); }
.fgc-wrap table.fgc-table tr.fgc-row-fail td { background: var(--fgc-fail-bg); }
.fgc-wrap table.fgc-table td:nth-child(n+2) { font-variant-numeric: tabular-nums; }
.fgc-details { margin: 2px 0; border-left: 3px solid var(--fgc-border); padding-left: 8px; }
.fgc-details-fail { border-left-color: var(--fgc-fail); }
.fgc-details summary { cursor: pointer; }
.fgc-details-body { padding: 2px 0 6px 0; }
.fgc-diagnosis { color: var(--fgc-fg); }
.fgc-wrap table.fgc-table .fgc-num { text-align: right; }
.fgc-sub { margin-top: 6px; font-weight: 600; }
.fgc-notes { margin: 4px 0; padding-left: 18px; color: var(--fgc-dim); }
</style>"""
