"""fastgc's own dense network: the exercise's model, any depth and width.

Columns are examples, as in the exercise: ``X`` has shape ``(n0, m)``, ``Y`` has shape
``(nL, m)`` and layer ``l`` computes ``Z_l = W_l A_{l-1} + b_l``, ``A_l = g_l(Z_l)``. The model
is itself a cost callable, ``net(params, X, Y) -> float``, so every fastgc engine can check it;
the dense-network engine (``fastgc._network_kernel``) also uses its structure.

This module imports numpy only: numba is imported by the kernel module, and only when a
kernel is first used, so ``import fastgc`` stays light.
"""

import numpy as np

__all__ = ["MLP"]

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "identity", "softmax")
LOSSES = ("bce", "ce", "mse")
LEAKY_SLOPE = 0.01

# The output activation a loss implies when only the hidden activation is given.
_DEFAULT_OUTPUT = {"bce": "sigmoid", "ce": "softmax", "mse": "identity"}
_MSE_OUTPUTS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")


def _activate(name, Z):
    """``g(Z)`` for one layer; relu and sigmoid use the exercise's exact expressions."""
    if name == "relu":
        return np.maximum(0, Z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-Z))
    if name == "tanh":
        return np.tanh(Z)
    if name == "leaky_relu":
        return np.where(Z > 0, Z, LEAKY_SLOPE * Z)
    if name == "identity":
        return Z
    # softmax over the units of each example (a column); shifting by the column maximum
    # keeps exp from overflowing without changing the result.
    E = np.exp(Z - Z.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)


