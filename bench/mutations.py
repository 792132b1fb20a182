"""Mutation check: does the test suite notice plausible bugs in the verdict rules?

Each mutation is ``(name, file, old text, new text)``: the old text must occur exactly once in
the file, or the mutation is reported as not applicable (the code moved; update the mutation
instead of letting it pass silently). For each mutation the script copies the working tree to a
temporary directory once, applies the mutation there (never to this checkout), runs a chosen set
of test files with ``pytest -x`` against the copy, restores the file, and prints a table:
mutation -> the first failing test ("killed by"), or SURVIVED.

Tests that pin a constant (``threshold == 1e-8``) are deselected, so a kill is always by a test
of behaviour.

    python bench/mutations.py                 # every mutation, the fast subset, -x
    python bench/mutations.py --all-failures  # every failing test per mutation (slower)
    python bench/mutations.py --tests tests/  # the whole suite
    python bench/mutations.py --only richardson-floor

Exit status 1 when a mutation survives or does not apply, 0 otherwise. Run from the
repository root, in the environment the tests run in (``pip install -e ".[test]"``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (name, file, old, new): each a bug someone could plausibly write. Match on current main.
MUTATIONS = [
    ("central-threshold 1e-6 -> 3e-5", "fastgc/_scheme.py",
     '    name = "central"\n    description = "central differences"\n'
     "    default_threshold = 1e-6\n",
     '    name = "central"\n    description = "central differences"\n'
     "    default_threshold = 3e-5\n"),
    ("complex-floor 1e-11 -> 1e-7", "fastgc/_scheme.py",
     "    default_threshold = 1e-11\n", "    default_threshold = 1e-7\n"),
    ("richardson-floor 1e-8 -> 1e-7", "fastgc/_scheme.py",
     "    default_threshold = 1e-8\n", "    default_threshold = 1e-7\n"),
    ("directions without two-step extrapolation", "fastgc/_scheme.py",
     "    numeric = (4 * fine - coarse) / 3\n", "    numeric = fine\n"),
    ("one-sided judgement without extrapolation", "fastgc/_kinks.py",
     "        value = 2 * fine - coarse\n", "        value = fine\n"),
    ("network kink mask +h side only", "fastgc/_kinks.py",
     "        kinked[sel] = exact | objective.kink_mask(index[sel], -h0[sel])\n",
     "        kinked[sel] = exact\n"),
    ("directions factor not confirmed", "fastgc/_driver.py",
     "        text = diagnose_factor(block, g, a, min_items=2)\n"
     "        if text is None:\n            return None\n",
     "        return diagnose_factor(block, g, a, min_items=2)\n"),
]

# Fast files first: with -x the first failure ends the run.
DEFAULT_TESTS = [
    "tests/test_verdict_floors.py",
    "tests/test_kink_judgement.py",
    "tests/test_methods.py",
    "tests/test_network_directions_complex.py",
    "tests/test_modes.py",
]

# Tests that assert a constant's value: a kill by them alone does not count.
CONSTANT_PINS = [
    "tests/test_methods.py::test_richardson_counts_and_error_estimates",
]

# Tests that fail on main itself, whatever the mutation (deselected so that the baseline
# passes; each with why). Remove an entry when its test is fixed.
KNOWN_FAILING = [
    # one-direction batches differ from the batched GEMM by 2.8e-17 > atol = 1e-3 x noise
    "tests/test_network_directions_complex.py::test_batching_threads_and_order",
]

_IGNORE = shutil.ignore_patterns(".git", ".pytest_cache", "*.egg-info", ".ruff_cache",
                                 ".hypothesis")


def _copy_tree(dst: Path) -> Path:
    """The working tree (with numba's in-tree caches, so kernels are not compiled again)."""
    copy = dst / "repo"
    shutil.copytree(ROOT, copy, ignore=_IGNORE, copy_function=shutil.copy2)
    return copy


def _env(copy: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _pytest(copy: Path, tests: list[str], first: bool, timeout: float) -> tuple[int, list[str],
                                                                                  float]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
           "--no-header", *tests]
    if first:
        cmd.append("-x")
    for pin in CONSTANT_PINS + KNOWN_FAILING:
        cmd += ["--deselect", pin]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, ["(timed out)"], time.perf_counter() - start
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, flags=re.M)
    if proc.returncode not in (0, 1) and not failed:
        failed = [f"(pytest exit {proc.returncode}: {proc.stdout[-300:]}{proc.stderr[-300:]})"]
    return proc.returncode, failed, time.perf_counter() - start


def _check_copy_is_imported(copy: Path) -> None:
    out = subprocess.run([sys.executable, "-c", "import fastgc, sys; print(fastgc.__file__)"],
                         cwd=copy, env=_env(copy), capture_output=True, text=True, check=True)
    where = Path(out.stdout.strip()).resolve()
    if copy.resolve() not in where.parents:
        raise SystemExit(f"the tests would import fastgc from {where}, not from the copy {copy}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", nargs="+", default=DEFAULT_TESTS,
                        help="test files or node ids to run per mutation")
    parser.add_argument("--all-failures", action="store_true",
                        help="run the tests to the end and list every failing test")
    parser.add_argument("--only", help="run only the mutations whose name contains this")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds per pytest run (default 900)")
    args = parser.parse_args(argv)

    mutations = [m for m in MUTATIONS if not args.only or args.only in m[0]]
    rows, bad = [], 0
    with tempfile.TemporaryDirectory(prefix="fastgc-mutations-") as tmp:
        copy = _copy_tree(Path(tmp))
        _check_copy_is_imported(copy)
        rc, failed, seconds = _pytest(copy, args.tests, True, args.timeout)
        print(f"baseline: {'passes' if rc == 0 else 'FAILS: ' + ', '.join(failed)} "
              f"({seconds:.0f} s)", flush=True)
        if rc != 0:
            return 1
        for name, rel, old, new in mutations:
            path = copy / rel
            text = path.read_text()
            count = text.count(old)
            if count != 1:
                why = "text not found" if count == 0 else f"text found {count} times"
                rows.append((name, rel, f"NOT APPLIED ({why}: update the mutation)", 0.0))
                bad += 1
                print(f"{name}: {rows[-1][2]}", flush=True)
                continue
            path.write_text(text.replace(old, new))
            try:
                rc, failed, seconds = _pytest(copy, args.tests, not args.all_failures,
                                              args.timeout)
            finally:
                path.write_text(text)
            if failed:
                verdict = "killed by " + "; ".join(failed)
            else:
                verdict = "SURVIVED"
                bad += 1
            rows.append((name, rel, verdict, seconds))
            print(f"{name}: {verdict} ({seconds:.0f} s)", flush=True)

    print()
    print("| mutation | file | result | seconds |")
    print("|---|---|---|---|")
    for name, rel, verdict, seconds in rows:
        print(f"| {name} | {rel} | {verdict} | {seconds:.0f} |")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
