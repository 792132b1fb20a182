"""The comparison runner behind ``fastgc bench`` (and the table that ``bench/`` times).

Workloads are seeded dense networks with data (:mod:`.workloads`); contenders are ways to check
their gradient: the exercise's loop, fastgc's engines, and the peers that are installed
(:mod:`.contenders`). :mod:`.runner` plans, times and verifies each contender on each workload
and runs the table; :mod:`.report` formats it, judges the targets and draws the picture;
:mod:`.machine` measures the DGEMM rate, the flop floor and the start-up costs.

A contender whose full check would take too long on a workload is timed on a seeded subset of
coordinates spread over every parameter block and its time scaled by ``P / subset``: the row
says so (``extrapolated``). Every timed call is warmed up first (JIT compile outside the timing)
and its result is checked against the network's reference backprop on a sample of coordinates.

This subpackage is private: the CLI (``fastgc bench``) and ``bench/`` are its users, through
the names below.
"""

from bench.harness.contenders import CONTENDERS, Contender, Outcome
from bench.harness.machine import (
    flop_floor_seconds,
    startup_rows,
    subprocess_env,
    useful_multiply_adds,
)
from bench.harness.runner import Plan, Row, main, measure, plan, run_bench, subset_index, verify
from bench.harness.workloads import WORKLOADS, Problem, Workload, seeded_data, workload

__all__ = [
    "CONTENDERS",
    "WORKLOADS",
    "Contender",
    "Outcome",
    "Plan",
    "Problem",
    "Row",
    "Workload",
    "flop_floor_seconds",
    "main",
    "measure",
    "plan",
    "run_bench",
    "seeded_data",
    "startup_rows",
    "subprocess_env",
    "subset_index",
    "useful_multiply_adds",
    "verify",
    "workload",
]
