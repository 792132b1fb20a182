"""The loop engine: one call of the user's cost per perturbed point.

The reference engine and the ground truth the fast engines are tested against. It perturbs one
working copy of the parameters in place and restores it after each call, so the parameter
structure is built once (views into the working vector), never per call.
"""

from __future__ import annotations

import numpy as np

from fastgc._engines.base import (
    CostError,
    Deltas,
    Objective,
    as_complex_imag,
    as_cost_value,
    describe_point,
    nonfinite_data_hint,
    rounding_noise,
)

_FLOAT64 = np.float64


class LoopObjective(Objective):
    """Evaluate any Python cost ``cost(params, *args)``, one point at a time."""

    name = "loop"

    def __init__(self, cost, layout, theta, args=(), max_memory=None):
        super().__init__(layout, theta)
        # A numba cost run by the loop engine still takes the flat vector.
        flat = type(cost).__module__.startswith("numba") and hasattr(cost, "py_func")
        self._cost = cost
        self._args = args
        self._flat = flat
        # Where each coordinate sits in the working vector: its own place, unless a block is
        # laid out in memory as the user's array was (a transposed weight; ``_slots``).
        self._slot = None if flat else _slots(layout)
        self._work = theta.copy()
        if self._slot is not None:
            self._work[self._slot] = theta
        # A numba cost takes the flat vector (``flat=True``); any other cost the user's
        # structure, as views into the working vector.
        self._params = self._views(self._work)
        # The cost sees read-only views: a cost that modified its parameters in place would
        # shift every later point silently; a read-only view raises at the first write.
        views = [self._params] if flat else layout.leaves(self._params)
        for view in views:
            view.flags.writeable = False
        try:
            self.base_cost = self._call("at the unperturbed parameters")
        except CostError as exc:
            raise CostError(str(exc) + nonfinite_data_hint(args)) from None
        self.noise = rounding_noise(self.base_cost)

    def _views(self, work):
        """The structure the cost is called with: views into ``work``."""
        if self._flat:
            return work.view()
        if self._slot is None:
            return self.layout.unflatten(work)
        views = []
        for b, axes in zip(self.layout.blocks, self.layout.memory_axes, strict=True):
            part = work[b.offset:b.stop]
            if axes is None:
                views.append(part.reshape(b.shape))
            else:
                views.append(part.reshape([b.shape[a] for a in axes]).transpose(np.argsort(axes)))
        return self.layout.assemble(views)

    def _call(self, where) -> float:
        """One call of the cost. ``where`` is a string, or a callable that builds it: the
        location is only spelled out when an error needs it, not on every call."""
        try:
            value = self._cost(self._params, *self._args)
        except Exception as exc:
            if hasattr(exc, "add_note"):
                exc.add_note(f"fastgc: raised by the cost {where() if callable(where) else where}")
            raise
        try:
            return as_cost_value(value, "")
        except CostError:
            return as_cost_value(value, where() if callable(where) else where)

    def at_coordinates(self, index, step):
        # The hot loop of every black-box check: one working copy perturbed in place, the
        # user's cost called on the same argument objects each time, and nothing else built
        # per point (a message is only spelled out when a call fails).
        n = len(index)
        out = np.empty(n, dtype=np.float64)
        work, base = self._work, self.base_cost
        cost, params, args = self._cost, self._params, self._args
        indices, steps = np.asarray(index).tolist(), np.asarray(step, dtype=np.float64).tolist()
        slots = indices if self._slot is None else self._slot[index].tolist()
        j, i, original = 0, -1, 0.0
        try:
            for j in range(n):
                i = slots[j]
                original = work[i]
                work[i] = original + steps[j]
                value = cost(params, *args)
                work[i] = original
                i = -1
                if type(value) is float or type(value) is _FLOAT64:
                    if value - value == 0.0:  # finite: the common case, no checks to run
                        out[j] = value - base
                        continue
                out[j] = as_cost_value(value, describe_point(self.layout, indices[j],
                                                             steps[j])) - base
        except Exception as exc:
            if i >= 0 and hasattr(exc, "add_note"):
                exc.add_note("fastgc: raised by the cost "
                             + describe_point(self.layout, indices[j], steps[j]))
            raise
        finally:
            # Restored whatever happens (an exception, Ctrl-C): the next point, and any later
            # use of the working copy, starts from theta again.
            if i >= 0:
                work[i] = original
        return self._deltas(out)

    def along_directions(self, directions, step):
        out = np.empty(len(directions), dtype=np.float64)
        work = self._work
        for j, (indices, values) in enumerate(directions):
            if self._slot is None:
                indices = _as_slice(indices)  # a whole block (or vector): a view, no gather
            else:
                indices = self._slot[indices]
            saved = work[indices].copy()
            work[indices] = saved + step[j] * values
            try:
                out[j] = self._call(f"along direction {j} (step {step[j]:.3g})") - self.base_cost
            finally:
                work[indices] = saved
        return self._deltas(out)

    def complex_at_coordinates(self, index, h):
        work = self._work.astype(np.complex128)
        params = self._views(work)
        out = np.empty(len(index))
        slots = index if self._slot is None else self._slot[index]
        for j in range(len(index)):
            i = int(slots[j])
            original = work[i]
            work[i] = original + 1j * h
            try:
                value = self._cost(params, *self._args)
                out[j] = as_complex_imag(value, f"at {self.layout.coordinate_name(int(index[j]))}"
                                                f" + {h:g}i")
            finally:
                work[i] = original
        return Deltas(out, np.zeros(len(out)), len(out))


def _as_slice(indices):
    """``indices`` as a slice when they are consecutive (a direction over a whole block, or
    the noise table's over the whole vector), else unchanged: the same entries either way."""
    n = len(indices)
    if n > 16 and type(indices) is np.ndarray and indices.ndim == 1:
        first, last = int(indices[0]), int(indices[-1])
        if last - first + 1 == n and first >= 0 and np.all(np.diff(indices) == 1):
            return slice(first, last + 1)
    return indices


def _slots(layout):
    """None when every block is in C order (the usual case), else ``slot`` with
    ``work[slot[k]]`` the working vector's place of coordinate ``k``: a block whose user array
    was a transposed contiguous array is stored in that memory order, so that its view has the
    user's strides (a matrix product on a transposed weight runs at another speed)."""
    axes_of = getattr(layout, "memory_axes", None)
    if axes_of is None or all(a is None for a in axes_of):
        return None
    slot = np.arange(layout.size, dtype=np.int64)
    for b, axes in zip(layout.blocks, axes_of, strict=True):
        if axes is not None:
            order = np.arange(b.size).reshape([b.shape[a] for a in axes])
            slot[b.offset:b.stop] = b.offset + order.transpose(np.argsort(axes)).ravel()
    return slot

