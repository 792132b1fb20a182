"""The bench's problems: seeded dense networks with data, and their reference gradients.

A :class:`Workload` names a network (sizes, hidden activation, loss, batch) and the seeds of
its parameters and data; :meth:`Workload.build` turns it into a :class:`Problem` with the
reference backprop. Every seeded network the bench times comes from here (``fastgc bench``,
``bench/*.py``), so that two benchmarks of "the MNIST-sized network" time the same numbers.
The exercise-style numpy forwards of the loop contenders live here too: they are the problem's
cost as the exercise would write it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastgc._exercise import original as ref
from fastgc.gc_utils import relu, sigmoid

__all__ = [
    "WORKLOADS",
    "Problem",
    "Workload",
    "batched_cost",
    "exercise_forward",
    "forward_propagation_softmax",
    "seeded_data",
    "workload",
]


def seeded_data(dims, loss, m, seed):
    """Inputs and labels for a network ``dims``, drawn from ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    dims : sequence of int
        ``(n0, ..., nL)``.
    loss : {"bce", "ce"}
        ``"ce"``: one-hot columns; ``"bce"``: 0/1 labels, each with probability 1/2.
    m : int
        Examples.
    seed : int or numpy.random.Generator

    Returns
    -------
    X : ndarray, shape (n0, m)
        Standard normal.
    Y : ndarray, shape (nL, m)
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((dims[0], m))
    if loss == "ce":
        Y = np.eye(dims[-1])[:, rng.integers(0, dims[-1], m)]
    else:
        Y = (rng.random((dims[-1], m)) < 0.5).astype(np.float64)
    return X, Y


@dataclass(frozen=True)
class Workload:
    """A seeded dense network with data.

    Attributes
    ----------
    name : str
        Short name used on the command line and in ids (``"mnist"``).
    dims : tuple of int
        ``(n0, n1, ..., nL)``.
    loss : str
        ``"bce"`` (sigmoid output) or ``"ce"`` (softmax output).
    m : int
        Examples in the batch.
    hidden : str
        Activation of the hidden layers (``"relu"``).
    params_seed, data_seed : int
        Seeds of ``MLP.init`` and of :func:`seeded_data`. The workload named ``"exercise"``
        ignores both: it is the exercise's own data and parameters.
    """

    name: str
    dims: tuple
    loss: str
    m: int
    hidden: str = "relu"
    params_seed: int = 0
    data_seed: int = 1

    @property
    def param_count(self) -> int:
        """Number of parameters ``P``."""
        return sum(self.dims[i] * self.dims[i - 1] + self.dims[i] for i in range(1, len(self.dims)))

    @property
    def title(self) -> str:
        """``"784-256-128-10 relu/softmax/ce, m=64, P=235,146"``."""
        out = "sigmoid" if self.loss == "bce" else "softmax"
        shape = "-".join(str(n) for n in self.dims)
        return f"{shape} {self.hidden}/{out}/{self.loss}, m={self.m}, P={self.param_count:,}"

    def build(self) -> Problem:
        """The network, its parameters, data and reference gradient.

        Returns
        -------
        Problem
        """
        from fastgc._network.mlp import MLP

        net = MLP(list(self.dims), self.hidden, self.loss)
        if self.name == "exercise":
            # The exercise's numbers, so that its loop row reproduces the exercise exactly.
            X, Y, params = ref.exercise_data()
            Y = np.asarray(Y, dtype=np.float64).reshape(1, -1)
        else:
            params = net.init(seed=self.params_seed)
            X, Y = seeded_data(self.dims, self.loss, self.m, self.data_seed)
        grads = net.gradients(params, X, Y)
        theta = net.flatten(params)
        reference = net.flatten({k[1:]: v for k, v in grads.items()})
        return Problem(self, net, params, X, Y, grads, theta, reference)


