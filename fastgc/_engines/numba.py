"""The numba engine: a user cost compiled with ``numba.njit``, evaluated without the interpreter.

The cost has the signature ``cost(theta, *args) -> float`` on a flat float64 vector (for a
structured ``params``, the blocks concatenated in order, each raveled in C order). A parallel
kernel splits the perturbed points among threads; each thread perturbs its own copy of theta in
place and restores it after each call.
"""

from __future__ import annotations

import numba
import numpy as np

from fastgc._engines.base import (
    CostError,
    Deltas,
    Objective,
    as_complex_imag,
    as_cost_value,
    describe_point,
    rounding_noise,
)
from fastgc._engines.jit import PARALLEL_LOCK, jit


# The kernel takes the user's dispatcher as an argument, so numba specialises it per cost and
# compiles it once per process and cost. Cannot cache: an on-disk entry would be keyed on the
# dispatcher's type, and loading the cache index unpickles every earlier cost's type, which
# imports that cost's module: a cost from a module no longer importable (another project, a
# test file) then broke every later numba check with ModuleNotFoundError.
@jit(parallel=True, cache=False)
def _coordinate_deltas(cost, theta, index, step, base, args, n_groups):
    """``out[j] = cost(theta + step[j] e_{index[j]}, *args) - base``, threads over groups."""
    n = index.shape[0]
    out = np.empty(n)
    per_group = (n + n_groups - 1) // n_groups
    for g in numba.prange(n_groups):
        work = theta.copy()  # per-thread scratch
        for j in range(g * per_group, min(n, (g + 1) * per_group)):
            i = index[j]
            original = work[i]
            work[i] = original + step[j]
            out[j] = cost(work, *args) - base
            work[i] = original
    return out


@jit(parallel=True, cache=False)  # cannot cache: see _coordinate_deltas
def _complex_imag(cost, theta, index, h, args, n_groups):
    """``out[j] = Im cost(theta + i h e_{index[j]}, *args)``, threads over groups."""
    n = index.shape[0]
    out = np.empty(n)
    per_group = (n + n_groups - 1) // n_groups
    for g in numba.prange(n_groups):
        work = theta.astype(np.complex128)  # per-thread scratch
        for j in range(g * per_group, min(n, (g + 1) * per_group)):
            i = index[j]
            original = work[i]
            work[i] = original + 1j * h
            out[j] = cost(work, *args).imag
            work[i] = original
    return out


class NumbaObjective(Objective):
    """Evaluate an ``njit``-compiled ``cost(theta, *args)`` in a parallel numba kernel."""

    name = "numba"

    def __init__(self, cost, layout, theta, args=(), max_memory=None):
        super().__init__(layout, theta)
        self._cost = cost
        self._args = tuple(args)
        self.base_cost = self._call_python(theta.copy())
        self._complex_ready = False
        self.noise = rounding_noise(self.base_cost)

    def _call_python(self, point, where="at the unperturbed parameters") -> float:
        try:
            value = self._cost(point, *self._args)
        except (numba.core.errors.TypingError, TypeError) as exc:
            # Raised by numba before the cost runs: the arguments do not fit its signature.
            first = str(exc).strip().splitlines()[0]
            types = ", ".join(["float64[:]"] + [type(a).__name__ for a in self._args])
            raise TypeError(
                f"the numba cost cannot be compiled for cost(theta: {types}): {first}. "
                "A numba cost takes the flat float64 parameter vector first, then *args."
            ) from None
        return as_cost_value(value, where)

    def at_coordinates(self, index, step):
        n = len(index)
        if n == 0:
            return self._deltas(np.empty(0))
        n_groups = max(1, min(n, 4 * numba.get_num_threads()))
        with PARALLEL_LOCK:
            out = _coordinate_deltas(self._cost, self.theta,
                                     np.ascontiguousarray(index, np.int64),
                                     np.ascontiguousarray(step, np.float64), self.base_cost,
                                     self._args, n_groups)
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            j = int(bad[0])
            raise CostError(f"cost returned {out[j] + self.base_cost} "
                            f"{describe_point(self.layout, int(index[j]), float(step[j]))}")
        return self._deltas(out)

    def _prepare_complex(self, i, h) -> int:
        """Compile the cost's complex specialisation once per check, with a probe that tells a
        cost that drops the imaginary part (1 evaluation the first time, then 0)."""
        if self._complex_ready:
            return 0
        probe = self.theta.astype(np.complex128)
        probe[i] += 1j * h
        try:
            value = self._cost(probe, *self._args)
        except (numba.core.errors.TypingError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise TypeError(f"method='complex': the numba cost cannot be compiled for complex128 "
                            f"parameters: {first}") from None
        as_complex_imag(value, f"at {self.layout.coordinate_name(i)} + {h:g}i")
        self._complex_ready = True
        return 1

    def complex_at_coordinates(self, index, h):
        if len(index) == 0:
            return Deltas(np.empty(0), np.zeros(0), 0)
        probes = self._prepare_complex(int(index[0]), h)
        n_groups = max(1, min(len(index), 4 * numba.get_num_threads()))
        with PARALLEL_LOCK:
            out = _complex_imag(self._cost, self.theta, np.ascontiguousarray(index, np.int64),
                                float(h), self._args, n_groups)
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            j = int(bad[0])
            raise CostError(f"cost returned a non-finite imaginary part at "
                            f"{self.layout.coordinate_name(int(index[j]))} + {h:g}i")
        return Deltas(out, np.zeros(len(out)), len(out) + probes)

    def along_directions(self, directions, step):
        out = np.empty(len(directions))
        work = self.theta.copy()
        for j, (indices, values) in enumerate(directions):
            work[indices] = self.theta[indices] + step[j] * values
            value = self._call_python(work, f"along direction {j}")
            out[j] = value - self.base_cost
            work[indices] = self.theta[indices]
        return self._deltas(out)

