"""Progress: a one-line bar on stderr for long checks.

The bar is a hook that the evaluator (``fastgc._engines.evaluator``) calls between chunks of
work; it
never sees the engine or the results, so whether it is drawn cannot change what a check
computes. With ``progress=None`` (the default) it is active only on a terminal, and draws only
once the request is projected to take more than ``SHOW_AFTER`` seconds: short checks stay
silent.
"""

from __future__ import annotations

import sys

SHOW_AFTER = 2.0  # seconds: projected total duration above which the bar is drawn
_WIDTH = 30


class ProgressBar:
    """Draws ``fastgc [####------] done/total evaluations, elapsed, ~left`` on ``stream``."""

    def __init__(self, force: bool = False, stream=None):
        self._force = force
        self._stream = stream if stream is not None else sys.stderr
        self._drawn = False

    def update(self, done: int, total: int, elapsed: float) -> None:
        """Called after each chunk of a request of ``total`` evaluations."""
        projected = elapsed * total / max(done, 1)
        if not (self._force or projected > SHOW_AFTER):
            return
        filled = int(_WIDTH * done / total)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        left = max(0.0, projected - elapsed)
        self._stream.write(f"\rfastgc [{bar}] {done}/{total} evaluations, "
                           f"{elapsed:.1f} s, ~{left:.1f} s left ")
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """Called when a request is complete (or raised): erase the bar."""
        if self._drawn:
            self._stream.write("\r" + " " * (_WIDTH + 60) + "\r")
            self._stream.flush()
            self._drawn = False


def progress_bar(progress) -> ProgressBar | None:
    """The bar for ``progress``: True forces it, False disables it, None means on a terminal."""
    if progress is False:
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    return ProgressBar(force=bool(progress))
