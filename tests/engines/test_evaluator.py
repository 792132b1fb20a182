"""The evaluator cuts a request into chunks by its size alone: never by whether a progress bar
is drawn, nor by whether the chunks run here or on workers (the chunks decide the bits: a
terminal once got a different verdict than a pipe), and the counts it returns add up.

The engine and the workers are stand-ins that record what they are asked; the expected chunks
are worked out from the documented rule (one chunk below 2 x 256 requests, else chunks of
max(256, ceil(n / 20))).
"""

import math

import numpy as np
import pytest

from fastgc._core.layout import Layout
from fastgc._engines.evaluator import Evaluator, measure_cost_noise
from fastgc._engines.registry import Objective


class _Recording(Objective):
    """A linear cost ``c . theta`` whose calls are logged as (method, number of requests)."""

    name = "recording"
    measures_noise = False

    def __init__(self, n):
        layout, theta = Layout.of(np.zeros(n))
        super().__init__(layout, theta)
        self.c = np.arange(n, dtype=np.float64)
        self.base_cost, self.calls = 0.0, []

    def at_coordinates(self, index, step):
        self.calls.append(("at_coordinates", len(index)))
        return self._deltas(self.c[index] * step)

    def along_directions(self, directions, step):
        self.calls.append(("along_directions", len(directions)))
        return self._deltas(np.array([self.c[i] @ v for i, v in directions]) * step)


class _Bar:
    def __init__(self):
        self.updates, self.finished = [], 0

    def update(self, done, total, elapsed):
        self.updates.append((done, total))

    def finish(self):
        self.finished += 1


class _Workers:
    """Runs the chunks it is given on its own engine, in order, as the real pool would."""

    def __init__(self, engine):
        self.engine, self.chunks = engine, []

    def map(self, method, chunks, describe, done=None):
        out = []
        for k, args in enumerate(chunks):
            self.chunks.append((method, len(args[0])))
            out.append(getattr(self.engine, method)(*args))
            if done is not None:
                done(k)
        return out


def _expected(n, min_chunk):
    if n < 2 * min_chunk:
        return [n]
    size = max(min_chunk, math.ceil(n / 20))
    return [min(size, n - start) for start in range(0, n, size)]


@pytest.mark.parametrize("n", [10, 511, 512, 3000, 20000])
def test_chunks_do_not_depend_on_the_bar_or_the_workers(n):
    index = np.arange(n, dtype=np.int64) % 50
    step = np.full(n, 1e-3)
    seen, values = {}, {}
    for where in ("plain", "bar", "workers", "workers and bar"):
        engine = _Recording(50)
        bar = _Bar() if "bar" in where else None
        workers = _Workers(_Recording(50)) if "workers" in where else None
        ev = Evaluator(engine, measure_cost_noise(engine), progress=bar, workers=workers)
        d = ev.at_coordinates(index, step)
        calls = workers.chunks if workers is not None else engine.calls
        seen[where] = [size for _, size in calls]
        values[where] = d.values
        # what the calls return adds up: the evaluator's count and the joined result's
        assert d.nfev == n and ev.nfev == engine.setup_nfev + n
        if bar is not None and len(seen[where]) > 1:
            assert [u[0] for u in bar.updates] == list(np.cumsum(seen[where]))
            assert bar.finished == 1
    assert seen["plain"] == _expected(n, 256), seen
    assert seen["bar"] == seen["workers"] == seen["workers and bar"] == seen["plain"]
    for v in values.values():
        np.testing.assert_array_equal(v, values["plain"])


def test_direction_requests_are_chunked_by_size_alone():
    n = 400  # directions: chunks of at least 8 (each perturbs a whole block)
    directions = [(np.arange(50, dtype=np.int64), np.ones(50))] * n
    step = np.full(n, 1e-3)
    seen = {}
    for where in ("plain", "bar", "workers"):
        engine = _Recording(50)
        workers = _Workers(_Recording(50)) if where == "workers" else None
        ev = Evaluator(engine, measure_cost_noise(engine),
                       progress=_Bar() if where == "bar" else None, workers=workers)
        d = ev.along_directions(directions, step)
        assert d.nfev == n
        seen[where] = [s for _, s in (workers.chunks if workers is not None else engine.calls)]
    assert seen["plain"] == seen["bar"] == seen["workers"] == _expected(n, 8)
