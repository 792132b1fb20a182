"""Run every engine x mode x method check once and pickle the results (``test_terminal.py``
runs this script under a pseudo-terminal and in a pipe and compares).

Usage: ``python terminal_checks.py OUT.pkl PROGRESS`` with PROGRESS ``none`` or ``true``.
The problems are large enough that every full request is cut into several chunks.
"""

import pathlib
import pickle
import sys

import numpy as np

# The costs of the reliability tests (this script's folder is on sys.path as a script's is; the
# shared seeded problems are one folder up).
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))
from test_reliability import (  # noqa: E402
    loop_cost,
    numba_cost,
    numba_grad,
    tanh_regression,
    tanh_regression_grad,
)

import fastgc


def problem(engine):
    """``(cost, params, grads, args)``, with one entry of the gradient off by 1%."""
    rng = np.random.default_rng(11)
    if engine == "network":
        net = fastgc.MLP([12, 20, 10, 3], ["relu", "tanh", "softmax"], "ce", l2=0.1)
        params = net.init(3)
        X = rng.standard_normal((12, 16))
        Y = np.eye(3)[:, rng.integers(0, 3, 16)]
        cost, grads, args = net, net.gradients(params, X, Y), (X, Y)
    elif engine in ("loop", "stacked"):
        params = {"W1": rng.standard_normal((20, 12)) / 3, "b1": rng.standard_normal((20, 1)),
                  "W2": rng.standard_normal((4, 20)) / 4, "b2": rng.standard_normal((4, 1))}
        X, Y = rng.standard_normal((12, 9)), rng.standard_normal((4, 9))
        cost = loop_cost if engine == "loop" else tanh_regression
        grads, args = tanh_regression_grad(params, X, Y), (X, Y)
    else:
        params = {"w": rng.standard_normal((15, 18)) / 10, "c": rng.standard_normal(30) / 10}
        A, y = rng.standard_normal((12, 300)) / 10, rng.standard_normal(12)
        cost, grads, args = numba_cost, numba_grad(params, A, y), (A, y)
    key = next(iter(grads))
    grads[key].flat[7] *= 1.01
    return cost, params, grads, args


COMBINATIONS = [(engine, mode, method)
                for engine in ("loop", "stacked", "numba", "network")
                for mode, method in [("full", "central"), ("full", "richardson"),
                                     ("full", "complex"), ("subset", "central"),
                                     ("subset", "richardson"), ("subset", "complex"),
                                     ("directions", "central")]]


def run_all(progress):
    results = {}
    for engine, mode, method in COMBINATIONS:
        cost, params, grads, args = problem(engine)
        options = {"subset": {"subset": 0.8}, "directions": {"directions": 2}}.get(mode, {})
        results[engine, mode, method] = fastgc.check(cost, grads, params, *args, engine=engine,
                                                     method=method, progress=progress, **options)
    return results


if __name__ == "__main__":
    out, progress = sys.argv[1], {"none": None, "true": True}[sys.argv[2]]
    results = run_all(progress)
    with open(out, "wb") as f:
        pickle.dump({"stderr_isatty": sys.stderr.isatty(), "results": results}, f)
