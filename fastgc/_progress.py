"""Progress: a one-line bar on stderr for long checks, and chunks that make them interruptible.

A check is one big request to the engine. When progress is on, the request is cut into chunks
(about 20); between chunks the bar is redrawn and Ctrl-C is honoured (a numba kernel cannot be
interrupted inside a call, so chunking is what makes a long check stop promptly). With
``progress=None`` (the default) this happens only on a terminal, and the bar appears only once
the check is projected to take more than ``SHOW_AFTER`` seconds: short checks stay silent, and
checks in scripts and CI pay no chunking overhead.
"""

from __future__ import annotations

import sys
import time

import numpy as np

SHOW_AFTER = 2.0  # seconds: projected total duration above which the bar is drawn
CHUNKS = 20
MIN_CHUNK = 256  # perturbations: below this, chunking costs more than it gives
_WIDTH = 30


class ProgressObjective:
    """Wraps an objective; splits coordinate requests into chunks and reports progress.

    Every other attribute (``name``, ``nfev``, ``noise``, ...) is the wrapped objective's.
    """

    def __init__(self, inner, force: bool, stream=None):
        self._inner = inner
        self._force = force
        self._stream = stream if stream is not None else sys.stderr
        self._drawn = False

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def at_coordinates(self, index, step):
        n = len(index)
        if n < 2 * MIN_CHUNK:
            return self._inner.at_coordinates(index, step)
        chunk = max(MIN_CHUNK, -(-n // CHUNKS))
        out = np.empty(n)
        start_time = time.perf_counter()
        try:
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                out[start:stop] = self._inner.at_coordinates(index[start:stop], step[start:stop])
                elapsed = time.perf_counter() - start_time
                projected = elapsed * n / stop
                if self._force or projected > SHOW_AFTER:
                    self._draw(stop, n, elapsed, projected)
        finally:
            self._clear()
        return out

    def _draw(self, done: int, total: int, elapsed: float, projected: float) -> None:
        filled = int(_WIDTH * done / total)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        left = max(0.0, projected - elapsed)
        self._stream.write(f"\rfastgc [{bar}] {done}/{total} evaluations, "
                           f"{elapsed:.1f} s, ~{left:.1f} s left ")
        self._stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self._stream.write("\r" + " " * (_WIDTH + 60) + "\r")
            self._stream.flush()
            self._drawn = False


def with_progress(objective, progress):
    """``objective`` wrapped for progress reporting, or unchanged when progress is off.

    ``progress`` True forces the bar, False disables it, None enables it on a terminal only.
    """
    if progress is False:
        return objective
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return objective
    return ProgressObjective(objective, force=bool(progress))
