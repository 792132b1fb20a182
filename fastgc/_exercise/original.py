"""The exercise's own code, as written, for the demo and the benchmarks to compare against.

``forward_propagation_n`` is generalised to any depth (the exercise's has three layers);
``backward_propagation_n`` keeps the exercise's two bugs (``dW2 * 2``, ``db1`` with ``4. / m``)
unless ``fixed=True``; ``gradient_check_n_loop`` is the exercise's Python loop, 2P forward
passes, each on a dict rebuilt from a copied vector.
"""

from __future__ import annotations

import numpy as np

from fastgc.gc_utils import (
    dictionary_to_vector,
    gradients_to_vector,
    relu,
    sigmoid,
    vector_to_dictionary,
)


def exercise_data():
    """The exercise's seeded data and parameters: ``(X, Y, parameters)``."""
    # RandomState(1) draws the same stream as the exercise's np.random.seed(1) + randn, without
    # touching numpy's global state.
    rng = np.random.RandomState(1)
    X = rng.randn(4, 3)
    Y = np.array([1, 1, 0])
    W1 = rng.randn(5, 4)
    b1 = rng.randn(5, 1)
    W2 = rng.randn(3, 5)
    b2 = rng.randn(3, 1)
    W3 = rng.randn(1, 3)
    b3 = rng.randn(1, 1)
    return X, Y, {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "W3": W3, "b3": b3}


def forward_propagation_n(X, Y, parameters):
    """LINEAR -> RELU -> ... -> LINEAR -> SIGMOID and the exercise's cross-entropy cost."""
    m = X.shape[1]
    n_layers = len(parameters) // 2
    A, cache = X, []
    for layer in range(1, n_layers + 1):
        W = parameters["W" + str(layer)]
        b = parameters["b" + str(layer)]
        Z = np.dot(W, A) + b
        A = relu(Z) if layer < n_layers else sigmoid(Z)
        cache.append((Z, A, W, b))
    log_probs = np.multiply(-np.log(A), Y) + np.multiply(-np.log(1 - A), 1 - Y)
    cost = 1.0 / m * np.sum(log_probs)
    return cost, cache


def backward_propagation_n(X, Y, cache, fixed=False):
    """The exercise's three-layer backprop, its two bugs kept unless ``fixed``."""
    m = X.shape[1]
    (Z1, A1, W1, b1), (Z2, A2, W2, b2), (Z3, A3, W3, b3) = cache
    dZ3 = A3 - Y
    dW3 = 1.0 / m * np.dot(dZ3, A2.T)
    db3 = 1.0 / m * np.sum(dZ3, axis=1, keepdims=True)
    dA2 = np.dot(W3.T, dZ3)
    dZ2 = np.multiply(dA2, np.int64(A2 > 0))
    dW2 = 1.0 / m * np.dot(dZ2, A1.T) * (1 if fixed else 2)
    db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dZ1 = np.multiply(dA1, np.int64(A1 > 0))
    dW1 = 1.0 / m * np.dot(dZ1, X.T)
    db1 = (1.0 if fixed else 4.0) / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dZ3": dZ3, "dW3": dW3, "db3": db3, "dA2": dA2, "dZ2": dZ2, "dW2": dW2,
            "db2": db2, "dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}


def gradient_check_n_loop(parameters, gradients, X, Y, epsilon=1e-7,
                          forward=forward_propagation_n):
    """The exercise's loop: 2P forward passes on dicts rebuilt from copied vectors.

    Returns ``(difference, gradapprox)`` (gradapprox flat).
    """
    parameters_values, _ = dictionary_to_vector(parameters)
    grad = gradients_to_vector(gradients)
    num_parameters = parameters_values.shape[0]
    J_plus = np.zeros((num_parameters, 1))
    J_minus = np.zeros((num_parameters, 1))
    gradapprox = np.zeros((num_parameters, 1))
    for i in range(num_parameters):
        theta_plus = np.copy(parameters_values)
        theta_plus[i] += epsilon
        J_plus[i], _ = forward(X, Y, vector_to_dictionary(theta_plus, parameters))
        theta_minus = np.copy(parameters_values)
        theta_minus[i] -= epsilon
        J_minus[i], _ = forward(X, Y, vector_to_dictionary(theta_minus, parameters))
        gradapprox[i] = (J_plus[i] - J_minus[i]) / (2 * epsilon)
    numerator = np.linalg.norm(grad - gradapprox)
    denominator = np.linalg.norm(grad) + np.linalg.norm(gradapprox)
    return numerator / denominator, gradapprox.ravel()
