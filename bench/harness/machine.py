"""What the machine can do and what start-up costs: the context every bench number needs.

The float64 matmul rate (DGEMM) and the flop floor of a full check derived from it; the CPU,
BLAS and thread counts; and the start-up rows (import, cold JIT compile, first check in a fresh
process), which are measured in subprocesses so that this process's state cannot hide them.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

__all__ = ["dgemm_gflops", "flop_floor_seconds", "machine_info", "startup_rows",
           "subprocess_env", "useful_multiply_adds"]


# ---- flop floor ---------------------------------------------------------------------------


def useful_multiply_adds(dims, m) -> int:
    """Multiply-adds a full central-difference check of a dense network cannot avoid.

    For each parameter of layer ``l`` (weights and biases): the rank-1 update of the next
    layer, ``n_{l+1} m``, plus the later layers' products ``sum_{t > l+1} n_t n_{t-1} m``;
    times 2 for the +h and -h points.

    Parameters
    ----------
    dims : sequence of int
        ``(n0, ..., nL)``.
    m : int
        Examples.

    Returns
    -------
    int
    """
    L = len(dims) - 1
    total = 0
    for layer in range(1, L + 1):
        count = dims[layer] * dims[layer - 1] + dims[layer]
        per = dims[layer + 1] * m if layer < L else 0
        per += sum(dims[t] * dims[t - 1] * m for t in range(layer + 2, L + 1))
        total += count * per
    return 2 * total


def flop_floor_seconds(dims, m, gflops) -> float:
    """``2 x useful_multiply_adds / (DGEMM rate)``: the time of a check at the matmul rate.

    Parameters
    ----------
    dims : sequence of int
    m : int
    gflops : float
        Measured float64 matrix-multiply rate, GFLOP/s (2 flops per multiply-add).

    Returns
    -------
    float
        Seconds.
    """
    return 2.0 * useful_multiply_adds(dims, m) / (gflops * 1e9)


# ---- the machine ----------------------------------------------------------------------

_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_DGEMM = """
import time, numpy as np
rng = np.random.default_rng(0)
A = rng.standard_normal((2000, 2000)); B = rng.standard_normal((2000, 2000))
np.matmul(A, B)
best = min((lambda s: (np.matmul(A, B), time.perf_counter() - s)[1])(time.perf_counter())
           for _ in range(5))
print(2 * 2000 ** 3 / best / 1e9)
"""


def dgemm_gflops(threads: int | None = None) -> float:
    """Float64 matmul rate (GFLOP/s) of a 2000 x 2000 ``np.matmul``, best of 5.

    Measured in a subprocess so that this process's BLAS thread pool is not woken: on a small
    VM a multithreaded OpenBLAS made small matmuls erratically 100-400x slower after a large
    one, and the bench pins the timed process to one thread (``fastgc bench --blas-threads``).

    Parameters
    ----------
    threads : int, optional
        ``OPENBLAS_NUM_THREADS`` in the subprocess (None: BLAS default, every core).

    Returns
    -------
    float
    """
    env = dict(os.environ)
    for var in _BLAS_VARS:
        env.pop(var, None)
    if threads is not None:
        for var in _BLAS_VARS:
            env[var] = str(threads)
    out = subprocess.run([sys.executable, "-c", _DGEMM], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])



def machine_info() -> dict:
    """CPU model, core count, Python, numpy and its BLAS, numba threads.

    Returns
    -------
    dict
        ``cpu``, ``cores``, ``python``, ``numpy``, ``blas``, ``blas_threads``, and ``numba``,
        ``numba_threads``.
    """
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "unknown"
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{deps.get('name', '?')} {deps.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - show_config's layout varies across numpy versions
        pass
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
    }
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return info


# ---- startup rows (subprocesses) ----------------------------------------------------------

_FIRST_CHECK = """
import time
t0 = time.perf_counter()
import fastgc
from fastgc._exercise import original as ref
X, Y, params = ref.exercise_data()
net = fastgc.MLP([4, 5, 3, 1])
grads = net.gradients(params, X, Y)
t1 = time.perf_counter()
assert fastgc.check(net, grads, params, X, Y).passed
t2 = time.perf_counter()
for _ in range(20):
    fastgc.check(net, grads, params, X, Y)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, (t3 - t2) / 20)
"""


def subprocess_env(cache_dir=None) -> dict:
    """This process's environment with the fastgc being timed first on ``PYTHONPATH``.

    A source checkout's subprocesses then time this fastgc, not another installed copy.

    Parameters
    ----------
    cache_dir : str, optional
        ``NUMBA_CACHE_DIR`` for the subprocess (an empty folder: a cold JIT compile).

    Returns
    -------
    dict
    """
    env = dict(os.environ)
    # bench/harness/machine.py -> the folder that holds the fastgc package
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    return env


def _first_check(cache_dir, jit="always"):
    # FASTGC_JIT=always: the compiled path even for this small network (timing the compile
    # and the cache load); "auto" takes the numpy path on an empty cache.
    env = dict(subprocess_env(cache_dir), FASTGC_JIT=jit)
    out = subprocess.run([sys.executable, "-c", _FIRST_CHECK], env=env,
                         capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def startup_rows(repeat: int = 3) -> list[dict]:
    """Import time, cold JIT compile, and the first check with a warm cache (subprocesses).

    Parameters
    ----------
    repeat : int
        Runs of each (median).

    Returns
    -------
    list of dict
        ``{"name", "seconds", "note"}``.
    """
    env = subprocess_env()
    probe = "import sys, fastgc; assert 'numba' not in sys.modules and 'scipy' not in sys.modules"

    def wall(code):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return time.perf_counter() - start

    bare = float(np.median([wall("pass") for _ in range(repeat)]))
    imp = float(np.median([wall(probe) for _ in range(repeat)]))
    cold, cold_numpy, warm_first, warm_each = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            empty = os.path.join(tmp, f"cold{r}")
            os.mkdir(empty)
            _, first, each = _first_check(empty, jit="auto")
            cold_numpy.append(first)
            _, first, each = _first_check(empty)
            cold.append(first - each)
        cache = os.path.join(tmp, "warm")
        os.mkdir(cache)
        _first_check(cache)  # fills the cache
        for _ in range(repeat):
            _, first, each = _first_check(cache)
            warm_first.append(first - each)
            warm_each.append(each)
    return [
        {"name": "python -c pass", "seconds": bare, "note": "interpreter start, for scale"},
        {"name": "python -c 'import fastgc'", "seconds": imp,
         "note": f"{imp - bare:+.3f} s over bare python; numba and scipy not imported"},
        {"name": "JIT compile, cold (empty NUMBA_CACHE_DIR)", "seconds": float(np.median(cold)),
         "note": "first check minus a warm check, exercise network, fresh process, "
                 "FASTGC_JIT=always"},
        {"name": "first check, empty cache, fresh process (numpy path)",
         "seconds": float(np.median(cold_numpy)),
         "note": "FASTGC_JIT=auto: a small network on a machine that never compiled the "
                 "kernels runs them interpreted, no JIT"},
        {"name": "first check, warm cache, fresh process", "seconds":
         float(np.median(warm_first)),
         "note": "added over a warm check: import numba/scipy + cache load"},
        {"name": "warm check (exercise network)", "seconds": float(np.median(warm_each)),
         "note": "mean of 20, same process"},
    ]
