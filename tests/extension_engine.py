"""A toy engine for tests/test_extension.py: the loop engine's arithmetic, written from scratch
as a user extending fastgc would (one module, one registry line)."""

import numpy as np

from fastgc._engines.base import as_cost_value, rounding_noise
from fastgc._engines.registry import Deltas, Objective


class CopyingObjective(Objective):
    """Evaluates ``cost(params, *args)`` on a fresh copy of the parameters for every point."""

    name = "copying"

    def __init__(self, cost, layout, theta, args=(), max_memory=None):
        super().__init__(layout, theta)
        self._cost, self._args = cost, args
        self.base_cost = self._at(theta.copy())
        self.noise = rounding_noise(self.base_cost)

    def _at(self, point):
        return as_cost_value(self._cost(self.layout.unflatten(point), *self._args), "")

    def at_coordinates(self, index, step):
        out = np.empty(len(index))
        for j, (i, h) in enumerate(zip(index, step, strict=True)):
            point = self.theta.copy()
            point[i] += h
            out[j] = self._at(point) - self.base_cost
        return Deltas(out, np.full(len(out), self.noise), len(out))

    def along_directions(self, directions, step):
        out = np.empty(len(directions))
        for j, ((indices, values), h) in enumerate(zip(directions, step, strict=True)):
            point = self.theta.copy()
            point[indices] += h * values
            out[j] = self._at(point) - self.base_cost
        return Deltas(out, np.full(len(out), self.noise), len(out))
