"""What the bench shows: the table of a workload, the issue's targets, and the picture.

Everything here reads measured rows (:class:`~bench.harness.runner.Row` or the dicts that
``--json`` writes) and measures nothing.
"""

from __future__ import annotations

import math

from bench.harness.workloads import Workload

__all__ = ["GENERATED_PAGES", "fmt_seconds", "format_table", "plot", "readme_blocks", "targets",
           "update_readme"]


def fmt_seconds(s: float) -> str:
    """``s`` seconds in the table's units: ``"1.2 h"``, ``"3.24 s"``, ``"0.70 ms"``, ``"85 us"``."""
    if not math.isfinite(s):
        return "-"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def format_table(workload: Workload, rows: list, floor: float | None = None) -> str:
    """The table of one workload, as printed by ``fastgc bench``.

    Parameters
    ----------
    workload : Workload
    rows : list of Row
        The measured rows, the baseline (the exercise's loop) first.
    floor : float, optional
        The flop floor of a full check, seconds (a last line, with the network row's ratio).

    Returns
    -------
    str
    """
    lines = [f"workload {workload.name}: {workload.title}",
             f"  {'contender':<44}{'time (median)':>15}{'vs loop':>10}{'nfev':>12}"
             f"{'peak MiB':>10}  note"]
    for r in rows:
        if r.status != "ok":
            lines.append(f"  {r.label:<44}{'':>47}  {r.status}")
            continue
        speed = f"{r.speedup:.1f}x" if r.speedup is not None else "-"
        mem = "-" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:.1f}"
        if not r.memory_traced and r.peak_bytes is not None:
            mem += "†"
        notes = []
        if r.extrapolated:
            notes.append(f"extrapolated from {r.subset} coordinates")
        if len(r.times) == 1:
            notes.append("1 timed call")
        if r.passed is False:
            notes.append("verdict: failed")
        mark = "*" if r.extrapolated else " "
        lines.append(f"  {r.label:<44}{fmt_seconds(r.seconds) + mark:>15}{speed:>10}"
                     f"{r.nfev if r.nfev is not None else '-':>12,}{mem:>10}  "
                     + "; ".join(notes))
    if floor is not None:
        net = next((r for r in rows if r.contender == "network" and r.status == "ok"), None)
        ratio = f"network / floor = {net.seconds / floor:.2f}" if net else ""
        lines.append(f"  {'flop floor (useful multiply-adds at DGEMM rate)':<44}"
                     f"{fmt_seconds(floor):>15}{'':>32}  {ratio}")
    return "\n".join(lines)


def targets(rows, floors, startup) -> list[dict]:
    """The issue's targets against what was measured.

    Parameters
    ----------
    rows : list of Row
    floors : dict
        Flop floor (seconds) per workload name.
    startup : list of dict
        :func:`~bench.harness.machine.startup_rows` (empty when not run).

    Returns
    -------
    list of dict
        ``{"target", "measured", "goal", "met"}``; ``met`` and ``measured`` are None where
        the rows it needs were not run.
    """
    by = {(r.workload, r.contender): r for r in rows if r.status == "ok"}
    out = []

    def ratio(w, c):
        a, b = by.get((w, "exercise-loop")), by.get((w, c))
        return None if a is None or b is None else a.seconds / b.seconds

    def add(text, value, goal, ok):
        out.append({"target": text, "measured": value, "goal": goal,
                    "met": None if value is None else bool(ok(value))})

    add("mnist: network >= 300x faster than the exercise loop", ratio("mnist", "network"),
        300, lambda v: v >= 300)
    if "mnist" in floors and ("mnist", "network") in by:
        v = by["mnist", "network"].seconds / floors["mnist"]
    else:
        v = None
    add("mnist: network within 2x of the flop floor (time / floor)", v, 2, lambda v: v <= 2)
    add("large: network >= 1500x faster than the exercise loop", ratio("large", "network"),
        1500, lambda v: v >= 1500)
    add("exercise: fastgc.check >= 50x faster than its loop", ratio("exercise", "network"),
        50, lambda v: v >= 50)
    add("exercise: network kernel alone >= 50x faster than the loop",
        ratio("exercise", "kernel"), 50, lambda v: v >= 50)
    first = next((s["seconds"] for s in startup if s["name"].startswith("first check")), None)
    add("first check in a fresh process, warm cache, adds < 1 s", first, 1, lambda v: v < 1)
    return out


