"""The documentation's measured numbers: measured into bench/results.json, then written into
the pages of ``bench.harness.report.GENERATED_PAGES`` (docs/explanation/benchmarks.md and two
more; the README quotes none).

    python bench/readme_numbers.py --measure   # nfev per engine, accuracy, cold `fastgc demo`
    python bench/readme_numbers.py --write     # the pages' generated blocks from results.json
    python bench/readme_numbers.py --check     # exit 1 when a page differs from results.json

The timing table comes from ``fastgc bench --json bench/results.json``; ``--measure`` adds the
numbers that ``fastgc bench`` does not produce, into the same file (keys ``nfev_by_engine``,
``accuracy``, ``cold_demo``). ``tests/system/test_readme_numbers.py`` runs ``--check``'s comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"


def _exercise_costs(problem):
    """The exercise network (relu, relu, sigmoid; bce on the logits) as a loop cost, a
    ``@batched`` cost and a numba cost of the flat vector, next to the MLP."""
    import numba

    import fastgc
    from bench.harness.workloads import batched_cost

    dims = tuple(problem.workload.dims)
    shapes = [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]

    @numba.njit(cache=True)
    def numba_cost(theta, X, Y):
        m = X.shape[1]
        A = X.copy()
        start = 0
        for layer in range(len(dims) - 1):
            n_out, n_in = dims[layer + 1], dims[layer]
            W = theta[start:start + n_out * n_in].reshape((n_out, n_in))
            start += n_out * n_in
            b = theta[start:start + n_out].reshape((n_out, 1))
            start += n_out
            Z = W @ A + b
            A = np.maximum(Z, 0.0) if layer < len(dims) - 2 else Z
        return np.sum(np.log1p(np.exp(-np.abs(A))) + np.maximum(A, 0.0) - Y * A) / m

    del shapes
    return {"loop": problem.net, "stacked": batched_cost(dims, problem.workload.loss),
            "numba": numba_cost, "network": problem.net, "_fastgc": fastgc}


def measure_nfev() -> dict:
    """Evaluations per full check of the exercise network, per engine and method (counted by
    fastgc.check's ``nfev``)."""
    from bench.harness.workloads import workload

    problem = workload("exercise").build()
    costs = _exercise_costs(problem)
    fastgc = costs.pop("_fastgc")
    grads = {k: problem.grads["d" + k] for k in problem.params}
    out = {"params": int(problem.P), "blocks": len(problem.params), "engines": {},
           "workload": problem.workload.title}
    for engine, cost in costs.items():
        row = {}
        for method, kw in (("central", {}), ("richardson", {"method": "richardson"}),
                           ("complex", {"method": "complex"}), ("directions",
                                                                {"directions": 2})):
            if engine == "numba" and method == "complex":
                row[method] = None  # a numba cost of float64 has no complex path
                continue
            try:
                r = fastgc.check(cost, grads, problem.params, problem.X, problem.Y,
                                 engine=engine, progress=False, **kw)
                row[method] = int(r.nfev)
            except Exception as exc:  # noqa: BLE001 - the README says what happened
                row[method] = None
                print(f"{engine} {method}: {type(exc).__name__}: {exc}", file=sys.stderr)
        out["engines"][engine] = row
    return out


def measure_accuracy() -> dict:
    """The exercise network's fixed backprop, one cost (fastgc.MLP), two engines, two steps."""
    import fastgc
    from fastgc._exercise.original import (
        backward_propagation_n,
        exercise_data,
        forward_propagation_n,
    )

    X, Y, p = exercise_data()
    _, cache = forward_propagation_n(X, Y, p)
    g = backward_propagation_n(X, Y, cache, fixed=True)
    net = fastgc.MLP([4, 5, 3, 1], ["relu", "relu", "sigmoid"], "bce")
    params = {k: p[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3")}
    rows = {}
    for engine in ("network", "loop"):
        rows[f"engine={engine!r}"] = [
            fastgc.check(net, g, params, X, Y, engine=engine, eps=eps).difference
            for eps in (None, 1e-7)]
    return {"title": "exercise network, fixed backprop: relative difference",
            "columns": ["default step (6.1e-6 x max(1, |theta|))", "eps=1e-7"], "rows": rows}


def measure_cold_demo(runs: int) -> dict:
    """``NUMBA_CACHE_DIR=$(mktemp -d) fastgc demo``, ``runs`` times (an empty cache each)."""
    exe = shutil.which("fastgc") or "fastgc"
    seconds = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            start = time.perf_counter()
            subprocess.run([exe, "demo"], env=env, check=True, capture_output=True)
            seconds.append(time.perf_counter() - start)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"command": "NUMBA_CACHE_DIR=$(mktemp -d) fastgc demo", "seconds": seconds,
            "note": f"the whole command with an empty numba cache (every kernel compiled); "
                    f"load average {load:.1f} while measured"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--note", help="the machine note stored in results.json")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench.harness.report import GENERATED_PAGES, update_readme

    data = json.loads(RESULTS.read_text())
    if args.measure:
        data["nfev_by_engine"] = measure_nfev()
        data["accuracy"] = measure_accuracy()
        data["cold_demo"] = measure_cold_demo(args.cold_runs)
    if args.note:
        data["note"] = args.note
    if args.measure or args.note:
        RESULTS.write_text(json.dumps(data, indent=1, default=float) + "\n")
    stale = []
    for page in GENERATED_PAGES:
        path = ROOT / page
        text = path.read_text()
        new = update_readme(text, data)
        if args.write and new != text:
            path.write_text(new)
        if new != text:
            stale.append(page)
    if args.check and stale:
        print(f"{', '.join(stale)} differ from bench/results.json: run "
              "bench/readme_numbers.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
