"""The activations of fastgc's dense network: one table, read by the model and by the engine.

Each row holds an activation's integer code (how the numba kernels name it), its forward map,
its derivative in the two forms the code needs, and the properties the engine's shortcuts
branch on. ``fastgc._network.mlp`` takes its forward pass and backprop from here and the engine its
cached slopes and codes, so an activation is added or changed in one place. The numba scalar
forms (stable differences ``g(z + d) - g(z)``, slopes, Taylor coefficients) are keyed by the
same codes in `fastgc._network.differences`.

This module imports numpy only: ``fastgc._network.mlp`` imports it, and ``fastgc.MLP`` must not pull
in numba until an engine runs.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["LEAKY_SLOPE", "NAMES", "TABLE", "activate", "code", "derivative", "second_derivative",
           "stable_derivative"]

LEAKY_SLOPE = 0.01

# Integer codes shared with the kernels (numba dispatches on ints, not strings).
IDENTITY, RELU, LEAKY, TANH, SIGMOID, SOFTMAX = 0, 1, 2, 3, 4, 5


class Activation(NamedTuple):
    """One row of the activation table.

    Attributes
    ----------
    code : int
        The kernels' integer code.
    forward : callable
        ``g(Z)``, elementwise (softmax: over each column).
    derivative : callable
        ``g'(Z)`` from ``(Z, A)`` with ``A = g(Z)``: the form the reference backprop uses.
    slope : callable
        ``g'(Z)`` from ``Z`` alone in overflow-free form (``sech^2`` and ``s(z) s(-z)`` via
        ``exp(-|z|)``): the engine's cached slopes, which must stay exact where ``A`` has
        rounded to its limit.
    piecewise_linear : bool
        Linear on each side of 0 (the engine's exact linear shortcut applies).
    kinked : bool
        Not differentiable at 0 (a step may cross the kink).
    """

    code: int
    forward: Callable
    derivative: Callable
    slope: Callable
    piecewise_linear: bool
    kinked: bool


def _ones(Z, A=None):
    return np.ones_like(Z)


def _step(Z, A=None):
    return (Z > 0).astype(np.float64)


def _leaky_step(Z, A=None):
    return np.where(Z > 0, 1.0, LEAKY_SLOPE)


def _sech2(Z):
    e = np.exp(-2.0 * np.abs(Z))  # sech^2 z = 4 e / (1 + e)^2, e = exp(-2|z|): no overflow
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def _logistic_slope(Z):
    e = np.exp(-np.abs(Z))  # s(z) s(-z) = e / (1 + e)^2, e = exp(-|z|)
    return e / ((1.0 + e) * (1.0 + e))


def _softmax(Z):
    # Over the units of each example (a column); shifting by the column maximum keeps exp from
    # overflowing without changing the result.
    E = np.exp(Z - Z.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)


# relu and sigmoid use the exercise's exact expressions, so that the model's costs are
# bit-identical to its forward_propagation_n. Softmax's derivative is never taken elementwise
# (the ce loss works on the logits); its rows give ones so that per-layer code needs no branch.
TABLE = {
    "relu": Activation(RELU, lambda Z: np.maximum(0, Z), _step, _step, True, True),
    "leaky_relu": Activation(LEAKY, lambda Z: np.where(Z > 0, Z, LEAKY_SLOPE * Z), _leaky_step,
                             _leaky_step, True, True),
    "tanh": Activation(TANH, np.tanh, lambda Z, A: 1 - A * A, _sech2, False, False),
    "sigmoid": Activation(SIGMOID, lambda Z: 1 / (1 + np.exp(-Z)), lambda Z, A: A * (1 - A),
                          _logistic_slope, False, False),
    "identity": Activation(IDENTITY, lambda Z: Z, _ones, _ones, True, False),
    "softmax": Activation(SOFTMAX, _softmax, _ones, _ones, False, False),
}
NAMES = tuple(TABLE)


def activate(name, Z):
    """``g(Z)`` for activation ``name``.

    Parameters
    ----------
    name : str
        A key of `TABLE`.
    Z : numpy.ndarray
        Pre-activations, units along axis 0 and examples along axis 1.

    Returns
    -------
    numpy.ndarray
    """
    return TABLE[name].forward(Z)


def derivative(name, Z, A):
    """``g'(Z)`` elementwise from ``Z`` and ``A = g(Z)`` (the reference backprop's form).

    Parameters
    ----------
    name : str
        A key of `TABLE` (softmax gives ones: its loss differentiates the logits).
    Z, A : numpy.ndarray
        Pre-activations and activations of one layer.

    Returns
    -------
    numpy.ndarray
    """
    return TABLE[name].derivative(Z, A)


# g''(Z) from A = g(Z), for MLP.hvp's R-op. The piecewise linear ones have g'' = 0 away from
# their kink (the Hessian of a relu network is piecewise constant in the pre-activations);
# softmax's curvature is taken with its loss, on the logits.
_SECOND = {
    "relu": lambda Z, A: np.zeros_like(Z),
    "leaky_relu": lambda Z, A: np.zeros_like(Z),
    "tanh": lambda Z, A: -2.0 * A * (1.0 - A * A),
    "sigmoid": lambda Z, A: A * (1.0 - A) * (1.0 - 2.0 * A),
    "identity": lambda Z, A: np.zeros_like(Z),
    "softmax": lambda Z, A: np.zeros_like(Z),
}
assert set(_SECOND) == set(TABLE)


def second_derivative(name, Z, A):
    """``g''(Z)`` elementwise from ``Z`` and ``A = g(Z)`` (zero for the piecewise linear
    activations away from 0, and for softmax, whose curvature its loss carries).

    Parameters
    ----------
    name : str
        A key of `TABLE`.
    Z, A : numpy.ndarray
        Pre-activations and activations of one layer.

    Returns
    -------
    numpy.ndarray
    """
    return _SECOND[name](Z, A)


def stable_derivative(name, Z):
    """``g'(Z)`` elementwise from ``Z`` alone, without overflow or loss to ``A``'s rounding.

    Parameters
    ----------
    name : str
        A key of `TABLE`.
    Z : numpy.ndarray
        Pre-activations.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``Z``.
    """
    return TABLE[name].slope(Z)


def code(name):
    """The kernels' integer code of activation ``name``."""
    return TABLE[name].code
