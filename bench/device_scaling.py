"""One prepared measurement for a many-core machine: scaling and fixed costs, as JSON.

``python bench/device_scaling.py OUT.json [--quick]`` measures, in one run on one machine:

- ``fixed_cost``: a full ``fastgc.check`` of the exercise's 47-parameter network, against the
  network kernel alone on the same +h/-h pairs (medians of many calls);
- ``terminal``: a full central check of 784-256-128-10 (m=64) in a fresh interpreter whose
  stderr is a pseudo-terminal (the progress bar's default: on), with the bar forced on, and
  piped; medians of 3 timed checks each, after a warm-up;
- ``threads``: the network engine's full central check of 784-256-128-10 and 784-1024-1024-10
  at 1, 2, 4, 8, 16 numba threads (BLAS held at 1 thread), with the parallel efficiency;
- ``directions``: ``directions=2`` on 784-1024-1024-10 at 1 thread and at every core;
- ``workers`` (when ``fastgc.check`` takes ``workers=``): a black-box numpy cost (the
  exercise-style forward of 784-256-128-10 through the loop engine) on a subset of 1,600
  coordinates with 1, 2, 4, 8, 16 worker processes;
- ``cold_start``: the first check in a fresh interpreter with an empty numba cache.

``--quick`` shrinks every size so the script can be tried on a laptop.
"""

from __future__ import annotations

import os

# BLAS on one thread, before numpy is imported: the scaling measured is fastgc's (numba
# threads, worker processes), not OpenBLAS's.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import inspect  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pty  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

QUICK = "--quick" in sys.argv
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _problem(dims, m=64, seed=0):
    import fastgc

    net = fastgc.MLP(dims, "relu", "ce")
    params = net.init(seed=0)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((dims[0], m))
    Y = np.eye(dims[-1])[:, rng.integers(0, dims[-1], m)]
    return net, params, X, Y, net.gradients(params, X, Y)


def fixed_cost():
    import fastgc
    from fastgc._exercise.original import (
        backward_propagation_n,
        exercise_data,
        forward_propagation_n,
    )
    from fastgc._network import NetworkState

    X, Y, params = exercise_data()
    _, cache = forward_propagation_n(X, Y, params)
    grads = backward_propagation_n(X, Y, cache, fixed=True)
    net = fastgc.MLP([4, 5, 3, 1], "relu", "bce")
    fastgc.check(net, grads, params, X, Y)
    theta = net.flatten(params)
    state = NetworkState(net, theta, X, Y)
    index = np.concatenate([np.arange(47), np.arange(47)])
    h = 6.06e-6 * np.maximum(1.0, np.abs(theta))
    step = np.concatenate([h, -h])
    n = 300 if QUICK else 3000

    def median(fn):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    return {"check_ms": 1e3 * median(lambda: fastgc.check(net, grads, params, X, Y)),
            "kernel_ms": 1e3 * median(lambda: state.coordinate_deltas(index, step)),
            "calls": n}


_TERMINAL_CHILD = """
import sys, time, numpy as np, fastgc
dims = {dims}
net = fastgc.MLP(dims, "relu", "ce"); params = net.init(seed=0)
rng = np.random.default_rng(0)
X = rng.standard_normal((dims[0], 64)); Y = np.eye(dims[-1])[:, rng.integers(0, dims[-1], 64)]
g = net.gradients(params, X, Y)
progress = {progress}
fastgc.check(net, g, params, X, Y, progress=progress, method="{method}")
times = []
for _ in range(3):
    t = time.perf_counter()
    r = fastgc.check(net, g, params, X, Y, progress=progress, method="{method}")
    times.append(time.perf_counter() - t)
assert r.passed
sys.stdout.write("RESULT %r %d %r\\n" % (sorted(times), r.nfev, r.difference))
"""


def _child(code, terminal):
    cmd = [sys.executable, "-c", code]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    if not terminal:
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        out = run.stdout + run.stderr
    else:
        master, slave = pty.openpty()
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        chunks = []

        def drain():
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        proc.wait(timeout=600)
        reader.join(timeout=10)
        os.close(master)
        out = b"".join(chunks).decode(errors="replace")
    line = [x for x in out.splitlines() if x.startswith("RESULT")]
    if not line:
        raise RuntimeError(out[-3000:])
    times, nfev, difference = line[-1].split(" ", 1)[1].rsplit(" ", 2)
    times = eval(times)  # our own child's repr of a list of floats
    return {"median_s": float(np.median(times)), "times": times, "nfev": int(nfev),
            "difference": float(difference)}


def terminal():
    dims = [20, 32, 16, 10] if QUICK else [784, 256, 128, 10]
    out = {}
    for method in ("central", "richardson"):
        rows = {}
        for name, progress, tty in [("pipe", None, False), ("tty", None, True),
                                    ("tty_bar", True, True)]:
            rows[name] = _child(_TERMINAL_CHILD.format(dims=dims, progress=progress,
                                                       method=method), tty)
        rows["tty_over_pipe"] = rows["tty"]["median_s"] / rows["pipe"]["median_s"]
        rows["tty_bar_over_pipe"] = rows["tty_bar"]["median_s"] / rows["pipe"]["median_s"]
        rows["same_difference"] = len({rows[k]["difference"]
                                       for k in ("pipe", "tty", "tty_bar")}) == 1
        out[method] = rows
    return out


