"""Small shared validators for the front ends' arguments (hypothesis' ``internal/validation``).

Each takes the value and the argument's name, returns the value normalised, and raises one
exception per kind of mistake, worded the same everywhere: ``TypeError`` for a wrong type
("name must be an int (what), not str"), ``ValueError`` for a wrong value ("name must be at
least 1 (what), not 0"). A bool is never accepted as a number.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["bool_flag", "count_or_fraction", "integer", "is_int", "is_real",
           "non_negative_float", "one_of", "positive_float", "random_generator"]


def is_int(value) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """A real number (an int or a float, Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _what(what: str | None) -> str:
    return f" ({what})" if what else ""


def integer(value, name: str, what: str | None = None, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; ``what`` says what it counts, for the message."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int{_what(what)}, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}{_what(what)}, not {value}")
    return int(value)


def positive_float(value, name: str, none: bool = False) -> float | None:
    """``value`` as a positive finite float (None passes through when ``none``)."""
    if value is None and none:
        return None
    if not is_real(value):
        raise TypeError(f"{name} must be a positive float{' or None' if none else ''}, not "
                        f"{type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite float, not {value}")
    return value


def non_negative_float(value, name: str) -> float:
    """``value`` as a finite float >= 0 (a tolerance that may be zero)."""
    if not is_real(value):
        raise TypeError(f"{name} must be a non-negative float, not {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative finite float, not {value}")
    return value


def count_or_fraction(value, name: str, unit: str) -> int | float:
    """An int >= 1 (a count of ``unit``) or a float in (0, 1] (a fraction of them)."""
    if not is_real(value):
        raise TypeError(f"{name} must be an int (a count) or a float in (0, 1] (a fraction), "
                        f"not {type(value).__name__}")
    if is_int(value):
        return integer(value, name, unit)
    value = float(value)
    if not 0 < value <= 1:
        raise ValueError(f"{name} as a fraction must lie in (0, 1], not {value}")
    return value


def one_of(value, name: str, choices):
    """``value`` if it is one of ``choices`` (``in``: equal or the same object)."""
    choices = tuple(choices)
    try:
        known = value in choices
    except (TypeError, ValueError):  # an array compared with a string has no single truth
        known = False
    if not known:
        raise ValueError(f"{name} must be one of {choices}, not {value!r}")
    return value


def bool_flag(value, name: str, none: bool = False) -> bool | None:
    """``value`` as a bool: True or False (numpy's too), or None when ``none``."""
    if value is None and none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        allowed = "True, False or None" if none else "True or False"
        raise TypeError(f"{name} must be {allowed}, not {value!r}")
    return bool(value)


def random_generator(seed) -> np.random.Generator:
    """``np.random.default_rng(seed)``, with a TypeError naming ``seed`` if it is not one."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"seed must be an int, a SeedSequence or a Generator: {exc}") from None
