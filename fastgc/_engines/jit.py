"""The one place where fastgc's numba options are set.

Every kernel is compiled with ``cache=True`` (pay the compile once per machine, not per
process) and ``error_model="numpy"`` (division by zero gives inf/nan as numpy does instead of
raising, so a kernel never needs a Python-level exception path). ``fastmath`` is never on: it
assumes no NaN or inf, and a gradient checker must see them.
"""

import math
import os
import threading

import numba
import numpy as np

# Parallel kernels are launched under this lock. numba's "workqueue" threading layer (the one
# used where neither TBB nor OpenMP is available) aborts the process when two Python threads
# launch parallel kernels at once; serialising launches costs nothing, since one kernel already
# uses every core.
PARALLEL_LOCK = threading.RLock()

_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}


def jit(*args, parallel=False, **kwargs):
    """``numba.njit`` with fastgc's options; ``parallel=True`` only for kernels with ``prange``."""
    options = dict(_OPTIONS, parallel=parallel, **kwargs)
    if args and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)


# Below this much work (about multiply-adds), a kernel that is neither compiled in this
# process nor in numba's cache on disk runs as the plain Python of its source: numba's first
# compile of a kernel costs seconds, the Python of a small network's whole check (the
# exercise's: about 10,000) tens of milliseconds.
INTERPRET_WORK = 200_000


def compiled_path(kernel, work) -> bool:
    """Whether ``kernel`` runs compiled (True) or interpreted (:func:`interpreted`) for a
    request of about ``work`` multiply-adds.

    Compiled when the work is worth a compile, or when the compile is already paid (the
    kernel is compiled in this process, or numba's cache on disk holds it); interpreted for a
    small request on a machine that has never compiled it. ``FASTGC_JIT=always`` or
    ``never`` in the environment forces one path. Both paths compute the same bits.
    """
    mode = os.environ.get("FASTGC_JIT", "auto")
    if mode != "auto":
        if mode not in ("always", "never"):
            raise ValueError(f"FASTGC_JIT must be 'auto', 'always' or 'never', not {mode!r}")
        return mode == "always"
    if work >= INTERPRET_WORK or kernel.signatures:
        return True
    try:  # numba's on-disk index of the kernel (a private layout: any doubt means "no")
        return os.path.exists(kernel._cache._cache_file._index_path)
    except Exception:
        return False


def choose(kernel, work, paths: set):
    """``kernel``, or its :func:`interpreted` source where :func:`compiled_path` says so for
    ``work`` multiply-adds; the path taken (``"compiled"`` or ``"numpy"``) is added to
    ``paths``."""
    if compiled_path(kernel, work):
        paths.add("compiled")
        return kernel
    paths.add("numpy")
    return interpreted(kernel)


_INTERPRETED: dict = {}


def interpreted(kernel):
    """The Python function behind the numba kernel ``kernel``, with every jitted function it
    calls (through its module's globals) interpreted too: the same source, run by Python.

    The arithmetic is the source's: the same operations in the same order on IEEE doubles
    (numba runs without fastmath, so it contracts nothing), scalar math through ``math`` and
    numpy's own scalar functions.
    """
    import types

    done = _INTERPRETED.get(kernel)
    if done is not None:
        return done
    py = kernel.py_func
    namespace = dict(py.__globals__)
    clone = types.FunctionType(py.__code__, namespace, py.__name__, py.__defaults__,
                               py.__closure__)
    _INTERPRETED[kernel] = clone
    for name, value in list(namespace.items()):
        if isinstance(value, numba.core.registry.CPUDispatcher):
            namespace[name] = interpreted(value)
        elif name == "prange":
            namespace[name] = range
        elif value is np:
            namespace[name] = _SCALAR_NP
    return clone


class _ScalarNumpy:
    """numpy as a kernel's source sees it when interpreted: numba computes ``np.exp(x)`` of a
    float64 scalar with the C library's ``exp`` (as ``math.exp`` does), numpy with its own
    vectorised code, which differs in the last bit for some x. Scalars go to ``math`` (inf and
    nan where numba gives them: error_model="numpy"), everything else is numpy's."""

    def __getattr__(self, name):
        return getattr(np, name)


def _libm(name):
    to_math, to_numpy = getattr(math, name), getattr(np, name)

    def scalar(x):
        if isinstance(x, float):
            try:
                return to_math(x)
            except (OverflowError, ValueError):
                pass  # inf, -inf or nan, as the compiled kernel returns them
        with np.errstate(all="ignore"):
            return to_numpy(x)

    return scalar


_SCALAR_NP = _ScalarNumpy()
for _name in ("exp", "expm1", "log", "log1p", "tanh", "cosh", "sinh"):
    setattr(_SCALAR_NP, _name, _libm(_name))