def threads():
    import numba

    import fastgc

    counts = [c for c in (1, 2, 4, 8, 16) if c <= numba.config.NUMBA_NUM_THREADS]
    out = {}
    nets = [[20, 64, 32, 10], [20, 128, 128, 10]] if QUICK else [[784, 256, 128, 10],
                                                                 [784, 1024, 1024, 10]]
    for dims in nets:
        net, params, X, Y, g = _problem(dims)
        fastgc.check(net, g, params, X, Y)  # compile / load
        rows = []
        for c in counts:
            numba.set_num_threads(c)
            times = []
            for _ in range(2 if dims[1] > 512 else 3):
                t = time.perf_counter()
                r = fastgc.check(net, g, params, X, Y, progress=False)
                times.append(time.perf_counter() - t)
            rows.append({"threads": c, "median_s": float(np.median(times)), "passed": r.passed,
                         "difference": r.difference})
        base = rows[0]["median_s"]
        for row in rows:
            row["speedup"] = base / row["median_s"]
            row["efficiency"] = row["speedup"] / row["threads"]
        out["-".join(map(str, dims))] = rows
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return out


def direction_products(dims, m=64, k=2, repeat=5):
    """Seconds and flops of the matrix products a ``directions=k`` check cannot avoid: for
    each block's ``k`` directions at 4 steps (+-h, +-h/2), ``dW_l A_{l-1}`` (weights) and then
    ``W_t dA_{t-1}`` for every later layer, each of shape (n_t, m) as the engine computes them.
    The floor that "within Nx of its arithmetic" is measured against, timed in this process
    (so on the same load); median of ``repeat``."""
    rng = np.random.default_rng(0)
    L = len(dims) - 1
    W = [None] + [rng.standard_normal((dims[t], dims[t - 1])) for t in range(1, L + 1)]
    A = [rng.standard_normal((n, m)) for n in dims]
    products = []  # (left, right) pairs of one evaluation of every block
    for layer in range(1, L + 1):
        for weight in (True, False):
            if weight:
                products.append((W[layer], A[layer - 1]))  # dW_l A_{l-1}: same shapes as W_l
            products.extend((W[t], A[t - 1]) for t in range(layer + 1, L + 1))
    flops = 4 * k * sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in products)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(4 * k):
            for a, b in products:
                a @ b
        times.append(time.perf_counter() - t)
    return float(np.median(times)), flops


def directions():
    import numba

    import fastgc

    dims = [20, 128, 128, 10] if QUICK else [784, 1024, 1024, 10]
    net, params, X, Y, g = _problem(dims)
    fastgc.check(net, g, params, X, Y, directions=2)
    rows = []
    for c in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(c)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            r = fastgc.check(net, g, params, X, Y, directions=2)
            times.append(time.perf_counter() - t)
        products_s, flops = direction_products(dims)
        rows.append({"threads": c, "median_s": float(np.median(times)), "nfev": r.nfev,
                     "products_s": products_s, "products_gflop": flops / 1e9,
                     "times_products": float(np.median(times)) / products_s})
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return rows


def workers_scaling():
    import fastgc

    if "workers" not in inspect.signature(fastgc.check).parameters:
        return {"skipped": "fastgc.check has no workers= argument in this checkout"}
    dims = [20, 64, 32, 10] if QUICK else [784, 256, 128, 10]
    net, params, X, Y, g = _problem(dims)

    def cost(p, X, Y):  # a black box for fastgc: plain numpy, the loop engine
        return net(p, X, Y)

    n = 200 if QUICK else 1600
    rows = []
    reference = None
    for w in (1, 2, 4, 8, 16):
        if w > (os.cpu_count() or 1):
            break
        options = dict(subset=n, engine="loop", workers=w, progress=False)
        fastgc.check(cost, g, params, X, Y, **options)  # start the pool, warm the workers
        t = time.perf_counter()
        r = fastgc.check(cost, g, params, X, Y, **options)
        seconds = time.perf_counter() - t
        if reference is None:
            reference = r
        rows.append({"workers": w, "seconds": seconds, "identical": r == reference,
                     "nfev": r.nfev})
    base = rows[0]["seconds"]
    for row in rows:
        row["speedup"] = base / row["seconds"]
        row["efficiency"] = row["speedup"] / row["workers"]
    return rows


def cold_start():
    code = ("import time; t = time.perf_counter(); import numpy as np, fastgc\n"
            "from fastgc._exercise.original import exercise_data, forward_propagation_n, "
            "backward_propagation_n\n"
            "X, Y, p = exercise_data(); _, c = forward_propagation_n(X, Y, p)\n"
            "g = backward_propagation_n(X, Y, c, fixed=True)\n"
            "r = fastgc.check(fastgc.MLP([4, 5, 3, 1], 'relu', 'bce'), g, p, X, Y)\n"
            "print('SECONDS', time.perf_counter() - t, r.passed)")
    rows = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=os.pathsep.join(
            p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
        for name in ("cold", "warm"):
            run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env=env, timeout=600)
            line = [x for x in run.stdout.splitlines() if x.startswith("SECONDS")]
            rows[name + "_s"] = float(line[0].split()[1]) if line else run.stderr[-2000:]
    return rows


def main():
    out_path = [a for a in sys.argv[1:] if not a.startswith("--")][0]
    import numba

    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": sys.version.split()[0], "numpy": np.__version__,
                          "numba": numba.__version__, "numba_threads":
                          numba.config.NUMBA_NUM_THREADS, "quick": QUICK}}
    for name, fn in [("cold_start", cold_start), ("fixed_cost", fixed_cost),
                     ("terminal", terminal), ("threads", threads),
                     ("directions", directions), ("workers", workers_scaling)]:
        t = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as exc:  # one failed part must not lose the others
            report[name] = {"error": repr(exc)[:2000]}
        report[name + "_wall_s"] = time.perf_counter() - t
        print(name, json.dumps(report[name])[:600], flush=True)
        with open(out_path, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
