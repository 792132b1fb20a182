"""pytest-benchmark: fastgc.torch / fastgc.jax against the frameworks' own checkers.

Run with ``python -m pytest bench/test_frameworks.py -s`` (outside the default test run; it
needs torch and jax). Side by side, per case (a hand-written layer norm and softmax attention
as a torch ``autograd.Function``, a layer norm as a jax ``custom_vjp``) at two sizes, on the
right backward and on one with a 1e-3 error on one entry, in float64 and float32:

- ``fastgc`` (the full check; float32 with its float64 reference check), ``fastgc-dir``
  (``directions=2``),
- ``gradcheck`` and ``gradcheck-fast`` (``torch.autograd.gradcheck``, slow and fast mode),
- ``check_grads`` (``jax.test_util.check_grads``, reverse mode, order 1),
- ``forwards`` (torch only): the batched forward passes the full check needs, alone
  (``torch.func.vmap`` over as many points as fastgc evaluated, in fastgc's chunk size).

Each row records the verdict (``extra_info["passed"]``), the first (cold) call's time
(``cold_seconds``: jit compiles, caches) and the peak memory above the process's resident
set during that call (``extra_info["peak_mib"]``, sampled every 2 ms with psutil;
tracemalloc's Python-heap peak where psutil is missing). At these sizes most peaks are
below what resident-set sampling resolves (the allocator reuses freed memory);
``torch.autograd.gradcheck`` holds a dense numerical and analytical Jacobian,
``2 * 8 * inputs * outputs`` bytes, which is what grows with size. At the end a table of
medians, with each time and memory as a ratio to fastgc's full check, is printed. jax rows
include jit compiles: every check traces new closures (XLA's cache makes later ones cheaper).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
ft = pytest.importorskip("fastgc.torch")
fj = pytest.importorskip("fastgc.jax")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "frontends"))
import jax_ops  # noqa: E402
import torch_ops  # noqa: E402
from jax import test_util as jtu  # noqa: E402
from torch.autograd.gradcheck import GradcheckError  # noqa: E402

ROUNDS = int(os.environ.get("FASTGC_BENCH_ROUNDS", "2"))
SIZES = {"small": (4, 16), "medium": (8, 64)}  # (rows, features) of the layer norm input
ATTENTION = {"small": (6, 8), "medium": (16, 16)}  # (tokens, head dim)
ROWS: list[dict] = []


# -- peak memory -----------------------------------------------------------------------------
def _peak_mib(fn):
    """Peak resident memory above the start while ``fn`` runs, in MiB."""
    try:
        import psutil
    except ImportError:  # the Python heap only: misses torch's and XLA's own allocations
        import tracemalloc

        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak / 2**20
    proc = psutil.Process()
    start = proc.memory_info().rss
    peak = [start]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    return (peak[0] - start) / 2**20


# -- the cases -------------------------------------------------------------------------------
def _torch_inputs(shapes, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_(True)
                 for s in shapes)


def _case(name, size, bug, dtype):
    """``(framework, fn, inputs)``."""
    if name == "torch-layernorm":
        n, d = SIZES[size]
        return "torch", torch_ops.make_layernorm(bug).apply, _torch_inputs(
            [(n, d), (d,), (d,)], getattr(torch, dtype))
    if name == "torch-attention":
        t, d = ATTENTION[size]
        op = torch_ops.make_attention("entry 1e-3" if bug else None)
        return "torch", op.apply, _torch_inputs([(t, d)] * 3, getattr(torch, dtype))
    n, d = SIZES[size]
    rng = np.random.default_rng(0)
    return "jax", jax_ops.make_layernorm(bug), tuple(
        rng.standard_normal(s).astype(dtype) for s in [(n, d), (d,), (d,)])


def _contenders(framework):
    if framework == "torch":
        return ["fastgc", "fastgc-dir", "gradcheck", "gradcheck-fast", "forwards"]
    return ["fastgc", "fastgc-dir", "check_grads"]


def _x64(dtype):
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()


def _runner(contender, framework, fn, inputs, dtype):
    """A call returning the verdict (True: passed)."""
    if contender.startswith("fastgc"):
        options = {"directions": 2} if contender == "fastgc-dir" else {}
        if framework == "torch":
            return lambda: ft.check(fn, *inputs, **options).passed

        def run():
            with _x64(dtype):
                return fj.check_vjp(fn, *inputs, **options).passed

        return run
    if contender.startswith("gradcheck"):
        def run():
            try:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # its float32 warning
                    return torch.autograd.gradcheck(fn, inputs,
                                                    fast_mode=contender.endswith("fast"))
            except GradcheckError:
                return False

        return run
    if contender == "check_grads":
        def run():
            with _x64(dtype):
                try:
                    jtu.check_grads(fn, inputs, order=1, modes=("rev",))
                    return True
                except AssertionError:
                    return False

        return run
    # forwards: the full check's evaluations, batched as fastgc batches them, and nothing else
    result = ft.check(fn, *inputs)
    points = result.nfev
    base = [x.detach() for x in inputs]
    chunk = 256

    def run():
        from torch.func import vmap

        with torch.no_grad():
            for start in range(0, points, chunk):
                m = min(chunk, points - start)
                stacks = [x.unsqueeze(0).repeat((m,) + (1,) * x.ndim) for x in base]
                vmap(lambda *v: fn(*v).sum())(*stacks)
        return None

    return run


CASES = [(name, size, bug, dtype, contender)
         for name in ("torch-layernorm", "torch-attention", "jax-layernorm")
         for size in (SIZES if name != "torch-attention" else ["small"])
         for bug, dtype in ((None, "float64"), ("entry 1e-3", "float64"), (None, "float32"))
         for contender in _contenders(name.split("-")[0])
         # the float32 column is about verdicts; the slow checkers' times are in float64
         if not (dtype == "float32" and contender == "forwards")]


def _id(case):
    name, size, bug, dtype, contender = case
    return f"{name}-{size}-{'bug' if bug else 'right'}-{dtype}-{contender}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_frameworks(benchmark, case):
    name, size, bug, dtype, contender = case
    framework, fn, inputs = _case(name, size, bug, dtype)
    run = _runner(contender, framework, fn, inputs, dtype)
    verdict = []
    # the warm-up (jit, caches) gives the verdict and the peak memory, then the timed rounds
    # (one where the warm-up took over half a second: the whole file stays near 2 minutes)
    start = time.perf_counter()
    peak = _peak_mib(lambda: verdict.append(run()))
    cold = time.perf_counter() - start
    passed = verdict[0]
    benchmark.group = f"{name} {size} {'bug' if bug else 'right'} {dtype}"
    rounds = ROUNDS if cold < 0.5 else 1
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(passed=passed, peak_mib=peak, cold_seconds=cold)
    median = benchmark.stats.stats.median if benchmark.stats is not None else float("nan")
    ROWS.append(dict(case=f"{name} {size}", version=f"{'1e-3 bug' if bug else 'right'} {dtype}",
                     contender=contender, seconds=median, cold=cold, peak_mib=peak,
                     passed=passed))


@pytest.fixture(scope="module", autouse=True)
def _table(request):
    yield
    if not ROWS:
        return
    lines = [f"{'case':22} {'version':18} {'contender':15} {'cold s':>7} {'median s':>9} "
             f"{'x fastgc':>9} {'peak MiB':>9} {'x fastgc':>9}  verdict"]
    full = {(r["case"], r["version"]): r for r in ROWS if r["contender"] == "fastgc"}
    for r in ROWS:
        ref = full.get((r["case"], r["version"]))
        t = r["seconds"] / ref["seconds"] if ref else float("nan")
        m = (r["peak_mib"] / ref["peak_mib"] if ref and ref["peak_mib"] > 0.5
             else float("nan"))
        verdict = "-" if r["passed"] is None else ("pass" if r["passed"] else "FAIL")
        lines.append(f"{r['case']:22} {r['version']:18} {r['contender']:15} "
                     f"{r['cold']:7.3f} {r['seconds']:9.3f} {t:9.2f} {r['peak_mib']:9.1f} "
                     f"{m:9.2f}  {verdict}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))
    if os.environ.get("FASTGC_BENCH_TABLE"):
        Path(os.environ["FASTGC_BENCH_TABLE"]).write_text("\n".join(lines) + "\n")
