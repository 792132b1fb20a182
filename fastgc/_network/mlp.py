"""fastgc's own dense network: the exercise's model, any depth and width.

Columns are examples, as in the exercise: ``X`` has shape ``(n0, m)``, ``Y`` has shape
``(nL, m)`` and layer ``l`` computes ``Z_l = W_l A_{l-1} + b_l``, ``A_l = g_l(Z_l)``. The model
is itself a cost callable, ``net(params, X, Y) -> float``, so every fastgc engine can check it;
the dense-network engine (``fastgc._network``) also uses its structure, through the public
`MLP.forward_cache`, `MLP.output_delta`, `MLP.example_deltas` and `MLP.layout`.

This module imports numpy only (its activations come from the numpy-only table
``fastgc._network.activations``): numba is imported by the engine's kernels, and only when a
kernel is first used.
"""

import numpy as np

from fastgc._core.layout import Block, Layout
from fastgc._network.activations import NAMES as ACTIVATIONS
from fastgc._network.activations import activate, derivative, second_derivative

__all__ = ["MLP"]

LOSSES = ("bce", "ce", "mse")

# The output activation a loss implies when only the hidden activation is given.
_DEFAULT_OUTPUT = {"bce": "sigmoid", "ce": "softmax", "mse": "identity"}
_MSE_OUTPUTS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")