def plot(data: dict, path: str) -> None:
    """Log-log picture of check time against parameter count, one line per contender.

    Parameters
    ----------
    data : dict
        What :func:`~bench.harness.runner.run_bench` returns.
    path : str
        The PNG to write.

    Raises
    ------
    ImportError
        When matplotlib is missing (``pip install ".[plot]"``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib: pip install \".[plot]\"") from exc
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=90)
    by_contender = {}
    for r in data["rows"]:
        if r["status"] == "ok":
            by_contender.setdefault(r["label"].strip(), []).append(r)
    for i, (label, rows) in enumerate(by_contender.items()):
        rows = sorted(rows, key=lambda r: r["params"])
        x = [r["params"] for r in rows]
        y = [r["seconds"] for r in rows]
        (line,) = ax.plot(x, y, ("-", "-.", ":")[i // 10 % 3], lw=1.2, label=label)
        for r in rows:
            ax.plot(r["params"], r["seconds"], "o", color=line.get_color(),
                    mfc="none" if r["extrapolated"] else line.get_color())
    floors = data.get("floors", {})
    if floors:
        pts = sorted((data["workloads"][w]["params"], s) for w, s in floors.items())
        ax.plot([p for p, _ in pts], [s for _, s in pts], "k--", lw=1, label="flop floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters P")
    ax.set_ylabel("full check time, s (hollow: extrapolated)")
    m = data["machine"]
    ax.set_title(f"gradient check time, {m['cores']} cores {m['cpu']}", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---- the documentation's numbers, generated from bench/results.json --------------------------
# The measured numbers live between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in the
# pages of GENERATED_PAGES (below) and are written by :func:`readme_blocks` from the raw numbers
# (``fastgc bench --json`` plus ``bench/readme_numbers.py --measure``);
# ``tests/system/test_readme_numbers.py`` checks that the pages hold exactly what the JSON gives.
_ROW_ORDER = ["exercise-loop", "loop", "stacked", "network", "kernel", "network-subset",
              "network-directions", "network-richardson", "network-complex", "stacked-complex",
              "check_grad", "check_grad-random", "jacobian", "numdifftools", "gradcheck",
              "gradcheck-fast"]


def _spread(r: dict) -> str:
    times = [t for t in r.get("times") or [] if math.isfinite(t)]
    if len(times) < 2:
        return f"{fmt_seconds(r['seconds'])}{'*' if r['extrapolated'] else ''} (1 call)"
    star = "*" if r["extrapolated"] else ""
    # an extrapolated row's calls timed a subset: scale them as its median was scaled
    scale = r["seconds"] / sorted(times)[len(times) // 2] if r["extrapolated"] else 1.0
    lo, hi = fmt_seconds(min(times) * scale), fmt_seconds(max(times) * scale)
    return f"{fmt_seconds(r['seconds'])}{star} ({lo}-{hi})"


def _cell(r: dict | None) -> str:
    if r is None:
        return "-"
    if r["status"] != "ok":
        return "capped" if r["status"].startswith("skipped") else r["status"]
    text = _spread(r)
    if r["contender"] not in ("exercise-loop",) and r.get("speedup") and \
            r["contender"] in ("loop", "stacked", "network", "kernel"):
        text += f", {r['speedup']:,.1f}x" if r["speedup"] < 100 else f", {r['speedup']:,.0f}x"
    return text


def performance_table(data: dict) -> str:
    """The benchmarks page's performance table: per contender and workload the median of the timed
    calls, with their range (min-max) in brackets, ``*`` where extrapolated from a subset; the
    engines' speed-up over the exercise's loop; the flop floor last."""
    names = list(data["workloads"])
    by = {(r["workload"], r["contender"]): r for r in data["rows"]}
    head = "| contender | " + " | ".join(
        f"{w} (P={data['workloads'][w]['params']:,})" for w in names) + " |"
    lines = [head, "|---" * (len(names) + 1) + "|"]
    contenders = [c for c in _ROW_ORDER if any((w, c) in by for w in names)]
    contenders += sorted({r["contender"] for r in data["rows"]} - set(contenders))
    for c in contenders:
        label = next(r["label"] for r in data["rows"] if r["contender"] == c).strip()
        lines.append(f"| {label} | " + " | ".join(_cell(by.get((w, c))) for w in names) + " |")
    floors = data.get("floors", {})
    lines.append("| flop floor of a full check | "
                 + " | ".join(fmt_seconds(floors[w]) if w in floors else "-" for w in names)
                 + " |")
    return "\n".join(lines)


def nfev_text(data: dict) -> str:
    """Evaluations per full check, per engine and method, from the measured counts."""
    counts = data.get("nfev_by_engine", {})
    if not counts:
        return ""
    P = counts["params"]
    lines = [f"| engine | central | richardson | complex | directions=2 ({counts['blocks']} "
             f"blocks) |", "|---|---|---|---|---|"]

    def rel(n, method):
        if n is None:
            return "-"
        if method == "directions" and n == 4 * 2 * counts["blocks"] + 1:
            return f"{n:,} = 4 x 2 x {counts['blocks']} + 1"
        for base, name in ((2 * P, "2P"), (P, "P")):
            if abs(n - base) <= 20:
                d = n - base
                return f"{n:,} = {name} {'+' if d >= 0 else '-'} {abs(d)}"
        return f"{n:,} = {n / P:.2f} P"

    for engine, row in counts["engines"].items():
        lines.append(f"| {engine} | " + " | ".join(rel(row.get(m), m) for m in
                                                   ("central", "richardson", "complex",
                                                    "directions")) + " |")
    return "\n".join(lines)


def targets_table(data: dict) -> str:
    """The targets judged on this results.json (``met`` as the runner judged it)."""
    lines = ["| target | measured | goal | |", "|---|---|---|---|"]
    for t in data.get("targets", []):
        v = t["measured"]
        shown = "-" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100
                                         else f"{v:,.0f}")
        met = {True: "met", False: "not met", None: "not run"}[t["met"]]
        lines.append(f"| {t['target']} | {shown} | {t['goal']} | {met} |")
    return "\n".join(lines)


def startup_text(data: dict) -> str:
    """Start-up rows, and the cold first run of ``fastgc demo`` (empty numba cache)."""
    lines = [f"- {s['name']}: {fmt_seconds(s['seconds'])} ({s['note']})"
             for s in data.get("startup", [])]
    cold = data.get("cold_demo")
    if cold:
        t = sorted(cold["seconds"])
        lines.append(f"- `{cold['command']}`: {fmt_seconds(t[len(t) // 2])} median of "
                     f"{len(t)} runs ({fmt_seconds(t[0])}-{fmt_seconds(t[-1])}); "
                     f"{cold['note']}")
    return "\n".join(lines)


def accuracy_text(data: dict) -> str:
    """The exercise network's fixed backprop: relative difference by engine and step."""
    acc = data.get("accuracy")
    if not acc:
        return ""
    lines = [f"| {acc['title']} | " + " | ".join(acc["columns"]) + " |",
             "|---" * (len(acc["columns"]) + 1) + "|"]
    for name, values in acc["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2g}" for v in values) + " |")
    return "\n".join(lines)


