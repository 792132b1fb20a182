"""Scaling with ``workers=``: time of one check against the number of worker processes.

Two rows per worker count on the ``mnist`` workload (784-256-128-10, m=64):

- ``loop``: a black-box numpy cost (the network's numpy forward pass, called once per perturbed
  point, as the exercise's loop does) on a seeded subset of coordinates;
- ``network``: fastgc's network engine, full check.

``workers=1`` is the check in this process. For the loop row the process runs one BLAS thread
(``fastgc bench`` sets it), as each worker does, so efficiency ``t1 / (w t_w)`` measures the
pool. For the network row the in-process check already uses every core through numba threads,
so the row shows what processes add on top of threads (usually nothing on one machine: the
network engine's place for workers is a cluster). Each worker count is warmed up (its pool
started, its engines compiled) before it is timed, and every timed result is compared with the
in-process one bit for bit.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from bench.harness.machine import machine_info
from bench.harness.workloads import workload

LOOP_COORDINATES = 1600  # the measurement: the exercise's loop over 1,600 coordinates


def scaling_rows(worker_counts=(1, 2), repeat: int = 3, name: str = "mnist",
                 coordinates: int = LOOP_COORDINATES) -> list[dict]:
    """Median seconds of a check per engine and worker count.

    Parameters
    ----------
    worker_counts : sequence of int
        ``workers=`` values to time (1: in this process).
    repeat : int
        Timed calls per row (the median is reported).
    name : str
        The workload (see ``bench.harness.WORKLOADS``).
    coordinates : int
        Subset size for the loop row.

    Returns
    -------
    list of dict
        ``engine``, ``workers``, ``seconds``, ``speedup`` and ``efficiency`` (against the
        first worker count), ``nfev``.
    """
    from fastgc._check import check

    problem = workload(name).build()
    cases = {
        "loop": dict(cost=lambda p, X, Y: problem.net(p, X, Y), engine="loop",
                     subset=coordinates),
        "network": dict(cost=problem.net, engine="network"),
    }
    rows = []
    for engine, case in cases.items():
        options = {k: v for k, v in case.items() if k != "cost"}
        reference = None
        for w in worker_counts:
            def run(w=w, options=options, cost=case["cost"]):
                return check(cost, problem.grads, problem.params, problem.X, problem.Y,
                             workers=None if w == 1 else w, progress=False, **options)

            result = run()  # warm-up: pool started, kernels compiled, engines built
            if reference is None:
                reference = result
            same = np.array_equal(problem.net.flatten(result.numeric),
                                  problem.net.flatten(reference.numeric), equal_nan=True)
            if not (same and result.passed):
                raise AssertionError(f"{engine} with workers={w}: the result differs from "
                                     "workers=1 or fails")
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            rows.append(dict(engine=engine, workers=w, seconds=seconds, nfev=result.nfev))
        first = rows[-len(worker_counts)]
        for row in rows[-len(worker_counts):]:
            row["speedup"] = first["seconds"] / row["seconds"]
            row["efficiency"] = row["speedup"] * first["workers"] / row["workers"]
    return rows


def format_scaling(rows: list[dict], name: str = "mnist",
                   coordinates: int = LOOP_COORDINATES) -> str:
    """The rows as a table, headed by the workload and the machine."""
    info = machine_info()
    lines = [f"workers= scaling on {workload(name).title}",
             f"machine: {info['cpu']}, {info['cores']} cores, BLAS threads "
             f"{info['blas_threads']}",
             f"loop: black-box numpy cost, {coordinates} coordinates (central, 2 evaluations "
             "each); network: full check",
             f"{'engine':<9} {'workers':>7} {'seconds':>9} {'speedup':>8} {'efficiency':>10}"]
    for r in rows:
        lines.append(f"{r['engine']:<9} {r['workers']:>7} {r['seconds']:>9.3f} "
                     f"{r['speedup']:>7.2f}x {r['efficiency']:>9.0%}")
    return "\n".join(lines)
