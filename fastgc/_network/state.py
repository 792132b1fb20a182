"""`NetworkState`: the dense-network engine's set-up at one point, built once per check.

The forward pass and its packing happen once, in the constructor; each kind of request then
builds what it alone needs on its first use and keeps it (the coordinate tables when they fit
the memory budget, the complex-step head and tangents, the direction backprop), so a check cut
into many small requests (a progress bar, an iterative scheme) costs what one request costs.
"""

import numpy as np

from fastgc._engines.jit import choose
from fastgc._network.complex_step import ComplexTangents
from fastgc._network.coordinates import CoordinateTables
from fastgc._network.crossings import kink_kernel
from fastgc._network.directions import DirectionDeltas, validate_directions
from fastgc._network.forward import DEFAULT_MAX_MEMORY, forward_pass

__all__ = [
    "NetworkState",
    "complex_step_derivatives",
    "coordinate_deltas",
    "direction_deltas",
    "kink_mask",
]


class NetworkState:
    """Finite differences of an `MLP` cost at one point, from one cached forward pass.

    Parameters
    ----------
    net : fastgc._network.mlp.MLP
        The network; ``J`` is its cost (loss plus L2 penalty).
    theta : array_like, shape (P,)
        Flat parameters in ``net``'s order (``W1, b1, W2, ...``).
    X, Y : array_like
        Data, as for ``net(params, X, Y)``.
    max_memory : int, optional
        Bytes for the workspace of each kind of request (default 256 MiB): the coordinate
        tables (``m (K nL + 1) 8`` bytes per hidden unit, ``K = 1``, or 5 where tanh/sigmoid
        layers follow a layer below ``L - 1``), the complex-step tangents (``8 nL sum_{l <=
        L-2} n_l`` per example) and one batch of directions (``6 m max(n_l) 8`` per direction).
        Tables that fit are built once and kept; larger needs are processed in chunks, rebuilt
        for each request. The forward-pass cache (``O(m sum n_l)``) and the weights'
        transposed copy come on top.

    Raises
    ------
    ValueError
        If ``theta``, ``X`` or ``Y`` does not fit the network.

    Notes
    -----
    Results do not depend on the thread count, on the order of the perturbations, on how a
    request is cut into calls, or (except for the complex step, whose sum over examples is
    split at chunk boundaries) on ``max_memory``: every perturbation's arithmetic is the same
    whichever call, chunk or thread computes it.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgc._network.mlp import MLP
    >>> from fastgc._network import NetworkState
    >>> net = MLP([3, 4, 1])
    >>> theta = net.flatten(net.init(seed=0))
    >>> X, Y = np.ones((3, 2)), np.array([[1.0, 0.0]])
    >>> state = NetworkState(net, theta, X, Y)
    >>> d = state.coordinate_deltas([0, 0], [1e-6, -1e-6])
    >>> g = net.flatten({k[1:]: v for k, v in net.gradients(net.unflatten(theta), X, Y).items()})
    >>> bool(abs((d[0] - d[1]) / 2e-6 - g[0]) < 1e-8)
    True
    """

    def __init__(self, net, theta, X, Y, max_memory=None):
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        if theta.shape != (net.param_count,):
            raise ValueError(f"theta must have shape ({net.param_count},), got {theta.shape}")
        X, Y = net.validate_data(X, Y)
        self.net = net
        self.max_memory = DEFAULT_MAX_MEMORY if max_memory is None else int(max_memory)
        self._Y = Y
        self._forward = forward_pass(net, theta, X, Y)
        self._coordinates = None
        self._complex = None
        self._directions = None
        self._paths = set()

    def base_cost(self) -> float:
        """``J(theta)``, from the forward pass already run (no second pass)."""
        f = self._forward
        return self.net.cost_from_cache(f.params, f.Zs, f.As, self._Y)

    @property
    def theta(self):
        """The point, as the float64 flat vector the kernels read."""
        return self._forward.packed.theta

    def _index_step(self, index, step):
        index = np.ascontiguousarray(index, dtype=np.int64)
        step = np.ascontiguousarray(step, dtype=np.float64)
        if index.ndim != 1 or step.shape != index.shape:
            raise ValueError(
                f"index and step must be 1-d of equal length, got {index.shape} and {step.shape}"
            )
        P = self.net.param_count
        if index.size and (index.min() < 0 or index.max() >= P):
            raise ValueError(f"index entries must lie in [0, {P})")
        return index, step

    def coordinate_deltas(self, index, step):
        """Cost differences ``J(theta + step_j e_{index_j}) - J(theta)``.

        Parameters
        ----------
        index : array_like of int, shape (n,)
            Perturbed coordinates.
        step : array_like of float, shape (n,)
            Signed steps. The step applied is ``(theta[index] + step) - theta[index]`` in
            float64, exactly what perturbing a copy of ``theta`` in place would apply.

        Returns
        -------
        numpy.ndarray, float64, shape (n,)

        Raises
        ------
        ValueError
            On shapes or indices that do not fit the network.

        Notes
        -----
        Only the differences of the layers from the perturbed one on are propagated, and the
        cost difference is summed from per-example differences evaluated without cancellation
        (see `fastgc._network.coordinates`).
        """
        index, step = self._index_step(index, step)
        if self._coordinates is None:
            self._coordinates = CoordinateTables(self._forward.packed, self.net.activations,
                                                 self.max_memory)  # fmt: skip
        return self._coordinates.deltas(index, step)

    def kink_mask(self, index, step):
        """Which perturbations move a relu/leaky-relu pre-activation across 0.

        Parameters
        ----------
        index : array_like of int, shape (n,)
        step : array_like of float, shape (n,)

        Returns
        -------
        numpy.ndarray of bool, shape (n,)
            True where, for some example and some relu/leaky-relu layer at or after the
            perturbed one, ``(z > 0) != (z + dz > 0)``: the cost is not differentiable within
            the step.
        """
        index, step = self._index_step(index, step)
        out = np.zeros(index.size, dtype=np.bool_)
        if index.size:
            fc = self._forward.packed
            madds = int(np.sum(fc.dims[1:] * fc.dims[:-1]))
            choose(kink_kernel, index.size * fc.m * madds, self._paths)(index, step, fc, out)
        return out

    @property
    def paths(self) -> set:
        """How the kernels ran so far: ``"compiled"`` (numba) and/or ``"numpy"`` (their source
        interpreted, for a small request on a machine that never compiled them)."""
        paths = set(self._paths)
        if self._coordinates is not None:
            paths |= self._coordinates.paths
        if self._complex is not None or self._directions is not None:
            paths.add("compiled")  # their kernels have no interpreted path
        return paths

    def direction_deltas(self, directions, step):
        """Cost differences ``J(theta + step_j v_j) - J(theta)`` along sparse directions, and
        their noise.

        Parameters
        ----------
        directions : sequence of (indices, values) pairs
            Direction ``j`` is ``v_j[indices] = values``, zero elsewhere; ``indices`` are
            coordinates in the network's flat order, without repeats. A direction may span
            several blocks and layers.
        step : array_like of float, shape (n,)
            Signed step of each direction. The perturbation applied is
            ``(theta[indices] + step_j * values) - theta[indices]`` in float64: exactly what
            building the perturbed vector would apply.

        Returns
        -------
        values : numpy.ndarray, float64, shape (n,)
            The differences.
        noise : numpy.ndarray, float64, shape (n,)
            An estimate of the absolute rounding error of each difference (the model is in
            `fastgc._network.directions`).

        Raises
        ------
        ValueError, TypeError
            On shapes, indices or values that do not fit the network.
        """
        pairs, step = validate_directions(directions, step, self.net.param_count)
        if self._directions is None:
            self._directions = DirectionDeltas(self.net, self._forward, self._Y,
                                               self.max_memory)  # fmt: skip
        return self._directions.deltas(pairs, step)

    def complex_step_derivatives(self, index, h=1e-20):
        """Complex-step derivatives ``Im J(theta + i h e_k) / h``, for ``k`` in ``index``.

        Parameters
        ----------
        index : array_like of int, shape (n,)
            Coordinates (repeats allowed).
        h : float, optional
            The imaginary step, ``0 < h <= 1e-8`` (default 1e-20).

        Returns
        -------
        numpy.ndarray, float64, shape (n,)

        Raises
        ------
        ValueError
            On indices outside the network or an ``h`` out of range.

        Notes
        -----
        Forward tangents in float64 stand for the imaginary parts (see
        `fastgc._network.complex_step`): a derivative to a few ulps, with no truncation error, the
        same for every ``h`` in range.
        """
        index, _ = self._index_step(index, np.zeros(np.size(index)))
        h = float(h)
        if not 0.0 < h <= 1e-8:
            raise ValueError(
                f"h must satisfy 0 < h <= 1e-8 (the O(h^2) terms are dropped), got {h}"
            )
        if self._complex is None:
            self._complex = ComplexTangents(self.net, self._forward, self._Y, self.max_memory)
        return self._complex.derivatives(index)


