"""The framework engine: perturbed points evaluated by torch or jax, where the user's code runs.

The cost is a *backend* (``fastgc.torch``'s or ``fastgc.jax``'s) that holds the user's
function, its inputs on their device and in their dtype, and the cotangent that projects its
outputs to a scalar. A request for a batch of perturbed points becomes one call of the
backend per block and chunk: the backend forms the points with the framework's own ops
(``theta + step e_k`` in the inputs' dtype), evaluates them batched (``torch.func.vmap``,
``jax.vmap`` + ``jit``) or one at a time, and returns only the scalar costs, as float64, to
the host. Plan, scheme, verdict and result stay numpy and never know which framework ran.

Two details make lower-precision inputs honest:

- In float32, ``x + h`` rounds: the step actually taken is ``a = (x + h) - x`` (exact, by
  Sterbenz), not ``h``. A coordinate's difference is rescaled to the requested step,
  ``d h / a``, which is exact to first order; the schemes then see the step they asked for.
- In a batched call the unperturbed point is row 0 of the same batch, and every difference is
  taken against it: a batched kernel may round differently from a single call, but never
  differently between the rows of one call.
"""

from __future__ import annotations

import numpy as np

from fastgc._engines.base import Objective, rounding_noise
from fastgc._errors import CostError


class FrameworkObjective(Objective):
    """Evaluate a framework backend's cost at batches of perturbed points.

    ``cost`` is a backend (see ``fastgc._framework.Backend``): it names the framework,
    says whether it evaluates batched, and answers ``coordinate_costs`` and
    ``direction_costs``.
    """

    def __init__(self, cost, layout, theta, args=(), max_memory=None):
        super().__init__(layout, theta)
        self._backend = cost
        self.name = f"{cost.framework}-{'vmap' if cost.batched else 'loop'}"
        self.base_cost = cost.base_cost()
        self.noise = rounding_noise(self.base_cost)
        self.noise_floor = cost.noise_floor()

    def _checked(self, values, where):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise CostError(f"the cost is {values[bad[0]]} {where(int(bad[0]))}")
        return values

    def at_coordinates(self, index, step):
        index = np.asarray(index, dtype=np.int64)
        step = np.asarray(step, dtype=np.float64)
        out = np.empty(len(index))
        owner = self.layout.block_index(index) if len(index) else index
        for b in np.unique(owner):
            block = self.layout.blocks[int(b)]
            sel = np.flatnonzero(owner == b)
            chunk = self._backend.chunk_for([int(b)])
            for start in range(0, len(sel), chunk):
                part = sel[start:start + chunk]
                local = index[part] - block.offset
                values, actual = self._backend.coordinate_costs(int(b), local, step[part])
                d = values[1:] - values[0]
                # the difference at the step taken, rescaled to the step requested
                moved = actual != 0
                d[moved] *= step[part][moved] / actual[moved]

                def where(j, part=part):
                    return (f"at {self.layout.coordinate_name(int(index[part[j]]))} "
                            f"{step[part[j]]:+.3g}")

                out[part] = self._checked(d, where)
        return self._deltas(out)

    def along_directions(self, directions, step):
        step = np.asarray(step, dtype=np.float64)
        out = np.empty(len(directions))
        pieces = []  # per request: [(block, local indices, values), ...]
        for indices, values in directions:
            indices = np.asarray(indices, dtype=np.int64)
            values = np.asarray(values, dtype=np.float64)
            owner = self.layout.block_index(indices)
            per = []
            for b in np.unique(owner):
                sel = owner == b
                per.append((int(b), indices[sel] - self.layout.blocks[int(b)].offset,
                            values[sel]))
            pieces.append(per)
        touched = sorted({b for per in pieces for b, _, _ in per})
        chunk = self._backend.chunk_for(touched)
        for start in range(0, len(directions), chunk):
            stop = min(len(directions), start + chunk)
            values = self._backend.direction_costs(pieces[start:stop], step[start:stop])

            def where(j, start=start):
                return f"along direction {start + j} (step {step[start + j]:.3g})"

            out[start:stop] = self._checked(values[1:] - values[0], where)
        return self._deltas(out)