def machine_text(data: dict) -> str:
    """The machine line under the tables."""
    m = data["machine"]
    text = (f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']} "
            f"({m['blas']}, {m['blas_threads']} BLAS thread), numba {m['numba']} "
            f"({m['numba_threads']} threads); DGEMM {data['dgemm_gflops']:.0f} GFLOP/s "
            f"({data['dgemm_gflops_one_thread']:.0f} on one core); {data['repeat']} timed "
            "calls per row (fewer where marked).")
    if data.get("note"):
        text += " " + data["note"]
    return text


def cnn_text(data: dict) -> str:
    """The hand-written CNN: whole model by the loop engine vs layer by layer."""
    c = data.get("cnn")
    if not c:
        return ""
    return "\n".join([
        "| full central check of every parameter | time | how |",
        "|---|---|---|",
        f"| whole model, `fastgc.check(cost, grads, params, X, y, engine=\"loop\")` | "
        f"{fmt_seconds(c['whole_extrapolated_s'])}* | {c['subset']} coordinates (stratified "
        f"subset) timed at {fmt_seconds(c['subset_s'])}, scaled by P / {c['subset']} |",
        f"| layer by layer, `fastgc.check_model(layers, X, y, loss=..., grads=..., dX=...)` | "
        f"{fmt_seconds(c['layered_s'])} ({c['speedup']:.0f}x) | every parameter, each layer's "
        f"input at 256 coordinates, the loss, the chain; {c['layered_nfev']:,} layer "
        "evaluations |",
        "",
        f"P = {c['params']:,}; {c['rounds']} timed call(s) per row; {c['machine']}.",
    ])


