"""Every exception and warning class fastgc raises or warns with: the bottom of the import graph.

All of them are public (``fastgc.CostError``, ``fastgc.FastgcWarning``, ``fastgc.Float32Warning``,
``fastgc.WorkerError``). Every warning fastgc gives is a :class:`FastgcWarning`, so a test suite
can turn all of them, or one kind, into errors: ``pytest -W error::fastgc.FastgcWarning`` or
``-W error::fastgc.Float32Warning`` (``warnings.filterwarnings`` takes the same classes).
Bad arguments raise the built-in ``TypeError`` (a wrong type) or ``ValueError`` (a wrong value),
worded by ``fastgc._core.validate``.
"""

__all__ = ["CostError", "FastgcWarning", "Float32Warning", "WorkerError"]


class CostError(ValueError):
    """The user's cost returned something that is not a finite real scalar."""


class FastgcWarning(UserWarning):
    """Base class of every warning fastgc gives (filter it to silence or raise them all)."""


class Float32Warning(FastgcWarning):
    """Warned when float32 parameters are upcast to float64 for the finite-difference estimate."""


class WorkerError(RuntimeError):
    """Raised when a chunk of a check cannot be evaluated by the workers.

    A worker died on it twice, or the executor broke; the message names the chunk's coordinates.
    """
