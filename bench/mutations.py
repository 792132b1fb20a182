"""Mutation check: does the test suite notice plausible bugs in the library?

Each mutation is a bug someone could plausibly write (an off-by-one, a dropped factor, a
flipped comparison, a forgotten case), given as ``Mutation(name, file, old, new, tests)``:
``old`` must occur exactly once in ``file`` (else the mutation is reported NOT APPLIED: the
code moved, so update the mutation instead of letting it pass silently), and ``tests`` are the
few test files (or node ids) that guard it, fastest first. Nothing in this checkout is ever
written: the working tree is copied to a temporary directory once, and for each mutation the
file there is saved to a temporary file, mutated, the guard tests run with ``pytest -x``
against the copy, and the file restored from the saved copy (in a ``finally``: on a failure,
an exception or Ctrl-C alike; the temporary directory is removed on exit).

A mutation is *killed* when one of its guard tests fails (a test failure, not an error: a
mutation that breaks an import is no plausible bug). Tests that pin a constant
(``threshold == 1e-8``) are deselected, so a kill is always by a test of behaviour. Before the
mutations, the union of the guard tests runs once on the unmutated copy (the baseline): a
mutation whose guard file fails there is reported NOT RUN (it would be "killed" by a test that
fails anyway), and the others run as usual.

    python bench/mutations.py                  # every mutation, its guards, -x (~3 min, 2 cores)
    python bench/mutations.py --only localise  # the mutations whose name or file contains this
    python bench/mutations.py --list           # the table, without running anything
    python bench/mutations.py --all-failures   # every failing guard test per mutation (slower)
    python bench/mutations.py --tests tests/   # the whole suite for every mutation (an hour)

It prints one line per mutation as it goes (``name: killed by <test> (4 s)``), then a markdown
table: mutation | file | result | seconds. Exit status 0 when every mutation applies and is
killed, 1 otherwise. Run from the repository root, in the environment the tests run in
(``pip install -e ".[test]"``). Not part of the default ``pytest`` run (it takes minutes);
``tests/system/test_mutations_table.py`` checks only that the table is well formed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Mutation(NamedTuple):
    """One plausible bug: replace ``old`` (occurring once in ``file``) by ``new``; ``tests``
    are the guard test files or node ids that must notice it."""

    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


_FLOORS = "tests/core/test_verdict_floors.py"
_KINKS = "tests/core/test_kink_judgement.py"
_LOCALISE = "tests/core/test_localise.py"
_MODES = "tests/core/test_plan.py"
_DIAGNOSIS = "tests/core/test_diagnosis.py"
_CHECK = "tests/frontends/test_check.py"

MUTATIONS = [
    # -- schemes: the verdict's thresholds and floors ------------------------------------------
    Mutation("central threshold 1e-6 -> 3e-5", "fastgc/_core/schemes.py",
             '    name = "central"\n    description = "central differences"\n'
             "    default_threshold = 1e-6\n",
             '    name = "central"\n    description = "central differences"\n'
             "    default_threshold = 3e-5\n", (_FLOORS,)),
    Mutation("complex floor 1e-11 -> 1e-7", "fastgc/_core/schemes.py",
             "    default_threshold = 1e-11\n", "    default_threshold = 1e-7\n",
             (_FLOORS,)),
    Mutation("richardson floor 1e-8 -> 1e-7", "fastgc/_core/schemes.py",
             "    default_threshold = 1e-8\n", "    default_threshold = 1e-7\n",
             (_FLOORS,)),
    # -- estimators ----------------------------------------------------------------------------
    Mutation("directions without the two-step extrapolation", "fastgc/_core/estimators.py",
             "    numeric = (4 * fine - coarse) / 3\n", "    numeric = fine\n",
             (_FLOORS, "tests/network/test_network_directions_complex.py")),
    Mutation("central difference over h, not 2h", "fastgc/_core/estimators.py",
             "    numeric = (d.values[:n] - d.values[n:]) / (2 * step)\n"
             "    return Estimate(numeric, (d.noise[:n] + d.noise[n:]) / (2 * step), step,\n"
             "                    forward=",
             "    numeric = (d.values[:n] - d.values[n:]) / step\n"
             "    return Estimate(numeric, (d.noise[:n] + d.noise[n:]) / (2 * step), step,\n"
             "                    forward=", (_CHECK,)),
    # -- kinks ---------------------------------------------------------------------------------
    Mutation("one-sided judgement without extrapolation", "fastgc/_core/kinks.py",
             "        value = 2 * fine - coarse\n", "        value = fine\n", (_KINKS,)),
    Mutation("network kink mask on the +h side only", "fastgc/_core/kinks.py",
             "        kinked[sel] = exact | objective.kink_mask(index[sel], -h0[sel])\n",
             "        kinked[sel] = exact\n", (_KINKS,)),
    # -- verdict -------------------------------------------------------------------------------
    Mutation("kink interval: either bound instead of both", "fastgc/_core/verdict.py",
             "    return (g >= low - slack) & (g <= high + slack)\n",
             "    return (g >= low - slack) | (g <= high + slack)\n", (_KINKS,)),
    Mutation("relative difference over ||g|| only", "fastgc/_core/verdict.py",
             "    denominator = np.linalg.norm(g) + np.linalg.norm(a)\n",
             "    denominator = np.linalg.norm(g)\n", ("tests/core/test_result.py",)),
    # -- driver --------------------------------------------------------------------------------
    Mutation("directions: a factor reported without confirmation", "fastgc/_core/driver.py",
             "        text = diagnose_factor(block, g, a, min_items=2)\n"
             "        if text is None:\n            return None\n",
             "        return diagnose_factor(block, g, a, min_items=2)\n", (_MODES,)),
    Mutation("localisation judged at the verdict threshold", "fastgc/_core/driver.py",
             "        local_threshold = min(p.threshold, relative_difference(g, a) / 10)\n",
             "        local_threshold = p.threshold\n", (_LOCALISE,)),
    Mutation("result.difference over kinked coordinates too", "fastgc/_core/driver.py",
             "        difference=relative_difference(measured.analytic[smooth], "
             "measured.numeric[smooth]),\n",
             "        difference=relative_difference(measured.analytic, measured.numeric),\n",
             (_KINKS,)),
    # -- localise ------------------------------------------------------------------------------
    Mutation("each wrong row's bisection gets the whole budget", "fastgc/_core/localise.py",
             "                              [np.array([i]) for i in row], threshold, eps, rng,\n"
             "                              budget - spent)\n",
             "                              [np.array([i]) for i in row], threshold, eps, rng,\n"
             "                              budget)\n", (_LOCALISE,)),
    Mutation("2 evaluations reserved per half, not 4", "fastgc/_core/localise.py",
             "        cost = TWO_STEP_NFEV * len(halves)\n", "        cost = 2 * len(halves)\n",
             (_LOCALISE,)),
    Mutation("4 failing rows already called spread out", "fastgc/_core/localise.py",
             "        if len(level) > MAX_FAILING_GROUPS:\n",
             "        if len(level) >= MAX_FAILING_GROUPS:\n", (_LOCALISE,)),
    # -- noise ---------------------------------------------------------------------------------
    Mutation("nondeterminism tolerance 1000 x looser", "fastgc/_core/noise.py",
             "_NONDETERMINISTIC = 1e-10\n", "_NONDETERMINISTIC = 1e-7\n",
             ("tests/core/test_noise.py",)),
    Mutation("noise table: gamma_k without the square of k!", "fastgc/_core/noise.py",
             "        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)\n",
             "        gamma = math.factorial(k) / math.factorial(2 * k)\n",
             ("tests/core/test_noise.py",)),
    Mutation("noise table: a kink kept as noise", "fastgc/_core/noise.py",
             "            coarse = fine if fine > coarse / 3 else 0.0\n",
             "            coarse = fine if fine < coarse / 3 else coarse\n",
             ("tests/core/test_noise.py::test_a_kink_at_the_point_is_not_taken_for_noise",
              "tests/core/test_verdicts.py")),
    # -- layout --------------------------------------------------------------------------------
    Mutation("exclude prunes 'k' but not 'dk' from the gradient", "fastgc/_core/layout.py",
             "                  if k not in skipped and not (isinstance(k, str) and "
             "k[:1] == \"d\"\n"
             "                                               and k[1:] in skipped and k[1:] not "
             "in live)}\n",
             "                  if k not in skipped}\n", ("tests/core/test_layout.py",)),
    Mutation("entries named in Fortran order", "fastgc/_core/layout.py",
             "        idx = np.unravel_index(local_index, self.shape)\n",
             "        idx = np.unravel_index(local_index, self.shape, order=\"F\")\n",
             ("tests/core/test_layout.py",)),
    # -- plan ----------------------------------------------------------------------------------
    Mutation("subset share rounded down", "fastgc/_core/plan.py",
             "        share = math.ceil(target * b.size / total)\n",
             "        share = target * b.size // total\n", (_MODES,)),
    Mutation("miss probability: one wrong entry fewer", "fastgc/_core/plan.py",
             "    wrong = max(1, math.ceil(fraction * block_size))\n",
             "    wrong = max(1, math.ceil(fraction * block_size) - 1)\n", (_MODES,)),
    # -- diagnosis -----------------------------------------------------------------------------
    Mutation("transpose test without the transpose", "fastgc/_core/diagnosis.py",
             "        at = a.reshape(shape).T.ravel()\n", "        at = a.reshape(shape).ravel()\n",
             (_DIAGNOSIS,)),
    Mutation("wrong sign read as factor +1", "fastgc/_core/diagnosis.py",
             "    if abs(factor + 1.0) < 1e-3:\n", "    if abs(factor - 1.0) < 1e-3:\n",
             (_DIAGNOSIS,)),
    # -- result --------------------------------------------------------------------------------
    Mutation("worst() lists the best entries first", "fastgc/_core/result.py",
             "        order = np.argsort(-t.score, kind=\"stable\")[: int(k)]\n",
             "        order = np.argsort(t.score, kind=\"stable\")[: int(k)]\n", (_CHECK,)),
    # -- engines: the evaluator ----------------------------------------------------------------
    Mutation("chunks only when a bar is drawn or workers run", "fastgc/_engines/evaluator.py",
             "        bounds = chunk_bounds(n, min_chunk)\n",
             "        bounds = (chunk_bounds(n, min_chunk) if self._progress is not None\n"
             "                  or self._workers is not None else [(0, n)])\n",
             ("tests/engines/test_evaluator.py",)),
    Mutation("joined chunks report no evaluations", "fastgc/_engines/evaluator.py",
             "                      np.concatenate([d.noise for d in parts]), nfev)\n",
             "                      np.concatenate([d.noise for d in parts]), 0)\n",
             ("tests/engines/test_evaluator.py",)),
]

# Tests that assert a constant's value: a kill by them would not count, so they never run.
CONSTANT_PINS = [
    "tests/core/test_schemes.py::test_richardson_counts_and_error_estimates",
]

# Tests that fail on main itself, whatever the mutation (deselected so that the baseline
# passes; each with why). Remove an entry when its test is fixed.
KNOWN_FAILING = [
    # one-direction batches differ from the batched GEMM by 2.8e-17 > atol = 1e-3 x noise
    "tests/network/test_network_directions_complex.py::test_batching_threads_and_order",
]

_IGNORE = shutil.ignore_patterns(".git", ".pytest_cache", "*.egg-info", ".ruff_cache",
                                 ".hypothesis", "build", "dist")


def _copy_tree(dst: Path) -> Path:
    """The working tree, with its ``__pycache__`` (numba's caches included: copy2 keeps the
    sources' times, so neither Python nor numba compiles anything again)."""
    copy = dst / "repo"
    shutil.copytree(ROOT, copy, ignore=_IGNORE, copy_function=shutil.copy2)
    return copy


def _env(copy: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + os.pathsep + env.get("PYTHONPATH", "")
    # A mutated module's .pyc would outlive its restore when both happen within the same
    # second at the same size (1e-8 -> 1e-7): write none, so every import reads the source.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _pytest(copy: Path, tests, first: bool, timeout: float) -> tuple[int, list[str], list[str],
                                                                      float]:
    """Run ``tests`` in ``copy``: (exit status, failed node ids, errored node ids, seconds)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
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
        return -1, [], ["(timed out)"], time.perf_counter() - start
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, flags=re.M)
    errored = re.findall(r"^ERROR (\S+)", proc.stdout, flags=re.M)
    if proc.returncode not in (0, 1) and not failed and not errored:
        errored = [f"(pytest exit {proc.returncode}: {proc.stdout[-300:]}{proc.stderr[-300:]})"]
    return proc.returncode, failed, errored, time.perf_counter() - start


def _check_copy_is_imported(copy: Path) -> None:
    out = subprocess.run([sys.executable, "-c", "import fastgc; print(fastgc.__file__)"],
                         cwd=copy, env=_env(copy), capture_output=True, text=True, check=True)
    where = Path(out.stdout.strip()).resolve()
    if copy.resolve() not in where.parents:
        raise SystemExit(f"the tests would import fastgc from {where}, not from the copy {copy}")


def _terminate(signum, frame):
    # SIGTERM (a killed job) unwinds like Ctrl-C: the finally clauses restore the mutated
    # file and remove the temporary directory.
    raise KeyboardInterrupt


def _run_one(copy: Path, m: Mutation, tests, first: bool, timeout: float, scratch: Path):
    """Apply ``m`` in ``copy``, run ``tests``, restore: (verdict text, killed, seconds)."""
    path = copy / m.file
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        why = "text not found" if count == 0 else f"text found {count} times"
        return f"NOT APPLIED ({why}: update the mutation)", False, 0.0
    saved = scratch / (path.name + ".orig")
    shutil.copy2(path, saved)  # the original, with its time (so caches stay valid after)
    try:
        path.write_text(text.replace(m.old, m.new))
        rc, failed, errored, seconds = _pytest(copy, tests, first, timeout)
    finally:
        shutil.copy2(saved, path)
        saved.unlink()
    if failed:
        return "killed by " + "; ".join(failed), True, seconds
    if errored:
        return "ERRORED, not a test failure: " + "; ".join(errored), False, seconds
    return "SURVIVED", False, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", nargs="+",
                        help="run these test files or node ids for every mutation, instead of "
                             "each mutation's own guard tests")
    parser.add_argument("--all-failures", action="store_true",
                        help="run the tests to the end and list every failing test")
    parser.add_argument("--only", help="run only the mutations whose name or file contains this")
    parser.add_argument("--list", action="store_true", help="print the table and exit")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per pytest run (default 600)")
    args = parser.parse_args(argv)

    mutations = [m for m in MUTATIONS
                 if not args.only or args.only in m.name or args.only in m.file]
    if args.list:
        for m in mutations:
            print(f"{m.name} | {m.file} | {', '.join(args.tests or m.tests)}")
        return 0
    previous = signal.signal(signal.SIGTERM, _terminate)
    originals = {m.file: (ROOT / m.file).read_bytes() for m in mutations}
    rows, bad, current = [], 0, None
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="fastgc-mutations-") as tmp:
            copy = _copy_tree(Path(tmp))
            scratch = Path(tmp) / "saved"
            scratch.mkdir()
            _check_copy_is_imported(copy)
            union = args.tests or list(dict.fromkeys(t for m in mutations for t in m.tests))
            rc, failed, errored, seconds = _pytest(copy, union, False, args.timeout)
            broken = failed + errored
            print(f"baseline ({len(union)} test files): "
                  f"{'passes' if not broken else 'FAILS: ' + ', '.join(broken)} "
                  f"({seconds:.0f} s)", flush=True)
            if rc != 0 and (not broken or any(b.startswith("(") for b in broken)):
                return 1  # timed out, or pytest itself failed: nothing to compare against
            # A guard file that fails unmutated kills every mutation: those mutations are
            # reported, not run (the others still are).
            failing = {b.split("::")[0] for b in broken}
            for m in mutations:
                current = m
                guards = args.tests or m.tests
                stale = sorted(failing.intersection(t.split("::")[0] for t in guards))
                if stale:
                    verdict, killed, seconds = (f"NOT RUN: guard fails unmutated "
                                                f"({', '.join(stale)})", False, 0.0)
                else:
                    verdict, killed, seconds = _run_one(copy, m, guards, not args.all_failures,
                                                        args.timeout, scratch)
                bad += not killed
                rows.append((m, verdict, seconds))
                print(f"{m.name}: {verdict} ({seconds:.0f} s)", flush=True)
                current = None
    except KeyboardInterrupt:
        where = f" during {current.name!r} ({current.file} restored in the copy)" if current \
            else ""
        print(f"interrupted{where}; the temporary copy is removed", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        changed = [f for f, data in originals.items() if (ROOT / f).read_bytes() != data]
        if changed:  # never expected: only the copy is written
            print(f"WARNING: files of the checkout changed during the run: {changed}",
                  file=sys.stderr)

    print()
    print(f"{len(rows)} mutations in {len({m.file for m, _, _ in rows})} modules, "
          f"{len(rows) - bad} killed, {bad} not ({time.perf_counter() - start:.0f} s)")
    print()
    print("| mutation | file | result | seconds |")
    print("|---|---|---|---|")
    for m, verdict, seconds in rows:
        print(f"| {m.name} | {m.file} | {verdict} | {seconds:.0f} |")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
