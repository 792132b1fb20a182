"""Drop-in for the exercise's ``gc_utils`` helper module, generalised to any depth.

``from fastgc.gc_utils import sigmoid, relu, dictionary_to_vector, vector_to_dictionary,
gradients_to_vector`` gives the exercise's helpers with its semantics: column vectors, a list of
keys (one per entry), and the order W1, b1, W2, b2, ..., WL, bL. The exercise's network has
three layers; here the number of layers is read from the dict (W1..WL), and
``vector_to_dictionary`` takes the shapes it needs from a template dict or layer sizes
(default: the exercise's 4-5-3-1 network).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "dictionary_to_vector",
    "gradients_to_vector",
    "relu",
    "sigmoid",
    "vector_to_dictionary",
]

# The exercise's network: 4 inputs, hidden layers of 5 and 3 units, 1 output.
EXERCISE_LAYER_DIMS = (4, 5, 3, 1)


def sigmoid(x):
    """``1 / (1 + exp(-x))``, elementwise (the exercise's expression).

    Parameters
    ----------
    x : array_like
        Pre-activations.

    Returns
    -------
    numpy.ndarray
        The activations, with ``x``'s shape.
    """
    return 1 / (1 + np.exp(-x))


def relu(x):
    """``max(0, x)``, elementwise (the exercise's expression).

    Parameters
    ----------
    x : array_like
        Pre-activations.

    Returns
    -------
    numpy.ndarray
        The activations, with ``x``'s shape.
    """
    return np.maximum(0, x)


def layer_keys(mapping, prefix: str = "") -> list[str]:
    """``["W1", "b1", ..., "WL", "bL"]`` for the layers present in ``mapping``.

    Raises
    ------
    ValueError
        No ``W1``, or a layer with ``W`` but no ``b`` (keys named).
    """
    keys, layer = [], 1
    while f"{prefix}W{layer}" in mapping:
        w, b = f"{prefix}W{layer}", f"{prefix}b{layer}"
        if b not in mapping:
            raise ValueError(f"{w!r} is present but {b!r} is missing")
        keys += [w, b]
        layer += 1
    if not keys:
        raise ValueError(f"no {prefix}W1 key: expected keys {prefix}W1, {prefix}b1, ...; got "
                         f"{sorted(map(str, mapping))!r}")
    return keys


def dictionary_to_vector(parameters):
    """Flatten ``{"W1", "b1", ..., "WL", "bL"}`` into a column vector.

    Parameters
    ----------
    parameters : dict of ndarray
        ``W1, b1, ..., WL, bL`` (any depth; other keys are ignored).

    Returns
    -------
    theta : ndarray, shape (P, 1)
        The parameters in the order W1, b1, ..., WL, bL, each raveled in C order.
    keys : list of str
        The name of the parameter each entry of ``theta`` comes from.
    """
    keys, vectors = [], []
    for key in layer_keys(parameters):
        new_vector = np.reshape(parameters[key], (-1, 1))
        keys = keys + [key] * new_vector.shape[0]
        vectors.append(new_vector)
    return np.concatenate(vectors, axis=0), keys


def gradients_to_vector(gradients):
    """Flatten ``{"dW1", "db1", ..., "dWL", "dbL"}`` into a column vector.

    Parameters
    ----------
    gradients : dict of ndarray
        ``dW1, db1, ..., dWL, dbL``; other keys (``dZ1``, ``dA1``) are ignored.

    Returns
    -------
    ndarray, shape (P, 1)
        The gradients in the order of :func:`dictionary_to_vector`.
    """
    vectors = [np.reshape(gradients[key], (-1, 1)) for key in layer_keys(gradients, "d")]
    return np.concatenate(vectors, axis=0)


def layer_shapes(shapes=None) -> list[tuple[str, tuple]]:
    """``[("W1", (n1, n0)), ("b1", (n1, 1)), ...]`` from layer sizes or a template dict."""
    if shapes is None:
        shapes = EXERCISE_LAYER_DIMS
    if isinstance(shapes, dict):
        return [(key, np.shape(shapes[key])) for key in layer_keys(shapes)]
    dims = [int(n) for n in shapes]
    if len(dims) < 2 or min(dims) < 1:
        raise ValueError(f"layer sizes must be at least two positive ints, got {list(shapes)}")
    out = []
    for layer in range(1, len(dims)):
        out += [(f"W{layer}", (dims[layer], dims[layer - 1])), (f"b{layer}", (dims[layer], 1))]
    return out


def vector_to_dictionary(theta, shapes=None):
    """Unflatten a vector from :func:`~fastgc.gc_utils.dictionary_to_vector` into a parameter dict.

    Parameters
    ----------
    theta : ndarray, shape (P, 1) or (P,)
        The flat parameters.
    shapes : dict or sequence of int, optional
        A template parameter dict (its shapes are used), or layer sizes ``[n0, n1, ..., nL]``.
        Default: the exercise's network, ``[4, 5, 3, 1]``.

    Returns
    -------
    dict
        ``{"W1": ..., "b1": ..., ...}``; arrays are reshaped slices of ``theta``, as in the
        exercise.
    """
    theta = np.asarray(theta)
    layout = layer_shapes(shapes)
    total = sum(int(np.prod(shape)) for _, shape in layout)
    if theta.size != total:
        raise ValueError(f"theta has {theta.size} entries but the shapes {layout} need {total}")
    parameters, start = {}, 0
    for key, shape in layout:
        size = int(np.prod(shape))
        parameters[key] = theta[start : start + size].reshape(shape)
        start += size
    return parameters
