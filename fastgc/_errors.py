"""Every exception and warning class fastgc raises or warns with: the bottom of the import graph.

All of them are public (``fastgc.CostError``, ``fastgc.Float32Warning``, ``fastgc.WorkerError``).
Bad arguments raise the built-in ``TypeError`` (a wrong type) or ``ValueError`` (a wrong value),
worded by ``fastgc._core.validate``.
"""

__all__ = ["CostError", "Float32Warning", "WorkerError"]


class CostError(ValueError):
    """The user's cost returned something that is not a finite real scalar."""


class Float32Warning(UserWarning):
    """Warned when float32 parameters are upcast to float64 for the finite-difference estimate."""


class WorkerError(RuntimeError):
    """Raised when a chunk of a check cannot be evaluated by the workers.

    A worker died on it twice, or the executor broke; the message names the chunk's coordinates.
    """
