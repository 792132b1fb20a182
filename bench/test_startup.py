"""pytest-benchmark: start-up costs, each in fresh subprocesses.

``import fastgc`` (timed by pytest-benchmark), and, in ``extra_info``, the cold JIT compile
(empty ``NUMBA_CACHE_DIR``) and the first check in a fresh process with a warm cache, both
measured by ``bench.harness.startup_rows``; and ``fastgc demo`` on an empty
``NUMBA_CACHE_DIR`` (issue 21's target: at most 2 s on 2 cores), which runs the exercise
network's kernels on the numpy path, its printed numbers compared with the compiled path's.
"""

import os
import re
import resource
import subprocess
import sys
import tempfile
import time

from bench import harness as _bench


def test_import_fastgc(benchmark):
    env = _bench.subprocess_env()
    code = "import sys, fastgc; assert 'numba' not in sys.modules"
    benchmark.group = "startup"
    benchmark.pedantic(subprocess.run, args=([sys.executable, "-c", code],),
                       kwargs={"env": env, "check": True}, rounds=5, iterations=1)


def test_jit_compile_and_first_check(benchmark):
    benchmark.group = "startup"
    rows = benchmark.pedantic(_bench.startup_rows, kwargs={"repeat": 1}, rounds=1,
                              iterations=1)
    by_name = {r["name"]: r["seconds"] for r in rows}
    benchmark.extra_info.update(by_name)
    first = next(s for name, s in by_name.items() if name.startswith("first check"))
    assert first > 0


def _demo(cache_dir, jit):
    env = dict(_bench.subprocess_env(cache_dir), FASTGC_JIT=jit)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "fastgc", "demo"], env=env, check=True,
                         capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return out, wall, cpu


def _numbers(text):
    """The demo's output without timings, path words and the compile remark."""
    text = re.sub(r"\d+(\.\d+)?\s*(ms|s)\b|x\s*\d+\.\d", "<t>", text)
    text = text.replace(" (numpy, no JIT)", "")
    return [line for line in text.splitlines() if "compiling fastgc's numba" not in line]


def test_cold_demo(benchmark, capsys):
    benchmark.group = "startup"
    with tempfile.TemporaryDirectory() as tmp:
        dirs = iter(os.path.join(tmp, str(i)) for i in range(100))

        def cold():
            path = next(dirs)
            os.mkdir(path)
            return _demo(path, "auto")

        out, wall, cpu = benchmark.pedantic(cold, rounds=1, iterations=1)
        assert "(numpy, no JIT)" in out and "All verdicts as expected." in out
        compiled_dir = next(dirs)
        os.mkdir(compiled_dir)
        compiled, compiled_wall, _ = _demo(compiled_dir, "always")  # compiles the kernels
    assert _numbers(out) == _numbers(compiled)
    benchmark.extra_info.update(wall_s=wall, cpu_s=cpu, compiled_cold_wall_s=compiled_wall)
    with capsys.disabled():
        print(f"\n  fastgc demo, empty NUMBA_CACHE_DIR: {wall:.2f} s wall, {cpu:.2f} s CPU "
              f"(numpy path); compiled path, empty cache: {compiled_wall:.1f} s; printed "
              "numbers identical")

