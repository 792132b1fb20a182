"""Directions mode on the README's large case, over many seeds: is the culprit always named?

``python bench/directions_seed_sweep.py [--seeds 100] [--record]``. The case of
``tests/test_modes_large.py``: 784-1024-128-10 (936,330 parameters), relu/softmax-CE, m=8,
``net.init(0)``, data seed 1. Two bugs in dW1: one entry of median magnitude off by 1e-3
relative, and row 5 zeroed. For each seed, ``fastgc.check(..., directions=2, seed=seed)`` must
fail in W1 alone and name ``W1[i, j]`` (the entry) or ``W1[5, :]`` (the row). Prints the seeds
that do not, the evaluation counts and the time; ``--record`` stores them in
bench/results.json under ``directions_sweep``. (tests/core/test_plan.py runs the same sweep on a
20-30-10-3 network in the default test run.)
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import fastgc

DIMS, M = [784, 1024, 128, 10], 8


def problem():
    net = fastgc.MLP(DIMS, "relu", "ce")
    params = net.init(0)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((DIMS[0], M))
    Y = np.eye(DIMS[-1])[:, rng.integers(0, DIMS[-1], M)]
    return net, params, X, Y, net.gradients(params, X, Y)


def bugs(grads):
    W = grads["dW1"]
    nonzero = np.flatnonzero(W.ravel())
    median = nonzero[np.argsort(np.abs(W.ravel()[nonzero]))[nonzero.size // 2]]
    entry = np.unravel_index(median, W.shape)
    with_entry = {k: v.copy() for k, v in grads.items()}
    with_entry["dW1"][entry] *= 1 + 1e-3
    with_row = {k: v.copy() for k, v in grads.items()}
    with_row["dW1"][5] = 0.0
    return {"entry": (with_entry, f"localised to W1[{entry[0]}, {entry[1]}] ("),
            "row": (with_row, "localised to W1[5, :] (")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    net, params, X, Y, grads = problem()
    report = {}
    for kind, (bad, expected) in bugs(grads).items():
        wrong, nfev, seconds = {}, [], []
        for seed in range(args.seeds):
            t = time.perf_counter()
            r = fastgc.check(net, bad, params, X, Y, directions=2, seed=seed, progress=False)
            seconds.append(time.perf_counter() - t)
            nfev.append(r.nfev)
            failing = [n for n, b in r.blocks.items() if not b.passed]
            if failing != ["W1"] or not r.blocks["W1"].diagnosis.startswith(expected):
                wrong[seed] = r.blocks["W1"].diagnosis
        report[kind] = {"seeds": args.seeds, "wrong": wrong, "nfev_median": float(np.median(nfev)),
                        "nfev_max": int(max(nfev)), "seconds_median": float(np.median(seconds))}
        print(kind, json.dumps(report[kind]), flush=True)
    if args.record:
        path = os.path.join(os.path.dirname(__file__), "results.json")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        data["directions_sweep"] = report
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
    return 1 if any(r["wrong"] for r in report.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