def directions_sweep_text(data: dict) -> str:
    """The 936k-parameter directions case over many seeds (bench/directions_seed_sweep.py)."""
    d = data.get("directions_sweep")
    if not d:
        return ""
    parts = []
    for kind, label in (("entry", "a single entry of median magnitude off by 1e-3"),
                        ("row", "a zeroed row")):
        r = d[kind]
        named = r["seeds"] - len(r["wrong"])
        parts.append(f"{label}: named for {named} of {r['seeds']} seeds (seeds 0-"
                     f"{r['seeds'] - 1}), {r['nfev_median']:.0f} evaluations in the median "
                     f"(at most {r['nfev_max']}), {fmt_seconds(r['seconds_median'])} per check "
                     "in the median")
    return ("On the 936k-parameter network (`python bench/directions_seed_sweep.py`, "
            "`directions=2`): " + "; ".join(parts) + ".")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def device_text(data: dict) -> str:
    """bench/device_scaling.py on a 16-core machine: scaling and fixed costs, every run."""
    dev = data.get("device_runs")
    if not dev:
        return ""
    runs = dev["runs"]
    final = runs[-1]
    lines = [f"{dev['machine']}; `{dev['command']}`. " + "; ".join(r["label"] for r in runs)
             + ".", ""]
    lines += ["| network engine, full central check | threads | " +
              " | ".join(f"run {k + 1}" for k in range(len(runs))) + " |",
              "|---|---|" + "---|" * len(runs)]
    for net in final["threads"]:
        for j, row in enumerate(final["threads"][net]):
            cells = []
            for r in runs:
                x = r["threads"][net][j]
                cells.append(f"{fmt_seconds(x['median_s'])} ({x['speedup']:.1f}x, "
                             f"{_pct(x['efficiency'])})")
            lines.append(f"| {net if j == 0 else ''} | {row['threads']} | "
                         + " | ".join(cells) + " |")
    lines += ["", "| black-box numpy cost (loop engine), 1,600 coordinates of 784-256-128-10 "
              "| workers | seconds | speed-up | efficiency | same bits as workers=1 |",
              "|---|---|---|---|---|---|"]
    for j, w in enumerate(final["workers"]):
        lines.append(f"| {'final run' if j == 0 else ''} | {w['workers']} | "
                     f"{fmt_seconds(w['seconds'])} | {w['speedup']:.2f}x | "
                     f"{_pct(w['efficiency'])} | {'yes' if w['identical'] else 'no'} |")
    lines += ["", "| fixed costs | " + " | ".join(f"run {k + 1}" for k in range(len(runs)))
              + " |", "|---|" + "---|" * len(runs)]

    def row(label, fn):
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in runs) + " |")

    row("`fastgc.check` of the exercise network (47 parameters), median of 3,000",
        lambda r: f"{r['fixed_cost']['check_ms']:.3f} ms")
    row("its network kernel alone, same pairs", lambda r: f"{r['fixed_cost']['kernel_ms']:.3f} ms")
    for method in ("central", "richardson"):
        row(f"784-256-128-10 {method}: terminal / pipe (bar default; forced)",
            lambda r, m=method: f"{r['terminal'][m]['tty_over_pipe']:.2f}; "
                                f"{r['terminal'][m]['tty_bar_over_pipe']:.2f}")
    row("`directions=2` on 784-1024-1024-10, 1 thread (x its matrix products)",
        lambda r: f"{fmt_seconds(r['directions'][0]['median_s'])}"
                  + (f" ({r['directions'][0]['times_products']:.1f}x)"
                     if "times_products" in r["directions"][0] else ""))
    row("first check in a fresh interpreter, empty numba cache",
        lambda r: fmt_seconds(r["cold_start"]["cold_s"]))
    return "\n".join(lines)


# The documentation pages that hold the generated blocks (each block in exactly one of them);
# the README, the site's front page, quotes no measured number.
GENERATED_PAGES = (
    "docs/explanation/benchmarks.md",
    "docs/explanation/network-engine.md",
    "docs/explanation/directions.md",
)

README_BLOCKS = {
    "device": device_text,
    "directions-sweep": directions_sweep_text,
    "cnn": cnn_text,
    "performance-table": performance_table,
    "machine": machine_text,
    "nfev": nfev_text,
    "targets": targets_table,
    "startup": startup_text,
    "accuracy": accuracy_text,
}


def readme_blocks(data: dict) -> dict:
    """Every generated block of the documentation, ``{name: markdown}``."""
    return {name: fn(data) for name, fn in README_BLOCKS.items()}


def update_readme(text: str, data: dict) -> str:
    """``text`` (a page of :data:`GENERATED_PAGES`) with each ``<!-- bench:NAME -->...<!--
    /bench:NAME -->`` block it holds regenerated."""
    import re

    for name, body in readme_blocks(data).items():
        pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
        text = pattern.sub(lambda m, b=body: m.group(1) + b + "\n" + m.group(2), text)
    return text
