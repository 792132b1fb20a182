"""The one place where fastgc's numba options are set.

Every kernel is compiled with ``cache=True`` (pay the compile once per machine, not per
process) and ``error_model="numpy"`` (division by zero gives inf/nan as numpy does instead of
raising, so a kernel never needs a Python-level exception path). ``fastmath`` is never on: it
assumes no NaN or inf, and a gradient checker must see them.
"""

import threading

import numba

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
