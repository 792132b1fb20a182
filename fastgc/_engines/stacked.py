"""The stacked engine: a batch-aware numpy cost, called once per chunk of perturbed points.

The cost (marked with :func:`fastgc.batched`) receives the parameters with a leading batch axis,
``W`` of shape ``(B, n, k)``, and returns ``B`` costs. A chunk of B perturbed points is built as
a ``(B, P)`` array (theta in every row, one entry perturbed per row) whose column slices are the
blocks' views; chunks are sized so that the stack stays within ``max_memory``.
"""

from __future__ import annotations

import logging

import numpy as np

from fastgc._engines.base import Deltas, Objective, describe_point, rounding_noise
from fastgc._errors import CostError

log = logging.getLogger(__name__)
DEFAULT_MAX_MEMORY = 64 * 2**20  # bytes for the stacked parameters of one chunk


class StackedObjective(Objective):
    """Evaluate a batch-aware cost on stacks of perturbed parameter vectors."""

    name = "stacked"

    def __init__(self, cost, layout, theta, args=(), max_memory=None):
        super().__init__(layout, theta)
        self._cost = cost
        self._args = args
        budget = DEFAULT_MAX_MEMORY if max_memory is None else int(max_memory)
        self.chunk = max(1, budget // (8 * layout.size))
        log.debug("stacked engine: %d points per call (max_memory %d bytes, %d parameters)",
                  self.chunk, budget, layout.size)
        self.base_cost = float(
            self._evaluate(theta[None, :].copy(), lambda j: "at the unperturbed parameters")[0]
        )
        self.noise = rounding_noise(self.base_cost)

    def _stacked_params(self, stack):
        n = len(stack)
        return self.layout.assemble(
            [stack[:, b.offset : b.stop].reshape((n,) + b.shape) for b in self.layout.blocks]
        )

    def _evaluate(self, stack, where):
        """Costs of the rows of ``stack``; ``where(j)`` names row j in error messages."""
        try:
            values = self._cost(self._stacked_params(stack), *self._args)
        except Exception as exc:
            if hasattr(exc, "add_note"):
                exc.add_note(f"fastgc: raised by the batched cost on a batch of {len(stack)} "
                             "points")
            raise
        if isinstance(values, tuple):
            values = values[0]
        values = np.asarray(values)
        if values.dtype.kind not in "fiu":
            raise CostError(f"the batched cost returned dtype {values.dtype}; it must return "
                            "one real cost per point")
        if values.shape != (len(stack),):
            raise CostError(
                f"the batched cost returned shape {values.shape} for a batch of {len(stack)} "
                f"points; a batch-aware cost must return {len(stack)} costs (shape "
                f"({len(stack)},))"
            )
        values = values.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            j = int(bad[0])
            raise CostError(f"cost returned {values[j]} {where(j)}")
        return values

    def at_coordinates(self, index, step):
        out = np.empty(len(index))
        for start in range(0, len(index), self.chunk):
            idx = index[start : start + self.chunk]
            st = step[start : start + self.chunk]
            stack = np.tile(self.theta, (len(idx), 1))
            rows = np.arange(len(idx))
            stack[rows, idx] = self.theta[idx] + st
            def where(j, idx=idx, st=st):
                return describe_point(self.layout, int(idx[j]), float(st[j]))

            out[start : start + len(idx)] = self._evaluate(stack, where) - self.base_cost
        return self._deltas(out)

    def along_directions(self, directions, step):
        out = np.empty(len(directions))
        for start in range(0, len(directions), self.chunk):
            part = directions[start : start + self.chunk]
            stack = np.tile(self.theta, (len(part), 1))
            for r, (indices, values) in enumerate(part):
                stack[r, indices] = self.theta[indices] + step[start + r] * values
            def where(j, start=start):
                return f"along direction {start + j}"

            out[start : start + len(part)] = self._evaluate(stack, where) - self.base_cost
        return self._deltas(out)

    def complex_at_coordinates(self, index, h):
        out = np.empty(len(index))
        for start in range(0, len(index), max(1, self.chunk // 2)):
            idx = index[start : start + max(1, self.chunk // 2)]
            stack = np.tile(self.theta.astype(np.complex128), (len(idx), 1))
            stack[np.arange(len(idx)), idx] += 1j * h
            values = np.asarray(self._cost(self._stacked_params(stack), *self._args))
            if not np.iscomplexobj(values):
                raise CostError(
                    "method='complex' needs a complex-safe cost, but the batched cost returned "
                    f"{values.dtype} values for complex parameters: something in it drops the "
                    "imaginary part (abs, np.real, a float64 buffer). Use method='richardson'."
                )
            if values.shape != (len(idx),):
                raise CostError(f"the batched cost returned shape {values.shape} for a batch "
                                f"of {len(idx)} points")
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                j = int(bad[0])
                raise CostError(f"cost returned {values[j]} at "
                                f"{self.layout.coordinate_name(int(idx[j]))} + {h:g}i")
            out[start : start + len(idx)] = values.imag
        return Deltas(out, np.zeros(len(out)), len(out))
