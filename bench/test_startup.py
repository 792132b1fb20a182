"""pytest-benchmark: start-up costs, each in fresh subprocesses.

``import fastgc`` (timed by pytest-benchmark), and, in ``extra_info``, the cold JIT compile
(empty ``NUMBA_CACHE_DIR``) and the first check in a fresh process with a warm cache, both
measured by ``bench.harness.startup_rows``.
"""

import subprocess
import sys

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
