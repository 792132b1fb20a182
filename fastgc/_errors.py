"""Every exception and warning class fastgc raises or warns with: the bottom of the import graph.

All of them are public (``fastgc.CostError``, ``fastgc.Float32Warning``, ``fastgc.WorkerError``).
Bad arguments raise the built-in ``TypeError`` (a wrong type) or ``ValueError`` (a wrong value),
worded by ``fastgc._core.validate``.
"""

__all__ = ["CostError", "Float32Warning", "WorkerError"]


class CostError(ValueError):
    """The user's cost returned something that is not a finite real scalar."""


class Float32Warning(UserWarning):
    """float32 parameters were upcast to float64 for the finite-difference estimate."""


class WorkerError(RuntimeError):
    """A chunk of a check could not be evaluated by the workers (a worker died on it twice, or
    the executor broke)."""
