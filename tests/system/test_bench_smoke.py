"""Smoke run of the benchmark runner (``fastgc bench``) on the exercise workload, so that
``bench/`` and the runner cannot rot; the timings themselves are not asserted beyond sanity.
"""

import json
import math

import numpy as np
import pytest

from bench import harness as _bench


@pytest.fixture(scope="module")
def exercise_run():
    lines = []
    data = _bench.run_bench(workloads=["exercise"], repeat=1, startup=False, memory=True,
                            contenders=["loop", "stacked", "network", "kernel"],
                            out=lines.append)
    return data, "\n".join(lines)


def test_table_has_expected_rows(exercise_run):
    data, text = exercise_run
    rows = {r["contender"]: r for r in data["rows"]}
    assert list(rows) == ["exercise-loop", "loop", "stacked", "network", "kernel"]
    for name, row in rows.items():
        assert row["status"] == "ok", (name, row["status"])
        assert row["workload"] == "exercise" and row["params"] == 47
        assert 0 < row["seconds"] < 5, (name, row["seconds"])
        assert not row["extrapolated"]
        assert row["peak_bytes"] is not None and row["peak_bytes"] >= 0
    # 2P evaluations (+1 at theta for fastgc.check), as the exercise's loop.
    assert rows["exercise-loop"]["nfev"] == 94
    assert rows["network"]["nfev"] == 95 and rows["kernel"]["nfev"] == 94
    assert rows["exercise-loop"]["speedup"] == 1.0
    assert rows["network"]["passed"] is True
    assert "workload exercise: 4-5-3-1 relu/sigmoid/bce, m=3, P=47" in text
    assert "flop floor" in text and "issue targets:" in text
    json.dumps(data, default=float)  # what --json writes


def test_unknown_workload_is_rejected():
    with pytest.raises(ValueError, match="unknown workload"):
        _bench.run_bench(workloads=["nope"], startup=False, out=lambda s: None)


def test_flop_count_of_the_exercise_network():
    # W1 (20+5 params): n2*m + n3*n2*m = 3*3 + 1*3*3 = 18; W2 (15+3): n3*m = 3; W3 (3+1): 0.
    assert _bench.useful_multiply_adds((4, 5, 3, 1), 3) == 2 * (25 * 18 + 18 * 3)
    # An exact integer count divided by the rate: a few roundings at most, hence a stated 1e-15
    # (~4 ulps) rather than math.isclose's default.
    assert math.isclose(_bench.flop_floor_seconds((4, 5, 3, 1), 3, 1.0),
                        2 * 2 * (25 * 18 + 18 * 3) / 1e9, rel_tol=1e-15, abs_tol=0.0)


def test_subset_spreads_over_every_block():
    problem = _bench.WORKLOADS[2].build()  # mnist-sized: blocks of 10 to 200,704 entries
    index = _bench.subset_index(problem, 200)
    starts = np.cumsum([0] + [a * b for _, (a, b) in problem.net.param_shapes()])
    counts = np.histogram(index, bins=starts)[0]
    assert (counts >= 4).all() and 150 <= index.size <= 260
    assert np.unique(index).size == index.size and np.all(np.diff(index) > 0)
    assert np.array_equal(index, _bench.subset_index(problem, 200))  # seeded


def test_extrapolated_row_is_marked():
    problem = _bench.WORKLOADS[1].build()  # medium: P = 16,641 > the loop's quick cap
    loop = next(c for c in _bench.CONTENDERS if c.name == "exercise-loop")
    row = _bench.measure(loop, problem, repeat=1, memory=False)
    assert row.status == "ok" and row.extrapolated and row.subset >= 100
    assert row.nfev == pytest.approx(2 * problem.P, rel=0.01)


def test_missing_peer_is_skipped_with_a_reason():
    ghost = _bench.Contender("ghost", "ghost peer", lambda p: None, requires="no_such_peer_xyz")
    row = _bench.measure(ghost, _bench.WORKLOADS[0].build(), repeat=1)
    assert row.status.startswith("skipped: no_such_peer_xyz is not installed")
