"""Plots of results (``result.plot(kind=..., ax=None)``), returning matplotlib Axes.

scipy's ``FitResult.plot`` convention: matplotlib is imported only when a plot is drawn (the
``plot`` extra), ``ax`` is drawn on when given, else a new figure's Axes; the Axes is returned
for the caller to style. The kinds, by result type:

- ``"difference"`` (every result but a Taylor test's): one bar per block (or block pair, or
  layer block, or point) at its relative difference, on a log scale, against the verdict's
  threshold (one dashed line, or a tick per bar where the thresholds differ).
- ``"step"`` (CheckResult): for the worst entries (or ``entries=``), the central difference
  ``D_h = (f(x + h e_i) - f(x - h e_i)) / 2h`` against fastgc's estimate ``a_i``,
  ``|D_h - a_i|`` over a ladder of steps: the V-shaped curve of truncation (falling as
  ``h^2``) meeting rounding (rising as ``1/h``), whose bottom is how well the derivative can
  be known; a dashed line at ``|g_i - a_i|`` shows the analytic value's discrepancy, far above
  the bottom for a wrong ``g_i``, at or below it for a right one. A result holds data, not the
  cost, so the curve costs extra evaluations of ``cost=`` (2 per step per entry, counted in the
  title).
- ``"heatmap"`` (CheckResult of coordinates): a 2-D block's per-entry relative errors
  ``|g - a| / (|g| + |a|)`` on a log colour scale, the threshold marked on the colour bar,
  unchecked entries blank.
- ``"taylor"`` (TaylorResult): the remainders against step on log-log axes, with reference
  slopes ``expected_rate`` and ``expected_rate - 1`` through the fitted window's first point,
  the window shaded and the noise floor drawn.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KINDS", "plot"]

# kind -> the result types it draws; the first kind listed for a type is its default.
KINDS = {
    "CheckResult": ("difference", "step", "heatmap"),
    "HessianResult": ("difference",),
    "LayerResult": ("difference",),
    "ModelResult": ("difference",),
    "ScipyCheckResult": ("difference",),
    "TaylorResult": ("taylor",),
}
# Each kind's own options.
_OPTIONS = {"difference": (), "step": ("cost", "params", "args", "entries", "k", "steps"),
            "heatmap": ("block",), "taylor": ()}
_ALL_KINDS = tuple(_OPTIONS)
# The default ladder of the "step" kind: absolute steps from 1e-1 down to 1e-12, four a decade.
DEFAULT_STEPS = np.logspace(-1, -12, 45)
# Bars at zero difference are drawn at this height, so a log axis can show them.
_FLOOR = 1e-18
_OK, _FAIL, _THRESHOLD = "tab:green", "tab:red", "0.3"


def plot(result, kind=None, ax=None, **options):
    """Draw ``result`` (see the module notes and :meth:`Display.plot`); returns the Axes."""
    name = _kind(result)
    kinds = KINDS.get(name)
    if kinds is None:
        raise TypeError(f"no plots for {type(result).__name__}")
    if kind is None:
        kind = kinds[0]
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a str, not {type(kind).__name__}")
    if kind not in _ALL_KINDS:
        raise ValueError(f"unknown kind {kind!r}; a {name} draws {_listing(kinds)}")
    if kind not in kinds:
        raise ValueError(f"kind {kind!r} does not apply to a {name}; it draws "
                         f"{_listing(kinds)}")
    unknown = sorted(set(options) - set(_OPTIONS[kind]))
    if unknown:
        allowed = f"its options are {_listing(_OPTIONS[kind])}" if _OPTIONS[kind] else (
            "it takes no options")
        raise TypeError(f"unknown option(s) {_listing(unknown)} for kind {kind!r}; {allowed}")
    ax = _axes(ax)
    if kind == "difference":
        _difference(result, ax, **options)
    elif kind == "step":
        _step(result, ax, **options)
    elif kind == "heatmap":
        _heatmap(result, ax, **options)
    else:
        _taylor(result, ax, **options)
    return ax


def _kind(result) -> str | None:
    """The nearest class name in ``KINDS`` along the result's MRO (a FrameworkResult draws as
    a CheckResult)."""
    for cls in type(result).__mro__:
        if cls.__name__ in KINDS:
            return cls.__name__
    return None


def _listing(kinds) -> str:
    return ", ".join(repr(k) for k in kinds)


def _axes(ax):
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:  # pragma: no cover - the plot extra is installed in CI
        raise ImportError("result.plot needs matplotlib: pip install 'fastgc[plot]'") from e
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    elif not hasattr(ax, "bar") or not hasattr(ax, "figure"):
        raise TypeError(f"ax must be a matplotlib Axes, not {type(ax).__name__}")
    return ax


# ---- difference -------------------------------------------------------------------------------
def _bars_of(result) -> list[tuple[str, float, bool, float]]:
    """(label, difference, passed, threshold) per bar."""
    name = _kind(result)
    if name == "CheckResult":
        return [(b.name, b.difference, b.passed, result.threshold)
                for b in result.blocks.values()]
    if name == "HessianResult":
        bars = []
        if result.gradient is not None:
            bars += [(f"grad {label}", d, ok, t) for label, d, ok, t in _bars_of(result.gradient)]
        return bars + [(p.name, p.difference, p.passed, result.threshold)
                       for p in result.pairs.values()]
    if name == "LayerResult":
        bars = []
        for what, check in (("", result.params), ("input ", result.input)):
            if check is not None:
                bars += [(f"{result.name} {what}{b.name}".replace("  ", " "), d, ok, t)
                         for b, (_, d, ok, t) in zip(check.blocks.values(), _bars_of(check),
                                                     strict=True)]
        return bars
    if name == "ModelResult":
        bars = ([(f"loss {label}", d, ok, t) for label, d, ok, t in _bars_of(result.loss)]
                if result.loss is not None else [])
        for layer in result.layers:
            bars += _bars_of(layer)
        return bars
    # ScipyCheckResult: one bar per callable and point
    bars = []
    for section, results in result.sections.items():
        for k, r in enumerate(results):
            if r is not None:
                where = "x0" if k == 0 else f"point {k}"
                bars.append((f"{section} {where}", r.difference, r.passed, r.threshold))
    return bars


def _difference(result, ax):
    bars = _bars_of(result)
    labels = [b[0] for b in bars]
    values = np.array([b[1] for b in bars], dtype=float)
    passed = [bool(b[2]) for b in bars]
    thresholds = np.array([b[3] for b in bars], dtype=float)
    x = np.arange(len(bars))
    heights = np.where(np.isfinite(values) & (values > 0), values, _FLOOR)
    ax.bar(x, heights, color=[_OK if ok else _FAIL for ok in passed])
    ax.set_yscale("log")
    if len(set(thresholds.tolist())) == 1:
        ax.axhline(thresholds[0], color=_THRESHOLD, linestyle="--",
                   label=f"threshold {thresholds[0]:.1e}")
    else:
        ax.hlines(thresholds, x - 0.45, x + 0.45, colors=_THRESHOLD, linestyles="--",
                  label="threshold")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if len(labels) > 4 else 0,
                       ha="right" if len(labels) > 4 else "center")
    ax.set_ylabel("relative difference")
    failing = len(passed) - sum(passed)
    ax.set_title(f"fastgc: {failing} of {len(bars)} failing" if failing
                 else f"fastgc: all {len(bars)} pass")
    from matplotlib.patches import Patch

    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(color=_OK, label="passes"), Patch(color=_FAIL, label="fails")]
    ax.legend(handles=handles, loc="best")


# ---- step -------------------------------------------------------------------------------------
def _step(result, ax, cost=None, params=None, args=(), entries=None, k=3, steps=None):
    if cost is None or params is None:
        raise ValueError("kind='step' evaluates the cost again (a result holds no cost): pass "
                         "cost= and params= (and args=) as given to check")
    if not callable(cost):
        raise TypeError(f"cost must be callable, not {type(cost).__name__}")
    if not isinstance(args, tuple):
        args = (args,)
    t = result._entries
    if t is None or len(t.index) == 0:
        raise ValueError("kind='step' needs checked coordinates with their analytic values; "
                         "this result has none (a directions check that localised nothing)")
    names = [t.layout.coordinate_name(int(i)) for i in t.index]
    if entries is None:
        order = np.argsort(-t.score, kind="stable")[: int(k)]
    else:
        wanted = [entries] if isinstance(entries, str) else list(entries)
        missing = [e for e in wanted if e not in names]
        if missing:
            raise ValueError(f"entries {missing!r} were not checked; checked entries look "
                             f"like {names[0]!r}")
        order = [names.index(e) for e in wanted]
    steps = DEFAULT_STEPS if steps is None else np.asarray(steps, dtype=float)
    if steps.ndim != 1 or not steps.size or not np.all(steps > 0):
        raise ValueError("steps must be a non-empty 1-D array of positive steps")
    theta, _ = t.layout.flatten_gradient(params, "params")
    nfev = 0
    for n, j in enumerate(order):
        i = int(t.index[j])
        errors = np.empty(steps.size)
        for s, h in enumerate(steps):
            x = theta.copy()
            x[i] = theta[i] + h
            up = float(cost(t.layout.unflatten(x), *args))
            x[i] = theta[i] - h
            down = float(cost(t.layout.unflatten(x), *args))
            nfev += 2
            errors[s] = abs((up - down) / (2 * h) - t.a[j])
        colour = f"C{n % 10}"
        ax.loglog(steps, np.where(errors > 0, errors, np.nan), marker=".", color=colour,
                  label=f"{names[j]}: |D_h - numeric|")
        gap = abs(float(t.g[j]) - float(t.a[j]))
        if gap > 0:
            ax.axhline(gap, color=colour, linestyle="--",
                       label=f"{names[j]}: |analytic - numeric| {gap:.1e}")
    ax.set_xlabel("step h")
    ax.set_ylabel("error of the central difference D_h")
    ax.set_title(f"error against step ({nfev} extra cost evaluations)")
    ax.legend(loc="best", fontsize="small")


# ---- heat map ---------------------------------------------------------------------------------
def _heatmap(result, ax, block=None):
    t = result._entries
    if result.mode == "directions" or t is None:
        raise ValueError("kind='heatmap' needs a check of coordinates (mode 'full' or "
                         f"'subset'); this one is a {result.mode!r} check")
    layout = t.layout
    blocks = {b.name: b for b in layout.blocks}
    if block is None:
        two_d = [b for b in layout.blocks if len(b.shape) == 2 and b.name in result.blocks]
        if not two_d:
            raise ValueError("kind='heatmap' draws a 2-D block; this result has none")
        failing = [b for b in two_d if not result.blocks[b.name].passed]
        chosen = (failing or two_d)[0]
    else:
        if block not in blocks:
            raise ValueError(f"block {block!r} is not a block of this result; blocks: "
                             f"{_listing(blocks)}")
        chosen = blocks[block]
        if len(chosen.shape) != 2:
            raise ValueError(f"kind='heatmap' draws a 2-D block; {block!r} has shape "
                             f"{chosen.shape}")
    image = relative_errors(result, chosen.name)
    from matplotlib.colors import LogNorm

    finite = image[np.isfinite(image) & (image > 0)]
    low = max(float(finite.min()) if finite.size else 1e-16, 1e-16)
    high = max(float(finite.max()) if finite.size else 1.0, result.threshold * 10, low * 10)
    # exact agreement at the bottom of the scale; NaN (not checked) stays NaN: blank
    shown = np.where(image == 0, low, image)
    im = ax.imshow(shown, norm=LogNorm(vmin=low, vmax=high), cmap="viridis",
                   interpolation="nearest", aspect="auto")
    bar = ax.figure.colorbar(im, ax=ax)
    bar.set_label("relative error |g - a| / (|g| + |a|)")
    bar.ax.axhline(result.threshold, color="red", linewidth=2)
    rows, cols = chosen.shape
    if cols <= 20:
        ax.set_xticks(range(cols))
    if rows <= 20:
        ax.set_yticks(range(rows))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    verdict = "ok" if result.blocks[chosen.name].passed else "FAIL"
    ax.set_title(f"{chosen.name} {chosen.shape}: {verdict} (threshold {result.threshold:.1e} "
                 "marked on the colour bar)")


def relative_errors(result, block: str) -> np.ndarray:
    """The per-entry relative errors of a block of a coordinate check, in the block's shape
    (NaN where an entry was not checked)."""
    t = result._entries
    layout = t.layout
    b = next(x for x in layout.blocks if x.name == block)
    out = np.full(b.size, np.nan)
    mine = (t.index >= b.offset) & (t.index < b.stop)
    g, a = t.g[mine], t.a[mine]
    denom = np.abs(g) + np.abs(a)
    out[t.index[mine] - b.offset] = np.divide(np.abs(g - a), denom,
                                              out=np.zeros_like(denom), where=denom > 0)
    return out.reshape(b.shape)


# ---- Taylor -----------------------------------------------------------------------------------
def _taylor(result, ax):
    steps, rem = np.asarray(result.steps), np.asarray(result.remainders)
    ax.loglog(steps, np.where(rem > 0, rem, np.nan), marker="o", color="tab:blue",
              label=f"remainder (fitted rate {result.rate:.2f})")
    start, stop = result.window
    if stop > start:
        ax.axvspan(steps[stop - 1], steps[start], color="tab:blue", alpha=0.1,
                   label="fitted window")
        anchor = start
    else:
        anchor = 0
    h0, r0 = steps[anchor], rem[anchor]
    for rate, style in ((result.expected_rate, "--"), (result.expected_rate - 1, ":")):
        ax.loglog(steps, r0 * (steps / h0) ** rate, style, color="0.35",
                  label=f"slope {rate:g}")
    ax.axhline(result.noise_floor, color="tab:red", linewidth=1,
               label=f"noise floor {result.noise_floor:.1e}")
    ax.set_xlabel("step eps")
    ax.set_ylabel("Taylor remainder")
    ax.set_title(f"Taylor test (order {result.order}): "
                 f"{'passed' if result.passed else 'FAILED'}")
    ax.legend(loc="best")
