"""The network engine: fastgc's own :class:`~fastgc.MLP`, checked by structure.

The cost is an ``MLP`` and the data ``X, Y``; a `fastgc._network.NetworkState`, built once
per objective, evaluates every perturbed point from one cached forward pass (see that
package). The user's parameter dict may list its keys in any order: coordinates are mapped
onto the network's own flat order (W1, b1, ..., WL, bL) and back.
"""

from __future__ import annotations

import numpy as np

from fastgc._engines.base import _EPS, Deltas, Objective, as_cost_value, rounding_noise
from fastgc._engines.jit import PARALLEL_LOCK
from fastgc._network import NetworkState


class NetworkObjective(Objective):
    """Evaluate perturbed costs of an ``MLP`` with the prefix-caching numba kernel."""

    name = "network"
    exact_complex = True  # the complex kernels branch on Re z: analytic by construction
    measures_noise = False  # fastgc's own float64 MLP: deterministic, float64 rounding only

    def __init__(self, net, layout, theta, args=(), max_memory=None):
        super().__init__(layout, theta)
        if len(args) != 2:
            raise TypeError(
                f"the network engine needs the data, check(net, grads, params, X, Y); got "
                f"{len(args)} extra argument(s) instead of X, Y"
            )
        if layout.kind != "dict":
            raise TypeError("an MLP's params must be a dict {'W1': ..., 'b1': ...}, not a "
                            f"{layout.kind}")
        expected = dict(net.param_shapes())
        unknown = [b.name for b in layout.blocks if b.key not in expected]
        if unknown:
            raise ValueError(f"params has keys the network does not have: {unknown!r} "
                             f"(expected {list(expected)!r})")
        params = layout.unflatten(theta)
        self._net = net
        self._X, self._Y = net.validate_data(*args)
        for label, data in (("X", self._X), ("Y", self._Y)):
            bad = np.argwhere(~np.isfinite(data)) if not np.isfinite(data).all() else ()
            if len(bad):
                at = ", ".join(str(int(i)) for i in bad[0])
                raise ValueError(f"{label} has a non-finite value {data[tuple(bad[0])]} at "
                                 f"{label}[{at}]")
        self._theta = net.flatten(params)  # validates every key and shape
        # Where each of the layout's coordinates sits in the network's flat vector.
        if [b.key for b in layout.blocks] == [b.key for b in net.layout.blocks]:
            self._to_net = None  # the network's own order (the usual case): no mapping
        else:
            net_offsets = {b.key: b.offset for b in net.layout.blocks}
            self._to_net = np.empty(layout.size, dtype=np.int64)
            for b in layout.blocks:
                self._to_net[b.offset : b.stop] = net_offsets[b.key] + np.arange(b.size)
        # The engine's set-up (forward pass, packing; tables on first use), once per check.
        self._state = NetworkState(net, self._theta, self._X, self._Y, max_memory=max_memory)
        self.base_cost = as_cost_value(self._state.base_cost(), "at the unperturbed parameters")
        self.noise = rounding_noise(self.base_cost)

    @property
    def path(self) -> str:
        """``"compiled"``, ``"numpy"`` or ``"compiled+numpy"``: how the kernels ran so far."""
        return "+".join(sorted(self._state.paths))

    def _net_index(self, index):
        """The network's flat indices of the layout's coordinates ``index``."""
        return index if self._to_net is None else self._to_net[index]

    def at_coordinates(self, index, step):
        with PARALLEL_LOCK:
            out = self._state.coordinate_deltas(self._net_index(index), step)
        return self._deltas(out)

    def kink_mask(self, index, step):
        with PARALLEL_LOCK:
            return self._state.kink_mask(self._net_index(index), step)

    def along_directions(self, directions, step):
        # Differences propagated layer by layer (no subtraction of two totals): see
        # fastgc._network.directions.
        net_directions = [(self._net_index(np.asarray(indices, dtype=np.int64)), values)
                          for indices, values in directions]
        with PARALLEL_LOCK:
            out, noise = self._state.direction_deltas(net_directions,
                                                      np.asarray(step, dtype=np.float64))
        # Far below 8 ulps of |J| (no totals are subtracted). A floor of a few ulps of each
        # difference keeps it from ever claiming exactness.
        return Deltas(out, np.maximum(noise, 4 * _EPS * np.abs(out)),
                      len(directions))

    def complex_at_coordinates(self, index, h):
        # Im J(theta + i h e_k) = h dJ/dtheta_k up to O(h^3): the kernel propagates the
        # imaginary parts as forward tangents (fastgc._network.complex_step).
        with PARALLEL_LOCK:
            out = self._state.complex_step_derivatives(self._net_index(index), h)
        return Deltas(out * h, np.zeros(len(index)), len(index))