class MLP:
    """A dense feed-forward network with a loss: the exercise's model, generalised.

    Parameters
    ----------
    layer_dims : sequence of int
        ``[n0, n1, ..., nL]``: input size, then the width of each of the ``L`` layers
        (all >= 1, at least two entries).
    activations : None, str or sequence of str, optional
        One name per layer from ``"relu"``, ``"leaky_relu"`` (slope 0.01), ``"tanh"``,
        ``"sigmoid"``, ``"identity"`` and ``"softmax"`` (output layer only). A single string is
        the hidden activation; the output activation then follows from the loss (``bce`` ->
        sigmoid, ``ce`` -> softmax, ``mse`` -> identity). None means ``"relu"`` hidden layers.
    loss : {"bce", "ce", "mse"}, optional
        ``bce``: ``-(1/m) sum(Y log A + (1-Y) log(1-A))`` with a sigmoid output;
        ``ce``: ``-(1/m) sum(Y log A)`` with a softmax output;
        ``mse``: ``(1/2m) sum((A-Y)^2)``.
    l2 : float, optional
        L2 penalty ``(l2/(2m)) sum_l ||W_l||_F^2`` added to the cost (biases are not
        penalised).

    Attributes
    ----------
    layer_dims : list of int
    activations : tuple of str
        One per layer.
    loss : str
    l2 : float
    layout : fastgc._core.layout.Layout
        The flat order as blocks with names, shapes and offsets (`flatten`, `unflatten`).
    param_count : int
        ``P``, the length of the flat vector.

    Raises
    ------
    ValueError
        If ``layer_dims``, ``activations``, ``loss`` or ``l2`` is invalid, or if the
        activations do not fit the loss.

    Notes
    -----
    With relu hidden layers, a sigmoid output and ``bce`` (the defaults), the forward pass uses
    exactly the exercise's expressions (``np.dot(W, A) + b``, ``np.maximum(0, Z)``,
    ``1/(1+np.exp(-Z))`` and its cost line), so costs are bit-identical to its
    ``forward_propagation_n``. Parameters are a dict ``{"W1": (n1, n0), "b1": (n1, 1), ...}``;
    the flat order (``flatten``/``unflatten``) is ``W1, b1, W2, b2, ...``, each block raveled
    in C order, which is the exercise's ``dictionary_to_vector`` order.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgc import MLP
    >>> net = MLP([4, 5, 3, 1])
    >>> params = net.init(seed=0)
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.standard_normal((4, 3)), np.array([1.0, 1.0, 0.0])
    >>> cost = net(params, X, Y)
    >>> grads = net.gradients(params, X, Y)
    >>> sorted(grads) == sorted(["dW1", "db1", "dW2", "db2", "dW3", "db3"])
    True
    >>> net.param_count
    47
    """

    def __init__(self, layer_dims, activations=None, loss="bce", l2=0.0):
        dims = self._validate_dims(layer_dims)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        l2 = float(l2)
        if not np.isfinite(l2) or l2 < 0:
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        self.layer_dims = dims
        self.loss = loss
        self.l2 = l2
        self.activations = self._validate_activations(activations, len(dims) - 1, loss, dims[-1])
        # The flat order W1, b1, ..., WL, bL as a fastgc Layout: the same blocks and offsets
        # that name coordinates in a check's report.
        blocks, offset = [], 0
        for li in range(1, len(dims)):
            for name, shape in ((f"W{li}", (dims[li], dims[li - 1])), (f"b{li}", (dims[li], 1))):
                size = shape[0] * shape[1]
                blocks.append(Block(name, name, shape, offset, size))
                offset += size
        self.layout = Layout("dict", tuple(blocks))
        self.param_count = self.layout.size

    @staticmethod
    def _validate_dims(layer_dims):
        try:
            dims = [int(n) for n in layer_dims]
        except (TypeError, ValueError):
            raise ValueError(f"layer_dims must be a sequence of ints, got {layer_dims!r}") from None
        if len(dims) < 2:
            raise ValueError(f"layer_dims needs at least 2 entries (n0, n1), got {dims}")
        if any(n < 1 for n in dims) or any(n != d for n, d in zip(dims, layer_dims, strict=True)):
            raise ValueError(f"layer_dims entries must be integers >= 1, got {list(layer_dims)}")
        return dims

    @staticmethod
    def _validate_activations(activations, L, loss, n_out=None):
        if activations is None:
            activations = "relu"
        if isinstance(activations, str):
            activations = [activations] * (L - 1) + [_DEFAULT_OUTPUT[loss]]
        activations = tuple(activations)
        if len(activations) != L:
            raise ValueError(
                f"activations needs one name per layer ({L}), got {len(activations)}: {activations}"
            )
        for li, name in enumerate(activations, start=1):
            if name not in ACTIVATIONS:
                raise ValueError(
                    f"activations[{li - 1}] (layer {li}) is {name!r}; allowed: {ACTIVATIONS}"
                )
            if name == "softmax" and li == L and n_out == 1:
                raise ValueError(
                    "activations: softmax over a single output unit is the constant 1 (its "
                    "cross-entropy is identically 0); use sigmoid with loss 'bce'"
                )
            if name == "softmax" and li != L:
                raise ValueError(
                    f"activations: softmax is allowed only on the output layer, "
                    f"got it on layer {li} of {L}"
                )
        out = activations[-1]
        if loss == "bce" and out != "sigmoid":
            raise ValueError(f"loss 'bce' needs a 'sigmoid' output activation, got {out!r}")
        if loss == "ce" and out != "softmax":
            raise ValueError(f"loss 'ce' needs a 'softmax' output activation, got {out!r}")
        if loss == "mse" and out not in _MSE_OUTPUTS:
            raise ValueError(
                f"loss 'mse' needs an output activation in {_MSE_OUTPUTS}, got {out!r}"
            )
        return activations

    def __repr__(self):
        return (
            f"MLP(layer_dims={self.layer_dims}, activations={self.activations}, "
            f"loss={self.loss!r}, l2={self.l2!r})"
        )

    @property
    def n_layers(self):
        """Number of layers ``L`` (weight matrices)."""
        return len(self.layer_dims) - 1

    # ---- parameters -------------------------------------------------------------------

    def param_shapes(self):
        """The parameter blocks' names and shapes.

        Returns
        -------
        list of tuple
            ``[(name, shape), ...]`` in the flat order ``W1, b1, W2, b2, ..., WL, bL``.
        """
        return [(b.name, b.shape) for b in self.layout.blocks]

    def init(self, seed=0):
        """Random parameters: He-scaled weights and small nonzero biases.

        Parameters
        ----------
        seed : int or numpy.random.Generator, optional
            Seed for ``numpy.random.default_rng``.

        Returns
        -------
        dict
            ``{"W1": ..., "b1": ..., ...}``, float64 arrays.
        """
        rng = np.random.default_rng(seed)
        params = {}
        for name, shape in self.param_shapes():
            if name[0] == "W":
                params[name] = rng.standard_normal(shape) * np.sqrt(2.0 / shape[1])
            else:
                # Nonzero so that checks exercise the bias gradients too.
                params[name] = 0.1 * rng.standard_normal(shape)
        return params

    def flatten(self, params):
        """Concatenate the parameter blocks (C order) into one float64 vector.

        Parameters
        ----------
        params : dict
            ``{"W1": (n1, n0), "b1": (n1, 1), ...}``.

        Returns
        -------
        numpy.ndarray
            The flat parameters, shape ``(param_count,)``, in the order of `param_shapes`.
        """
        params = self._validate_params(params)
        return np.concatenate([params[b.key].ravel() for b in self.layout.blocks])

    def unflatten(self, theta):
        """Split a flat vector into the parameter dict.

        Parameters
        ----------
        theta : array_like, shape (param_count,)
            The flat parameters, in the order of `flatten`.

        Returns
        -------
        dict
            ``{"W1": ..., "b1": ..., ...}``: views into ``theta`` when it is a contiguous
            float64 array.
        """
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.param_count,):
            raise ValueError(f"theta must have shape ({self.param_count},), got {theta.shape}")
        return self.layout.unflatten(theta)

    # ---- validation -------------------------------------------------------------------

    def _validate_params(self, params, argname="params"):
        try:
            keys = params.keys()
        except AttributeError:
            raise ValueError(
                f"{argname} must be a dict of arrays, got {type(params).__name__}"
            ) from None
        out = {}
        for name, shape in self.param_shapes():
            if name not in keys:
                raise ValueError(f"{argname} is missing key {name!r} (expected shape {shape})")
            value = np.asarray(params[name], dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"{argname}[{name!r}] has shape {value.shape}, expected {shape}")
            out[name] = value
        return out

    def validate_data(self, X, Y):
        """Validate the data and return it as float64 arrays.

        Parameters
        ----------
        X : array_like, shape (n0, m)
            Inputs, one example per column (``m >= 1``).
        Y : array_like, shape (nL, m), or (m,) when ``nL == 1``
            Targets.

        Returns
        -------
        X : numpy.ndarray, float64, shape (n0, m)
            The inputs.
        Y : numpy.ndarray, float64, shape (nL, m)
            The targets, as a row when given as ``(m,)``.

        Raises
        ------
        ValueError
            If ``X`` or ``Y`` does not fit the network or each other.
        """
        X = np.asarray(X, dtype=np.float64)
        n0, nL = self.layer_dims[0], self.layer_dims[-1]
        if X.ndim != 2 or X.shape[0] != n0 or X.shape[1] < 1:
            raise ValueError(f"X must have shape ({n0}, m) with m >= 1, got {X.shape}")
        m = X.shape[1]
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim == 1 and nL == 1:
            Y = Y.reshape(1, -1)
        if Y.shape != (nL, m):
            raise ValueError(f"Y must have shape ({nL}, {m}) to match X, got {Y.shape}")
        return X, Y

    check_data = validate_data  # the earlier name of this public method

    # ---- forward and backward ---------------------------------------------------------

    def forward_cache(self, params, X):
        """The forward pass's cache: every pre-activation and activation.

        Parameters
        ----------
        params : dict
            ``{"W1": (n1, n0), "b1": (n1, 1), ...}`` as float64 arrays, not validated (use
            `unflatten` of a checked flat vector, or `forward` for user input).
        X : numpy.ndarray, float64, shape (n0, m)
            Validated inputs (see `validate_data`).

        Returns
        -------
        Zs : list of numpy.ndarray
            ``[Z1, ..., ZL]``, ``Z_l = W_l A_{l-1} + b_l`` of shape ``(n_l, m)``.
        As : list of numpy.ndarray
            ``[A0 = X, A1, ..., AL]``, ``A_l = g_l(Z_l)``.

        Notes
        -----
        The same expressions as the cost (`forward`, ``net(params, X, Y)``), so a cache built
        here is bit-identical to the one the cost computes: the dense-network engine starts
        its perturbations from it.
        """
        Zs, As = [], [X]
        A = X
        for li, name in enumerate(self.activations, start=1):
            Z = np.dot(params[f"W{li}"], A) + params[f"b{li}"]
            A = activate(name, Z)
            Zs.append(Z)
            As.append(A)
        return Zs, As

    def cost_from_cache(self, params, Zs, As, Y):
        """The cost ``J`` from a forward pass already run (:meth:`forward_cache`).

        Parameters
        ----------
        params : dict
            The parameters the forward pass ran with (for the L2 penalty).
        Zs, As : list of ndarray
            :meth:`forward_cache`'s output.
        Y : ndarray, shape (nL, m)
            Validated labels (:meth:`validate_data`).

        Returns
        -------
        float
            Exactly what ``net(params, X, Y)`` returns.
        """
        m = Y.shape[1]
        A = As[-1]
        if self.loss == "bce":
            # The exercise's -(Y log A + (1 - Y) log(1 - A)), taken on the logits as
            # softplus(z) - y z: the exercise's form loses ~eps / (1 - A) to the rounding of A
            # near saturation (and is inf once A rounds to 1). fastgc.gradient_check_n runs
            # the exercise's own expression (fastgc._exercise.original) where its bits matter.
            Z = Zs[-1]
            cost = 1.0 / m * np.sum(np.logaddexp(0.0, Z) - Y * Z)
        elif self.loss == "ce":
            # log softmax from the logits: finite where A underflows to 0.
            Z = Zs[-1]
            shifted = Z - Z.max(axis=0, keepdims=True)
            log_A = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
            cost = -1.0 / m * np.sum(Y * log_A)
        else:
            cost = 0.5 / m * np.sum((A - Y) ** 2)
        if self.l2 != 0:
            penalty = sum(np.sum(params[f"W{li}"] ** 2) for li in range(1, self.n_layers + 1))
            cost = cost + self.l2 / (2 * m) * penalty
        return float(cost)

    def forward(self, params, X, Y):
        """Cost and cache of one forward pass.

        Parameters
        ----------
        params : dict
            ``{"W1": (n1, n0), "b1": (n1, 1), ...}``.
        X : array_like, shape (n0, m)
            Inputs, one example per column.
        Y : array_like, shape (nL, m), or (m,) when ``nL == 1``
            Targets.

        Returns
        -------
        cost : float
            The loss (with the L2 penalty when ``l2`` is set).
        cache : dict
            ``{"Z": [Z1, ..., ZL], "A": [X, A1, ..., AL]}``.

        Raises
        ------
        ValueError
            On a missing parameter key, a wrong parameter shape, or ``X``/``Y`` shapes that do
            not fit the network or each other.
        """
        params = self._validate_params(params)
        X, Y = self.validate_data(X, Y)
        Zs, As = self.forward_cache(params, X)
        return self.cost_from_cache(params, Zs, As, Y), {"Z": Zs, "A": As}

    def __call__(self, params, X, Y):
        """The cost ``J(params; X, Y)``: the model as a cost callable ``cost(params, *args)``."""
        return self.forward(params, X, Y)[0]

    def gradients(self, params, X, Y):
        """Reference backprop: the exact gradient of the cost.

        Parameters
        ----------
        params : dict
            As in `forward`.
        X : array_like, shape (n0, m)
            As in `forward`.
        Y : array_like, shape (nL, m), or (m,) when ``nL == 1``
            As in `forward`.

        Returns
        -------
        dict
            ``{"dW1": ..., "db1": ..., ...}`` with the parameters' shapes.
        """
        params = self._validate_params(params)
        X, Y = self.validate_data(X, Y)
        Zs, As = self.forward_cache(params, X)
        m = X.shape[1]
        L = self.n_layers
        deltas = self.example_deltas(params, Zs, As, Y)
        grads = {}
        for li in range(L, 0, -1):
            dZ = deltas[li - 1]
            dW = 1.0 / m * np.dot(dZ, As[li - 1].T)
            if self.l2 != 0:
                dW = dW + self.l2 / m * params[f"W{li}"]
            grads[f"dW{li}"] = dW
            grads[f"db{li}"] = 1.0 / m * np.sum(dZ, axis=1, keepdims=True)
        return {f"{p}{li}": grads[f"{p}{li}"] for li in range(1, L + 1) for p in ("dW", "db")}

    def output_delta(self, Zs, As, Y):
        """The loss's derivative by the logits, example by example.

        Parameters
        ----------
        Zs, As : list of numpy.ndarray
            The cache of `forward_cache`.
        Y : numpy.ndarray, float64, shape (nL, m)
            Validated targets.

        Returns
        -------
        numpy.ndarray, shape (nL, m)
            ``d c_s / d Z_L[:, s]`` for every example ``s`` (``c_s`` is example ``s``'s loss,
            undivided by ``m``; no L2 term).
        """
        A = As[-1]
        if self.loss == "bce":
            return A - Y
        if self.loss == "ce":
            # d/dz of (sum_j y_j) lse(z) - y.z; labels need not sum to one.
            return A * Y.sum(axis=0, keepdims=True) - Y
        return (A - Y) * derivative(self.activations[-1], Zs[-1], A)

    def example_deltas(self, params, Zs, As, Y):
        """Per-example backprop: the cost's derivative by every pre-activation.

        Parameters
        ----------
        params : dict
            As in `forward_cache`.
        Zs, As : list of numpy.ndarray
            The cache of `forward_cache` at ``params``.
        Y : numpy.ndarray, float64, shape (nL, m)
            Validated targets.

        Returns
        -------
        list of numpy.ndarray
            ``[dZ_1, ..., dZ_L]`` with ``dZ_l[:, s] = d c_s / d Z_l[:, s]`` (undivided by
            ``m``, without the L2 term); `gradients` sums them against the activations.
        """
        dZ = self.output_delta(Zs, As, Y)
        deltas = [dZ]
        for li in range(self.n_layers, 1, -1):
            dA = np.dot(params[f"W{li}"].T, dZ)
            dZ = dA * derivative(self.activations[li - 2], Zs[li - 2], As[li - 1])
            deltas.append(dZ)
        return deltas[::-1]

    def hvp(self, params, v, X, Y):
        """The exact Hessian-vector product ``H v`` of the cost (Pearlmutter's R-op).

        Parameters
        ----------
        params : dict
            ``{"W1": (n1, n0), "b1": (n1, 1), ...}``, as in `forward`.
        v : dict
            The vector, with the keys and shapes of ``params``.
        X, Y : array_like
            As in `forward`.

        Returns
        -------
        dict
            ``{"W1": ..., "b1": ..., ...}``: ``H v`` in the structure of ``params``.

        Raises
        ------
        ValueError
            As `forward`, and on a ``v`` with a missing key or a wrong shape (named).

        Notes
        -----
        One forward pass, one forward pass of the directional derivatives ``R{Z_l}`` and
        ``R{A_l}``, and one backward pass of the derivatives of backprop's quantities along
        ``v`` (Pearlmutter 1994): about the cost of two gradients. The curvature of the
        activations and of the loss on the logits is included (sigmoid + bce, softmax + ce,
        any output + mse); relu and leaky relu contribute none away from their kink, where the
        cost's Hessian is that of a piecewise linear map.

        Examples
        --------
        >>> import numpy as np, fastgc
        >>> net = fastgc.MLP([3, 4, 2], "tanh", "mse")
        >>> params = net.init(seed=0)
        >>> rng = np.random.default_rng(0)
        >>> X, Y = rng.standard_normal((3, 5)), rng.standard_normal((2, 5))
        >>> fastgc.check_hvp(net.gradients, net.hvp, params, X, Y, cost=net).passed
        True
        """
        params = self._validate_params(params)
        v = self._validate_params(v, "v")
        X, Y = self.validate_data(X, Y)
        Zs, As = self.forward_cache(params, X)
        m = X.shape[1]
        L = self.n_layers
        # forward: R{Z_l} = V_l A_{l-1} + W_l R{A_{l-1}} + v_b, R{A_l} = g'(Z_l) R{Z_l}
        RZs, RAs = [], [np.zeros_like(X)]
        for li, name in enumerate(self.activations, start=1):
            RZ = np.dot(v[f"W{li}"], As[li - 1]) + np.dot(params[f"W{li}"], RAs[-1]) + v[f"b{li}"]
            RZs.append(RZ)
            RAs.append(derivative(name, Zs[li - 1], As[li]) * RZ)
        # backward: the R-op of every delta, from the loss's curvature on the logits down
        deltas = self.example_deltas(params, Zs, As, Y)
        A, Z, RZ = As[-1], Zs[-1], RZs[-1]
        if self.loss == "bce":
            RdZ = A * (1.0 - A) * RZ
        elif self.loss == "ce":
            # d/dz of softmax(z) sum(y): sum(y) (diag(A) - A A^T) R{z}
            RdZ = Y.sum(axis=0, keepdims=True) * (A * RZ - A * np.sum(A * RZ, axis=0,
                                                                       keepdims=True))
        else:
            out = self.activations[-1]
            slope = derivative(out, Z, A)
            RdZ = slope * slope * RZ + (A - Y) * second_derivative(out, Z, A) * RZ
        out = {}
        for li in range(L, 0, -1):
            dZ = deltas[li - 1]
            RW = (np.dot(RdZ, As[li - 1].T) + np.dot(dZ, RAs[li - 1].T)) / m
            if self.l2 != 0:
                RW = RW + self.l2 / m * v[f"W{li}"]
            out[f"W{li}"] = RW
            out[f"b{li}"] = np.sum(RdZ, axis=1, keepdims=True) / m
            if li > 1:
                name = self.activations[li - 2]
                Zp, Ap = Zs[li - 2], As[li - 1]
                dA = np.dot(params[f"W{li}"].T, dZ)
                RdA = np.dot(v[f"W{li}"].T, dZ) + np.dot(params[f"W{li}"].T, RdZ)
                RdZ = (RdA * derivative(name, Zp, Ap)
                       + dA * second_derivative(name, Zp, Ap) * RZs[li - 2])
        return {f"{p}{li}": out[f"{p}{li}"] for li in range(1, L + 1) for p in ("W", "b")}