# One-shot functions: a state for one request. Checks hold a NetworkState instead.


def coordinate_deltas(net, theta, X, Y, index, step, max_memory=None):
    """``NetworkState(net, theta, X, Y, max_memory).coordinate_deltas(index, step)``."""
    return NetworkState(net, theta, X, Y, max_memory).coordinate_deltas(index, step)


def kink_mask(net, theta, X, index, step):
    """`NetworkState.kink_mask` for data without targets (the test does not read them)."""
    X = np.asarray(X, dtype=np.float64)
    m = X.shape[1] if X.ndim == 2 else 0
    Y = np.zeros((net.layer_dims[-1], m))
    return NetworkState(net, theta, X, Y).kink_mask(index, step)


def direction_deltas(net, theta, X, Y, directions, step, noise_out=None, max_memory=None):
    """`NetworkState.direction_deltas`'s values, its noise written to ``noise_out`` if given
    (a float64 array of shape ``(n,)``)."""
    values, noise = NetworkState(net, theta, X, Y, max_memory).direction_deltas(directions, step)
    if noise_out is not None:
        if (not isinstance(noise_out, np.ndarray) or noise_out.shape != noise.shape
                or noise_out.dtype != np.float64):  # fmt: skip
            raise ValueError(f"noise_out must be a float64 array of shape ({noise.size},)")
        noise_out[:] = noise
    return values


def complex_step_derivatives(net, theta, X, Y, index, h=1e-20, max_memory=None):
    """``NetworkState(net, theta, X, Y, max_memory).complex_step_derivatives(index, h)``."""
    return NetworkState(net, theta, X, Y, max_memory).complex_step_derivatives(index, h)