def _activation_derivative(name, Z, A):
    """``g'(Z)`` elementwise, for the hidden layers and the mse output layer."""
    if name == "relu":
        return (Z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(Z > 0, 1.0, LEAKY_SLOPE)
    if name == "tanh":
        return 1 - A * A
    if name == "sigmoid":
        return A * (1 - A)
    return np.ones_like(Z)


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
    >>> from fastgc._mlp import MLP
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
        dims = self._check_dims(layer_dims)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        l2 = float(l2)
        if not np.isfinite(l2) or l2 < 0:
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        self.layer_dims = dims
        self.loss = loss
        self.l2 = l2
        self.activations = self._check_activations(activations, len(dims) - 1, loss, dims[-1])
        self._shapes = []
        for li in range(1, len(dims)):
            self._shapes.append((f"W{li}", (dims[li], dims[li - 1])))
            self._shapes.append((f"b{li}", (dims[li], 1)))
        self.param_count = sum(int(np.prod(shape)) for _, shape in self._shapes)

    @staticmethod
    def _check_dims(layer_dims):
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
    def _check_activations(activations, L, loss, n_out=None):
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
        """``[(name, shape), ...]`` in the flat order ``W1, b1, W2, b2, ..., WL, bL``."""
        return list(self._shapes)

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
        for name, shape in self._shapes:
            if name[0] == "W":
                params[name] = rng.standard_normal(shape) * np.sqrt(2.0 / shape[1])
            else:
                # Nonzero so that checks exercise the bias gradients too.
                params[name] = 0.1 * rng.standard_normal(shape)
        return params

    def flatten(self, params):
        """Concatenate the parameter blocks (C order) into one float64 vector."""
        params = self._check_params(params)
        return np.concatenate([params[name].ravel() for name, _ in self._shapes])

    def unflatten(self, theta):
        """Split a flat vector into the parameter dict (views into ``theta`` when it is a
        contiguous float64 array).
        """
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.param_count,):
            raise ValueError(f"theta must have shape ({self.param_count},), got {theta.shape}")
        params, start = {}, 0
        for name, shape in self._shapes:
            size = shape[0] * shape[1]
            params[name] = theta[start : start + size].reshape(shape)
            start += size
        return params

    # ---- validation -------------------------------------------------------------------

    def _check_params(self, params):
        try:
            keys = params.keys()
        except AttributeError:
            raise ValueError(
                f"params must be a dict of arrays, got {type(params).__name__}"
            ) from None
        out = {}
        for name, shape in self._shapes:
            if name not in keys:
                raise ValueError(f"params is missing key {name!r} (expected shape {shape})")
            value = np.asarray(params[name], dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"params[{name!r}] has shape {value.shape}, expected {shape}")
            out[name] = value
        return out

    def _check_data(self, X, Y):
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

    # ---- forward and backward ---------------------------------------------------------

    def _forward(self, params, X):
        """Pre-activations ``[Z1..ZL]`` and activations ``[A0=X, A1..AL]``."""
        Zs, As = [], [X]
        A = X
        for li, name in enumerate(self.activations, start=1):
            Z = np.dot(params[f"W{li}"], A) + params[f"b{li}"]
            A = _activate(name, Z)
            Zs.append(Z)
            As.append(A)
        return Zs, As

    def _cost(self, params, Zs, As, Y):
        m = Y.shape[1]
        A = As[-1]
        if self.loss == "bce":
            # The exercise's -(Y log A + (1 - Y) log(1 - A)), taken on the logits as
            # softplus(z) - y z: the exercise's form loses ~eps / (1 - A) to the rounding of A
            # near saturation (and is inf once A rounds to 1). fastgc.gradient_check_n runs
            # the exercise's own expression (fastgc._reference) where its bits matter.
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
        Y : array_like, shape (nL, m), or (m,) when ``nL == 1``

        Returns
        -------
        cost : float
        cache : dict
            ``{"Z": [Z1, ..., ZL], "A": [X, A1, ..., AL]}``.

        Raises
        ------
        ValueError
            On a missing parameter key, a wrong parameter shape, or ``X``/``Y`` shapes that do
            not fit the network or each other.
        """
        params = self._check_params(params)
        X, Y = self._check_data(X, Y)
        Zs, As = self._forward(params, X)
        return self._cost(params, Zs, As, Y), {"Z": Zs, "A": As}

    def __call__(self, params, X, Y):
        """The cost ``J(params; X, Y)``: the model as a cost callable ``cost(params, *args)``."""
        return self.forward(params, X, Y)[0]

    def gradients(self, params, X, Y):
        """Reference backprop: the exact gradient of the cost.

        Parameters
        ----------
        params, X, Y
            As in `forward`.

        Returns
        -------
        dict
            ``{"dW1": ..., "db1": ..., ...}`` with the parameters' shapes.
        """
        params = self._check_params(params)
        X, Y = self._check_data(X, Y)
        Zs, As = self._forward(params, X)
        m = X.shape[1]
        L = self.n_layers
        deltas = self._backward(params, Zs, As, Y)
        grads = {}
        for li in range(L, 0, -1):
            dZ = deltas[li - 1]
            dW = 1.0 / m * np.dot(dZ, As[li - 1].T)
            if self.l2 != 0:
                dW = dW + self.l2 / m * params[f"W{li}"]
            grads[f"dW{li}"] = dW
            grads[f"db{li}"] = 1.0 / m * np.sum(dZ, axis=1, keepdims=True)
        return {f"{p}{li}": grads[f"{p}{li}"] for li in range(1, L + 1) for p in ("dW", "db")}

    def _output_delta(self, Zs, As, Y):
        """``d c_s / d Z_L[:, s]`` for every example ``s``: the loss's derivative by the logits
        (``c_s`` is example ``s``'s loss, undivided by ``m``)."""
        A = As[-1]
        if self.loss == "bce":
            return A - Y
        if self.loss == "ce":
            # d/dz of (sum_j y_j) lse(z) - y.z; labels need not sum to one.
            return A * Y.sum(axis=0, keepdims=True) - Y
        return (A - Y) * _activation_derivative(self.activations[-1], Zs[-1], A)

    def _backward(self, params, Zs, As, Y):
        """Per-example backprop: ``[dZ_1, ..., dZ_L]`` with ``dZ_l[:, s] = d c_s / d Z_l[:, s]``
        (undivided by ``m``, without the L2 term)."""
        dZ = self._output_delta(Zs, As, Y)
        deltas = [dZ]
        for li in range(self.n_layers, 1, -1):
            dA = np.dot(params[f"W{li}"].T, dZ)
            dZ = dA * _activation_derivative(self.activations[li - 2], Zs[li - 2], As[li - 1])
            deltas.append(dZ)
        return deltas[::-1]
