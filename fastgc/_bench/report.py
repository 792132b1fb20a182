"""What the bench shows: the table of a workload, the issue's targets, and the picture.

Everything here reads measured rows (:class:`~fastgc._bench.runner.Row` or the dicts that
``--json`` writes) and measures nothing.
"""

from __future__ import annotations

import math

from .workloads import Workload

__all__ = ["fmt_seconds", "format_table", "plot", "targets"]


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
        :func:`~fastgc._bench.machine.startup_rows` (empty when not run).

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
        What :func:`~fastgc._bench.runner.run_bench` returns.
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
