"""Error of the numeric gradient against the step size: central vs Richardson vs complex step.

    python bench/plot_error_vs_step.py [--out docs/error_vs_step.png] [--json FILE]

On one smooth network (4-16-8-3, tanh hidden layers, softmax/CE, m=16, seeded), for each method
and step h, the relative difference ||a - g|| / ||g|| between fastgc's numeric gradient ``a``
and the exact gradient ``g`` (``MLP.gradients``). Central and Richardson are run on the network
engine and on the loop engine (the same cost through plain numpy); the complex step on a
complex-safe numpy forward of the same network through the loop engine. matplotlib is needed
for the picture (``pip install ".[plot]"``); ``--json`` alone needs nothing extra.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench.harness import Workload
from fastgc._core.layout import Layout
from fastgc._core.schemes import central, complex_step, richardson_scipy
from fastgc._engines.registry import make_objective

WORKLOAD = Workload("smooth", (4, 16, 8, 3), "ce", 16, hidden="tanh", params_seed=3,
                    data_seed=4)


def _problem():
    p = WORKLOAD.build()
    return p.net, p.params, p.X, p.Y


def complex_safe_cost(params, X, Y):
    """The same network in numpy arithmetic that carries complex parameters through."""
    A = X
    L = len(params) // 2
    for layer in range(1, L + 1):
        Z = params[f"W{layer}"] @ A + params[f"b{layer}"]
        A = np.tanh(Z) if layer < L else Z
    Z = A - A.real.max(axis=0, keepdims=True)  # shift by the real max: stays analytic
    log_softmax = Z - np.log(np.sum(np.exp(Z), axis=0, keepdims=True))
    return -np.sum(Y * log_softmax) / X.shape[1]


def measure():
    net, params, X, Y = _problem()
    layout, theta = Layout.of(params)
    exact, _ = layout.flatten_gradient(net.gradients(params, X, Y))
    index = np.arange(layout.size)

    def error(a):
        return float(np.linalg.norm(a - exact) / np.linalg.norm(exact))

    curves = {}
    steps = np.logspace(-12, -1, 23)
    for engine in ("network", "loop"):
        objective = make_objective(net, layout, theta, (X, Y), engine)
        curves[f"central ({engine} engine)"] = [
            (float(h), error(central(objective, index, np.full(index.size, h)).numeric))
            for h in steps]
        curves[f"Richardson ({engine} engine)"] = [
            (float(h), error(richardson_scipy(objective, theta, index,
                                              np.full(index.size, h)).numeric))
            for h in steps[steps >= 1e-6]]
    objective = make_objective(complex_safe_cost, layout, theta, (X, Y), "loop")
    curves["complex step (loop engine)"] = [
        (float(h), error(complex_step(objective, index, float(h)).numeric))
        for h in np.logspace(-30, -1, 30)]
    return curves


def plot(curves, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit('the picture needs matplotlib: pip install ".[plot]"') from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in curves.items():
        h, e = zip(*points, strict=True)
        ax.loglog(h, np.maximum(e, 1e-17), marker=".", label=label,
                  linestyle="--" if "loop" in label and "complex" not in label else "-")
    ax.axhline(2e-7, color="grey", linewidth=0.8)
    ax.text(1e-29, 3e-7, "the exercise's threshold 2e-7", fontsize=8, color="grey")
    ax.set_xlabel("step h (Richardson: first step)")
    ax.set_ylabel("||numeric - exact|| / ||exact||")
    ax.set_title(f"{WORKLOAD.title}: error against step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/error_vs_step.png")
    parser.add_argument("--json", help="also write the raw curves to this file")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    curves = measure()
    for label, points in curves.items():
        best = min(points, key=lambda p: p[1])
        print(f"{label:32s} best error {best[1]:.2e} at h = {best[0]:.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(curves, f, indent=1)
    if not args.no_plot:
        plot(curves, args.out)


if __name__ == "__main__":
    main()
