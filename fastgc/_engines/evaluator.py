"""The evaluator: the engine as the schemes see it.

Schemes send requests (perturbed coordinates, directions, complex steps) to an
:class:`Evaluator`, which cuts each request into chunks, sends them to the engine, and joins
what the engine returns (:class:`~fastgc._engines.registry.Deltas`) in request order. Between chunks
it reports progress (a hook, see ``fastgc._engines.progress``) and Python can act on Ctrl-C: a numba
kernel cannot be interrupted inside a call, so chunking is what makes a long check stop
promptly. The chunks depend on the request's size only, never on whether a bar is drawn, so a
check computes the same bits on a terminal and in a pipe. The engine's set-up is built once,
before the first request, and shared by every chunk.

With ``workers=`` (``fastgc._engines.workers``) the same chunks go to worker processes, each with an
engine of its own built once per check, and are joined by chunk index as they come back: the
chunks never depend on the number of workers, so neither do the bits. The engine built here
still provides the name, the noise and the kink mask (no cost evaluations).

The cost's own noise is measured before the evaluator exists (:func:`measure_cost_noise`, on
the engine) and handed to it.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from fastgc._core.noise import CostNoise, measure_noise
from fastgc._engines.registry import Deltas

log = logging.getLogger(__name__)  # "fastgc._engines.evaluator": a child of "fastgc"
CHUNKS = 20  # a large request is cut into about this many chunks
# The rounding of one cost difference, relative to the perturbed cost's own size (as the
# engines' rounding_noise is to J(theta)'s).
_ULPS = 8.0 * float(np.finfo(np.float64).eps)
MIN_CHUNK = 256  # requests: below this, a chunk costs more in overhead than it gives


def chunk_bounds(n: int, min_chunk: int = MIN_CHUNK) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)``: one chunk below ``2 min_chunk``, else
    about ``CHUNKS`` chunks of at least ``min_chunk``."""
    if n < 2 * min_chunk:
        return [(0, n)]
    size = max(min_chunk, -(-n // CHUNKS))
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def measure_cost_noise(engine) -> CostNoise:
    """The cost's noise near the engine's point (``fastgc._core.noise``), measured in this
    process on the engine itself: a few evaluations, not worth a round trip to workers.

    Skipped (zero noise, no evaluations) for an engine that knows its cost is float64; raised
    to the noise floor an engine states from its dtype.
    """
    if not engine.measures_noise:
        return CostNoise(0.0, abs(engine.base_cost))
    noise = measure_noise(engine, engine.theta, engine.base_cost)
    if engine.noise_floor > noise.sigma:
        noise = CostNoise(engine.noise_floor, noise.cost, noise.nfev)
    return noise


class Evaluator:
    """Requests to one engine for the duration of one check.

    Parameters
    ----------
    engine : Objective
        The engine, built in this process (its base cost, noise and kink mask are used here).
    cost_noise : CostNoise
        The cost's noise near the point, from :func:`measure_cost_noise` (its evaluations are
        counted in ``nfev``).
    progress : ProgressBar, optional
        Told after each completed chunk.
    workers : Workers, optional
        Where the chunks run (``fastgc._engines.workers``); None: in this process, with ``engine``.

    Attributes
    ----------
    name : str
        The engine's name.
    exact_complex : bool
        The engine's: whether its complex evaluation is analytic by construction.
    noise : float
        The engine's rounding estimate of one cost difference (from the base cost).
    nfev : int
        Cost evaluations so far, counted from what each engine call returned (the base point
        included; not the base point each worker evaluates to build its own engine).
    cost_noise : CostNoise
        As given: it sets the central step and is a floor under the noise of every cost
        difference.
    """

    def __init__(self, engine, cost_noise: CostNoise, progress=None, workers=None):
        self._engine = engine
        self._progress = progress
        self._workers = workers
        self.name = engine.name
        self.theta = engine.theta  # the point (read-only use: the step's own rounding)
        self.coordinate_name = engine.layout.coordinate_name  # for the schemes' notes
        self.exact_complex = engine.exact_complex
        self.nfev = engine.setup_nfev + cost_noise.nfev
        self.cost_noise = cost_noise
        # a difference of two noisy values: twice the noise of one is generous enough
        self._floor = 2 * cost_noise.sigma if engine.measures_noise else 0.0
        self.noise = max(engine.noise, self._floor) if engine.measures_noise else engine.noise

    @property
    def path(self) -> str:
        """The engine's: how it ran, where it has more than one way (``CheckResult.path``)."""
        return self._engine.path

    def _run(self, n: int, method: str, slice_args, describe,
             min_chunk: int = MIN_CHUNK) -> Deltas:
        """``engine.<method>(*slice_args(a, b))`` over the chunks ``(a, b)`` of ``range(n)``,
        joined in order; ``describe(a, b)`` names a chunk in a worker error."""
        bounds = chunk_bounds(n, min_chunk)
        log.debug("%s: %d evaluations in %d chunk(s)%s, engine %s", method, n, len(bounds),
                  "" if self._workers is None else " on workers", self._engine.name)
        if self._workers is None and len(bounds) == 1:
            d = getattr(self._engine, method)(*slice_args(0, n))
            self.nfev += d.nfev
            return d
        start_time = time.perf_counter()
        done = [0]

        def report(k):
            a, b = bounds[k]
            done[0] += b - a
            if self._progress is not None:
                self._progress.update(done[0], n, time.perf_counter() - start_time)

        try:
            if self._workers is None:
                parts = []
                for k, (a, b) in enumerate(bounds):
                    parts.append(getattr(self._engine, method)(*slice_args(a, b)))
                    report(k)
            else:
                parts = self._workers.map(method, [slice_args(a, b) for a, b in bounds],
                                          describe=lambda k: describe(*bounds[k]), done=report)
        finally:
            if self._progress is not None:
                self._progress.finish()
        nfev = sum(d.nfev for d in parts)
        self.nfev += nfev
        if len(parts) == 1:
            return parts[0]
        return Deltas(np.concatenate([d.values for d in parts]),
                      np.concatenate([d.noise for d in parts]), nfev)

    def _coordinates(self, index):
        name = self._engine.layout.coordinate_name
        return lambda a, b: (f"coordinates {name(int(index[a]))} to {name(int(index[b - 1]))} "
                             f"({b - a} points)")

    def _noisy(self, d: Deltas) -> Deltas:
        # The engine's rounding estimate is relative to J(theta); a perturbed cost far larger
        # (J(theta) ~ 0 at a zero-residual minimiser) rounds in proportion to its own size.
        own = _ULPS * np.abs(d.values)
        return Deltas(d.values, np.maximum(d.noise, np.maximum(own, self._floor)), d.nfev)

    def at_coordinates(self, index: np.ndarray, step: np.ndarray) -> Deltas:
        """``J(theta + step[j] e_{index[j]}) - J(theta)`` for each j."""
        return self._noisy(self._run(len(index), "at_coordinates",
                                     lambda a, b: (index[a:b], step[a:b]),
                                     self._coordinates(index)))

    def along_directions(self, directions, step: np.ndarray) -> Deltas:
        """``J(theta + step[j] v_j) - J(theta)`` for ``(indices, values)`` directions."""
        # A direction perturbs a whole block: a few per chunk already make a long chunk.
        return self._noisy(self._run(len(directions), "along_directions",
                                     lambda a, b: (directions[a:b], step[a:b]),
                                     lambda a, b: f"directions {a} to {b - 1} of a request of "
                                                  f"{len(directions)}", min_chunk=8))

    def complex_at_coordinates(self, index: np.ndarray, h: float) -> Deltas:
        """``Im J(theta + i h e_{index[j]})`` for each j."""
        return self._run(len(index), "complex_at_coordinates", lambda a, b: (index[a:b], h),
                         self._coordinates(index))

    def kink_mask(self, index: np.ndarray, step: np.ndarray):
        """The engine's exact kink mask, or None (no cost evaluations; in this process)."""
        return self._engine.kink_mask(index, step)

    def close(self) -> None:
        try:
            if self._workers is not None:
                self._workers.close()
        finally:
            self._engine.close()