WORKLOADS = (
    Workload("exercise", (4, 5, 3, 1), "bce", 3),
    Workload("medium", (64, 128, 64, 1), "bce", 128),
    Workload("mnist", (784, 256, 128, 10), "ce", 64),
    Workload("large", (784, 1024, 1024, 10), "ce", 32),
)


def workload(name: str) -> Workload:
    """The workload of :data:`WORKLOADS` called ``name``.

    Raises
    ------
    KeyError
        With the names there are.
    """
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise KeyError(f"no workload {name!r}; choose from {[w.name for w in WORKLOADS]}")


@dataclass
class Problem:
    """A built workload: ``net``, ``params``, ``X``, ``Y``, ``grads`` (the reference
    backprop), ``theta`` (flat parameters) and ``reference`` (flat reference gradient)."""

    workload: Workload
    net: object
    params: dict
    X: np.ndarray
    Y: np.ndarray
    grads: dict
    theta: np.ndarray
    reference: np.ndarray

    @property
    def P(self) -> int:
        """Number of parameters."""
        return self.theta.size


# ---- exercise-style forwards -------------------------------------------------------------


def forward_propagation_softmax(X, Y, parameters):
    """The exercise's ``forward_propagation_n`` with a softmax output and cross-entropy.

    LINEAR -> RELU -> ... -> LINEAR -> SOFTMAX, cost ``-(1/m) sum(Y log A)`` (log-softmax from
    the logits), plain numpy, for the ``ce`` workloads.

    Parameters
    ----------
    X : ndarray, shape (n0, m)
    Y : ndarray, shape (nL, m)
    parameters : dict
        ``{"W1": ..., "b1": ..., ...}``.

    Returns
    -------
    cost : float
    cache : list
        ``(Z, A, W, b)`` per layer, as the exercise's.
    """
    m = X.shape[1]
    n_layers = len(parameters) // 2
    A, cache = X, []
    for layer in range(1, n_layers + 1):
        W = parameters["W" + str(layer)]
        b = parameters["b" + str(layer)]
        Z = np.dot(W, A) + b
        if layer < n_layers:
            A = relu(Z)
        else:
            shifted = Z - Z.max(axis=0, keepdims=True)
            log_A = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
            A = np.exp(log_A)
        cache.append((Z, A, W, b))
    cost = -1.0 / m * np.sum(Y * log_A)
    return cost, cache


def exercise_forward(problem: Problem):
    """The exercise-style forward for ``problem``'s loss (relu hidden layers, as the
    exercise's)."""
    if problem.workload.loss == "bce":
        return ref.forward_propagation_n
    return forward_propagation_softmax


def batched_cost(dims, loss):
    """A ``@fastgc.batched`` numpy cost of the network ``dims`` (relu hidden layers).

    Parameters
    ----------
    dims : sequence of int
    loss : {"bce", "ce"}

    Returns
    -------
    callable
        ``cost(params, X, Y)`` where each ``params[name]`` has a leading batch axis
        (``W1`` of shape ``(B, n1, n0)``); returns ``B`` costs. ``np.matmul`` broadcasts over
        the batch axis.
    """
    from fastgc._engines.registry import batched

    n_layers = len(dims) - 1

    @batched
    def cost(params, X, Y):
        m = X.shape[1]
        A = X
        for layer in range(1, n_layers + 1):
            Z = np.matmul(params[f"W{layer}"], A) + params[f"b{layer}"]
            A = relu(Z) if layer < n_layers else Z
        if loss == "bce":
            A = sigmoid(Z)
            log_probs = np.multiply(-np.log(A), Y) + np.multiply(-np.log(1 - A), 1 - Y)
            return 1.0 / m * np.sum(log_probs, axis=(-2, -1))
        shifted = Z - Z.max(axis=-2, keepdims=True)
        log_A = shifted - np.log(np.exp(shifted).sum(axis=-2, keepdims=True))
        return -1.0 / m * np.sum(Y * log_A, axis=(-2, -1))

    return cost
