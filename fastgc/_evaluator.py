"""The evaluator: the engine as the schemes see it.

Schemes send requests (perturbed coordinates, directions, complex steps) to an
:class:`Evaluator`, which cuts each request into chunks, sends them to the engine, and joins
what the engine returns (:class:`~fastgc._objective.Deltas`) in request order. Between chunks
it reports progress (a hook, see ``fastgc._progress``) and Python can act on Ctrl-C: a numba
kernel cannot be interrupted inside a call, so chunking is what makes a long check stop
promptly. The chunks depend on the request's size only, never on whether a bar is drawn, so a
check computes the same bits on a terminal and in a pipe. The engine's set-up is built once,
before the first request, and shared by every chunk.
"""

from __future__ import annotations

import time

import numpy as np

from ._noise import CostNoise, measure_noise
from ._objective import Deltas

CHUNKS = 20  # a large request is cut into about this many chunks
MIN_CHUNK = 256  # requests: below this, a chunk costs more in overhead than it gives


def chunk_bounds(n: int, min_chunk: int = MIN_CHUNK) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)``: one chunk below ``2 min_chunk``, else
    about ``CHUNKS`` chunks of at least ``min_chunk``."""
    if n < 2 * min_chunk:
        return [(0, n)]
    size = max(min_chunk, -(-n // CHUNKS))
    return [(start, min(n, start + size)) for start in range(0, n, size)]


class Evaluator:
    """Requests to one engine for the duration of one check.

    Attributes
    ----------
    name : str
        The engine's name.
    noise : float
        The engine's rounding estimate of one cost difference (from the base cost).
    nfev : int
        Cost evaluations so far, counted from what each engine call returned (the base point
        included).
    cost_noise : CostNoise
        The cost's noise measured near the point (``fastgc._noise``; a few evaluations, once
        per check, skipped for engines that know their cost is float64): it sets the central
        step and is a floor under the noise of every cost difference.
    """

    def __init__(self, engine, progress=None):
        self._engine = engine
        self._progress = progress
        self.name = engine.name
        self.noise = engine.noise
        self.nfev = engine.setup_nfev
        self._floor = 0.0
        self.cost_noise = CostNoise(0.0, abs(engine.base_cost))
        if engine.measures_noise:
            self.cost_noise = measure_noise(self, engine.theta, engine.base_cost)
            # a difference of two noisy values: twice the noise of one is generous enough
            self._floor = 2 * self.cost_noise.sigma
            self.noise = max(self.noise, self._floor)

    def _run(self, n: int, call, min_chunk: int = MIN_CHUNK) -> Deltas:
        bounds = chunk_bounds(n, min_chunk)
        if len(bounds) == 1:
            d = call(0, n)
            self.nfev += d.nfev
            return d
        values, noise = np.empty(n), np.empty(n)
        start_time = time.perf_counter()
        try:
            for start, stop in bounds:
                d = call(start, stop)
                values[start:stop], noise[start:stop] = d.values, d.noise
                self.nfev += d.nfev
                if self._progress is not None:
                    self._progress.update(stop, n, time.perf_counter() - start_time)
        finally:
            if self._progress is not None:
                self._progress.finish()
        return Deltas(values, noise, 0)

    def _noisy(self, d: Deltas) -> Deltas:
        if self._floor > 0:
            return Deltas(d.values, np.maximum(d.noise, self._floor), d.nfev)
        return d

    def at_coordinates(self, index: np.ndarray, step: np.ndarray) -> Deltas:
        """``J(theta + step[j] e_{index[j]}) - J(theta)`` for each j."""
        return self._noisy(self._run(len(index), lambda a, b: self._engine.at_coordinates(
            index[a:b], step[a:b])))

    def along_directions(self, directions, step: np.ndarray) -> Deltas:
        """``J(theta + step[j] v_j) - J(theta)`` for ``(indices, values)`` directions."""
        # A direction perturbs a whole block: a few per chunk already make a long chunk.
        return self._noisy(self._run(
            len(directions), lambda a, b: self._engine.along_directions(directions[a:b],
                                                                         step[a:b]),
            min_chunk=8))

    def complex_at_coordinates(self, index: np.ndarray, h: float) -> Deltas:
        """``Im J(theta + i h e_{index[j]})`` for each j."""
        return self._run(len(index), lambda a, b: self._engine.complex_at_coordinates(
            index[a:b], h))

    def kink_mask(self, index: np.ndarray, step: np.ndarray):
        """The engine's exact kink mask, or None (no cost evaluations)."""
        return self._engine.kink_mask(index, step)

    def close(self) -> None:
        self._engine.close()
