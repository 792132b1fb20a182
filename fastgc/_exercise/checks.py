"""The exercise's two checks, with its numbers, on top of fastgc.

``gradient_check`` is the 1-D check of ``J(theta) = theta * x``. ``gradient_check_n`` is the
N-D check of the LINEAR->RELU->...->LINEAR->SIGMOID network: by default fastgc's loop engine
runs the exercise's own forward pass (``np.dot``, the same cost expression) one perturbed point
at a time, so the numbers are the exercise's to the last bit; ``engine="network"`` runs the
same check through the fast network engine.

One deliberate change: the exercise's 1-D cell divides by ``sum(grad**2) - sum(gradapprox**2)``,
which is not the relative difference its text defines (and can be negative). fastgc uses
``||g - a|| / (||g|| + ||a||)`` everywhere.
"""

from __future__ import annotations

import numpy as np

from fastgc._core.result import _use_color
from fastgc._core.validate import positive_float
from fastgc._core.verdict import relative_difference

__all__ = ["gradient_check", "gradient_check_n"]

EXERCISE_THRESHOLD = 2e-7


def _message(difference: float, threshold: float) -> str:
    color = _use_color()
    if difference > threshold:
        text, code = "There is a mistake in the backward propagation!", "93"
    else:
        text, code = "Your backward propagation works perfectly fine!", "92"
    text = f"{text} difference = {difference}"
    return f"\033[{code}m{text}\033[0m" if color else text


def gradient_check(x, theta, epsilon=1e-7, print_msg=False):
    """The exercise's 1-D check of ``J(theta) = theta * x`` against ``dJ/dtheta = x``.

    Parameters
    ----------
    x, theta : float
        The input and the parameter.
    epsilon : float
        The step of the central difference.
    print_msg : bool
        Print the exercise's verdict (difference above or below 2e-7).

    Returns
    -------
    float
        ``|grad - gradapprox| / (|grad| + |gradapprox|)``.

    Examples
    --------
    >>> from fastgc import gradient_check
    >>> gradient_check(2, 4) < 1e-9
    True
    """
    positive_float(epsilon, "epsilon")  # validated only: the exercise's arithmetic uses it as given
    theta_plus = theta + epsilon
    theta_minus = theta - epsilon
    j_plus = theta_plus * x
    j_minus = theta_minus * x
    gradapprox = (j_plus - j_minus) / (2 * epsilon)
    grad = x
    difference = relative_difference(np.asarray(grad, dtype=float),
                                     np.asarray(gradapprox, dtype=float))
    if print_msg:
        print(_message(difference, EXERCISE_THRESHOLD))
    return difference


def gradient_check_n(parameters, gradients, X, Y, epsilon=1e-7, print_msg=False, forward=None,
                     engine="loop"):
    """The exercise's N-D gradient check, any depth, with fast engines on request.

    Parameters
    ----------
    parameters : dict
        ``{"W1": ..., "b1": ..., ..., "WL": ..., "bL": ...}``.
    gradients : dict
        The backprop's output, with ``"dW1"``, ``"db1"``, ... (other keys such as ``"dZ1"``
        are ignored, as in the exercise).
    X, Y : ndarray
        Inputs (features x examples) and labels.
    epsilon : float
        Step of the central difference (the exercise's 1e-7).
    print_msg : bool
        Print the exercise's verdict (difference above or below 2e-7).
    forward : callable, optional
        The user's ``forward_propagation_n(X, Y, parameters) -> (cost, cache)``. Default:
        fastgc's LINEAR->RELU->...->LINEAR->SIGMOID network with the exercise's cross-entropy
        cost, of the depth the parameter dict has, in the exercise's own arithmetic
        (``fastgc._exercise.original.forward_propagation_n``; with ``engine="network"``, a
        :class:`fastgc.MLP`).
    engine : {"loop", "network", "auto", ...}
        ``"loop"`` (default) reproduces the exercise's numbers exactly; ``"network"`` (only
        with ``forward=None``) runs the fast network engine, which gives the same verdicts.

    Returns
    -------
    float
        The relative difference ``||grad - gradapprox|| / (||grad|| + ||gradapprox||)``.

    Examples
    --------
    The exercise's network and its two-bug backprop (``fastgc._exercise.original`` keeps the
    exercise's own code), and the exercise's number for it, to the bit:

    >>> import fastgc
    >>> from fastgc._exercise.original import (exercise_data, forward_propagation_n,
    ...                                        backward_propagation_n)
    >>> X, Y, parameters = exercise_data()
    >>> cost, cache = forward_propagation_n(X, Y, parameters)
    >>> gradients = backward_propagation_n(X, Y, cache)
    >>> fastgc.gradient_check_n(parameters, gradients, X, Y)
    0.2850931567761623
    """
    from fastgc._check import check
    from fastgc._exercise.original import forward_propagation_n
    from fastgc._network.mlp import MLP
    from fastgc.gc_utils import layer_keys

    if not isinstance(parameters, dict):
        raise TypeError(f"parameters must be a dict {{'W1': ..., 'b1': ...}}, not "
                        f"{type(parameters).__name__}")
    keys = layer_keys(parameters)
    params = {k: parameters[k] for k in keys}
    if forward is None and engine in ("network", "auto"):
        dims = [np.shape(parameters["W1"])[1]] + [np.shape(parameters[k])[0] for k in keys[::2]]
        cost = MLP(dims, "relu", "bce")
    elif forward is None:
        # The exercise's own arithmetic, generalised to depth: its numbers to the last bit.
        def cost(p, X, Y):
            return forward_propagation_n(X, Y, p)
    else:
        if not callable(forward):
            raise TypeError(f"forward must be callable, not {type(forward).__name__}")
        if engine == "network":
            raise ValueError("engine='network' runs fastgc's own network: use it with "
                             "forward=None")

        def cost(p, X, Y):
            return forward(X, Y, p)

    result = check(cost, gradients, params, X, Y, eps=epsilon, threshold=EXERCISE_THRESHOLD,
                   engine=engine)
    difference = result.difference
    if print_msg:
        print(_message(difference, EXERCISE_THRESHOLD))
    return difference
