"""The comparison runner behind ``fastgc bench`` (and the table that ``bench/`` times).

Workloads are seeded dense networks with data; contenders are ways to check their gradient:
the exercise's loop, fastgc's engines, and the peers that are installed (scipy, numdifftools,
torch). Every contender is one small :class:`Contender` in the table :data:`CONTENDERS`, so a
new mode or method of ``fastgc.check`` is one line there.

A contender whose full check would take too long on a workload is timed on a seeded subset of
coordinates spread over every parameter block and its time scaled by ``P / subset``: the row
says so (``extrapolated``). Every timed call is warmed up first (JIT compile outside the timing)
and its result is checked against the network's reference backprop on a sample of coordinates.

This module is private: the CLI (``fastgc bench``) and ``bench/`` are its users.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import _reference as ref
from .gc_utils import dictionary_to_vector, relu, sigmoid, vector_to_dictionary

__all__ = [
    "CONTENDERS",
    "WORKLOADS",
    "Contender",
    "Problem",
    "Workload",
    "flop_floor_seconds",
    "run_bench",
]

# The exercise's step and threshold (its loop reports "passed" below 2e-7).
EXERCISE_EPSILON = 1e-7
EXERCISE_THRESHOLD = 2e-7

# Quick mode: a row whose first timed call takes longer than this is timed once, without the
# memory run (keeps ``fastgc bench`` within a few minutes on two cores).
SLOW_SECONDS = 1.5

# How many coordinates are compared with the reference backprop after a timed call.
SAMPLE = 200


# ---- workloads ---------------------------------------------------------------------------


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
        ``"bce"`` (sigmoid output) or ``"ce"`` (softmax output); hidden layers are relu.
    m : int
        Examples in the batch.
    """

    name: str
    dims: tuple
    loss: str
    m: int

    @property
    def param_count(self) -> int:
        """Number of parameters ``P``."""
        return sum(self.dims[i] * self.dims[i - 1] + self.dims[i] for i in range(1, len(self.dims)))

    @property
    def title(self) -> str:
        """``"784-256-128-10 relu/softmax/ce, m=64, P=235,146"``."""
        out = "sigmoid" if self.loss == "bce" else "softmax"
        shape = "-".join(str(n) for n in self.dims)
        return f"{shape} relu/{out}/{self.loss}, m={self.m}, P={self.param_count:,}"

    def build(self) -> Problem:
        """The network, its parameters, data and reference gradient."""
        from ._mlp import MLP

        net = MLP(list(self.dims), "relu", self.loss)
        if self.name == "exercise":
            X, Y, params = ref.exercise_data()
            Y = np.asarray(Y, dtype=np.float64).reshape(1, -1)
        else:
            params = net.init(seed=0)
            rng = np.random.default_rng(1)
            X = rng.standard_normal((self.dims[0], self.m))
            if self.loss == "ce":
                Y = np.eye(self.dims[-1])[:, rng.integers(0, self.dims[-1], self.m)]
            else:
                Y = (rng.random((1, self.m)) < 0.5).astype(np.float64)
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

    def spread(self, size: int, seed: int = 0) -> np.ndarray:
        """A seeded subset of about ``size`` coordinates spread over every block (sorted).

        Each block gets a share proportional to its size, and at least 4 coordinates (or all
        of a smaller block).
        """
        rng = np.random.default_rng(seed)
        if size >= self.P:
            return np.arange(self.P, dtype=np.int64)
        picks, start = [], 0
        for _, shape in self.net.param_shapes():
            n = shape[0] * shape[1]
            k = min(n, max(4, round(size * n / self.P)))
            picks.append(start + rng.choice(n, size=k, replace=False))
            start += n
        return np.sort(np.concatenate(picks)).astype(np.int64)


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
    """The exercise-style forward for ``problem``'s loss."""
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
    from ._objective import batched

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


# ---- outcomes and contenders -------------------------------------------------------------


@dataclass
class Outcome:
    """What one timed call produced.

    Attributes
    ----------
    index : ndarray or None
        The coordinates whose numeric derivative is in ``numeric`` (None: all of them).
    numeric : ndarray or None
        Numeric derivatives at ``index`` (None when the contender returns none).
    passed : bool or None
        The contender's own verdict, where it gives one.
    nfev : int
        Cost evaluations (forward passes) performed.
    error_norm : float or None
        For contenders that return only ``||g - a||`` (scipy's check_grad).
    """

    index: np.ndarray | None
    numeric: np.ndarray | None
    passed: bool | None
    nfev: int
    error_norm: float | None = None


@dataclass(frozen=True)
class Contender:
    """One way to check a workload's gradient: a row of every workload's table.

    Attributes
    ----------
    name : str
        Short id (``"network"``) used in pytest ids and the JSON.
    label : str
        The table's text.
    make : callable
        ``make(problem) -> run`` where ``run(index)`` checks the coordinates ``index`` (None:
        a full check) and returns an :class:`Outcome`.
    requires : str or None
        Module that must be importable (a peer); otherwise the row is skipped.
    full_cap : int or None
        Largest ``P`` checked in full in quick mode (``10 x`` that in full mode); above it the
        time is extrapolated from a subset. None: always full.
    subset : int
        Coordinates timed when extrapolating (quick mode; ``4 x`` in full mode).
    max_params : int or None
        Skip above this ``P`` (memory).
    available : callable or None
        ``available() -> reason or None``: why the row cannot run here (e.g. an option
        ``fastgc.check`` does not have yet).
    subsettable : bool
        Whether ``run`` accepts an index (else it is capped, not extrapolated).
    traced_memory : bool
        Whether its allocations are visible to tracemalloc (torch's are not).
    exercise_threshold : bool
        The verdict uses the exercise's threshold on the relative difference.
    """

    name: str
    label: str
    make: Callable
    requires: str | None = None
    full_cap: int | None = None
    subset: int = 200
    max_params: int | None = None
    available: Callable | None = None
    subsettable: bool = True
    traced_memory: bool = True
    exercise_threshold: bool = False

    def skip_reason(self, problem: Problem | None = None) -> str | None:
        """Why this contender cannot run (on ``problem``), or None."""
        if self.requires is not None:
            import importlib.util

            if importlib.util.find_spec(self.requires) is None:
                return f"{self.requires} is not installed (pip install \".[bench]\")"
        if self.available is not None:
            reason = self.available()
            if reason:
                return reason
        if problem is not None and self.max_params is not None and problem.P > self.max_params:
            return f"P = {problem.P:,} > {self.max_params:,} (memory cap)"
        return None


class _Counter:
    """Wraps a cost and counts calls (``nfev``)."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def _subspace(problem: Problem, index):
    """``theta`` with the coordinates ``index`` replaced: a function of the subset only."""
    base = problem.theta.copy()

    def full(x_sub):
        theta = base.copy()
        theta[index] = x_sub
        return theta

    return full


# Exercise's loop -----------------------------------------------------------------------


def _make_exercise_loop(problem: Problem):
    forward = _Counter(exercise_forward(problem))
    params, X, Y = problem.params, problem.X, problem.Y
    if problem.workload.name == "exercise":
        Y = ref.exercise_data()[1]

    def run(index):
        forward.calls = 0
        if index is None:
            difference, approx = ref.gradient_check_n_loop(
                params, problem.grads, X, Y, epsilon=EXERCISE_EPSILON, forward=forward
            )
            return Outcome(None, approx, difference < EXERCISE_THRESHOLD, forward.calls)
        approx = exercise_loop_subset(params, X, Y, index, forward, EXERCISE_EPSILON)
        g = problem.reference[index]
        difference = np.linalg.norm(g - approx) / (np.linalg.norm(g) + np.linalg.norm(approx))
        return Outcome(index, approx, difference < EXERCISE_THRESHOLD, forward.calls)

    return run


def exercise_loop_subset(parameters, X, Y, index, forward, epsilon=EXERCISE_EPSILON):
    """The body of the exercise's loop, run on the coordinates ``index`` only.

    Parameters
    ----------
    parameters : dict
    X, Y : ndarray
    index : sequence of int
    forward : callable
        ``forward(X, Y, parameters) -> (cost, cache)``.
    epsilon : float

    Returns
    -------
    ndarray
        ``gradapprox`` at ``index``.
    """
    parameters_values, _ = dictionary_to_vector(parameters)
    gradapprox = np.zeros(len(index))
    for j, i in enumerate(index):
        theta_plus = np.copy(parameters_values)
        theta_plus[i] += epsilon
        J_plus, _ = forward(X, Y, vector_to_dictionary(theta_plus, parameters))
        theta_minus = np.copy(parameters_values)
        theta_minus[i] -= epsilon
        J_minus, _ = forward(X, Y, vector_to_dictionary(theta_minus, parameters))
        gradapprox[j] = (J_plus - J_minus) / (2 * epsilon)
    return gradapprox


# fastgc ---------------------------------------------------------------------------------


def _check_options():
    from ._check import check

    return set(inspect.signature(check).parameters)


def _check_methods():
    from . import _check

    return tuple(getattr(_check, "METHODS", ("central",)))


def _fastgc_available(engine, options):
    def available():
        missing = sorted(set(options) - _check_options())
        if missing:
            return f"fastgc.check has no {', '.join(m + '=' for m in missing)} option yet"
        method = options.get("method")
        if method is not None and method not in _check_methods():
            return f"fastgc.check has no method={method!r} yet"
        return None

    return available


def _fastgc_cost(problem: Problem, engine: str):
    if engine == "stacked":
        return batched_cost(problem.workload.dims, problem.workload.loss)
    return problem.net


def _make_fastgc(engine: str, **options):
    """``make`` for a ``fastgc.check(..., engine=engine, **options)`` row.

    Extrapolated rows run ``fastgc.check(..., subset=k)`` (a seeded stratified subset of
    ``k`` coordinates, the same work per coordinate as the full check).
    """

    def make(problem: Problem):
        from ._check import check

        cost = _fastgc_cost(problem, engine)

        def run(index):
            extra = dict(options)
            if index is not None:
                extra["subset"] = int(len(index))
            result = check(cost, problem.grads, problem.params, problem.X, problem.Y,
                           engine=engine, **extra)
            try:
                numeric = problem.net.flatten(result.numeric)
            except (ValueError, TypeError, AttributeError):  # a mode without coordinates
                numeric = np.full(problem.P, np.nan)
            finite = np.isfinite(numeric)
            if finite.all():
                return Outcome(None, numeric, bool(result.passed), int(result.nfev))
            checked = np.flatnonzero(finite)
            return Outcome(checked, numeric[checked] if checked.size else None,
                           bool(result.passed), int(result.nfev))

        return run

    return make


def _make_kernel(problem: Problem):
    """The network kernel alone: ``coordinate_deltas`` for every +h/-h pair."""
    from ._network_kernel import coordinate_deltas
    from ._scheme import coordinate_steps

    net, theta, X, Y = problem.net, problem.theta, problem.X, problem.Y
    index = np.arange(problem.P, dtype=np.int64)
    step = coordinate_steps(theta, index, None)
    index2 = np.concatenate([index, index])
    step2 = np.concatenate([step, -step])

    def run(_index):
        d = coordinate_deltas(net, theta, X, Y, index2, step2)
        numeric = (d[: index.size] - d[index.size :]) / (2 * step)
        return Outcome(None, numeric, None, index2.size)

    return run


# Peers -----------------------------------------------------------------------------------


def _make_check_grad(direction: str):
    def make(problem: Problem):
        from scipy.optimize import check_grad

        net, X, Y = problem.net, problem.X, problem.Y

        def run(index):
            if index is None:
                index_ = np.arange(problem.P, dtype=np.int64)
            else:
                index_ = np.asarray(index)
            full = _subspace(problem, index_)
            f = _Counter(lambda x: net(net.unflatten(full(x)), X, Y))

            def grad(x):
                g = net.gradients(net.unflatten(full(x)), X, Y)
                return net.flatten({k[1:]: v for k, v in g.items()})[index_]

            err = check_grad(f, grad, problem.theta[index_], direction=direction,
                             rng=np.random.default_rng(0))
            scale = np.linalg.norm(problem.reference[index_])
            return Outcome(index, None, bool(err <= 1e-4 * scale), f.calls, float(err))

        return run

    return make


def _make_numdifftools(problem: Problem):
    import numdifftools as nd

    net, X, Y = problem.net, problem.X, problem.Y

    def run(index):
        index_ = np.arange(problem.P) if index is None else np.asarray(index)
        full = _subspace(problem, index_)
        f = _Counter(lambda x: net(net.unflatten(full(x)), X, Y))
        # A fixed small step: numdifftools' default steps (up to ~1) cross relu kinks.
        gradient = nd.Gradient(f, step=1e-4, method="central")
        numeric = np.asarray(gradient(problem.theta[index_]))
        return Outcome(index, numeric.ravel(), None, f.calls)

    return run


def _make_jacobian(problem: Problem):
    from scipy.differentiate import jacobian

    cost = batched_cost(problem.workload.dims, problem.workload.loss)
    net, X, Y = problem.net, problem.X, problem.Y
    shapes = net.param_shapes()
    calls = [0]

    def f(xi):
        # xi: (P, ...) -> costs of shape (...): the stacked cost over the flattened tail.
        tail = xi.shape[1:]
        flat = xi.reshape(xi.shape[0], -1).T  # (B, P)
        calls[0] += flat.shape[0]
        params, start = {}, 0
        for name, shape in shapes:
            size = shape[0] * shape[1]
            params[name] = flat[:, start : start + size].reshape((-1,) + shape)
            start += size
        return cost(params, X, Y).reshape(tail)

    def run(_index):
        calls[0] = 0
        res = jacobian(f, problem.theta, initial_step=1e-3)
        # res.success is about its own tolerance, not a verdict on the gradient.
        return Outcome(None, np.asarray(res.df).ravel(), None, calls[0])

    return run


def _torch_cost(problem: Problem):
    import torch

    shapes = problem.net.param_shapes()
    X = torch.from_numpy(problem.X)
    Y = torch.from_numpy(problem.Y)
    loss, m, L = problem.workload.loss, problem.X.shape[1], len(shapes) // 2

    def cost(theta):
        A, start = X, 0
        for layer in range(1, L + 1):
            (_, (n, k)), (_, _) = shapes[2 * layer - 2], shapes[2 * layer - 1]
            W = theta[start : start + n * k].reshape(n, k)
            b = theta[start + n * k : start + n * k + n].reshape(n, 1)
            start += n * k + n
            Z = W @ A + b
            A = torch.relu(Z) if layer < L else Z
        if loss == "bce":
            A = torch.sigmoid(Z)
            return (-(torch.log(A) * Y) - torch.log(1 - A) * (1 - Y)).sum() / m
        return -(Y * torch.log_softmax(Z, dim=0)).sum() / m

    return cost


def _make_gradcheck(fast_mode: bool):
    def make(problem: Problem):
        import torch
        from torch.autograd import gradcheck

        cost = _torch_cost(problem)
        base = torch.from_numpy(problem.theta.copy())

        def run(index):
            calls = [0]
            if index is None:
                def fn(x):
                    calls[0] += 1
                    return cost(x)

                x0 = base.clone().requires_grad_(True)
            else:
                idx = torch.from_numpy(np.asarray(index, dtype=np.int64))

                def fn(x):
                    calls[0] += 1
                    return cost(base.index_put((idx,), x))

                x0 = base[idx].clone().requires_grad_(True)
            passed = gradcheck(fn, (x0,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=fast_mode,
                               raise_exception=False)
            return Outcome(index, None, bool(passed), calls[0])

        return run

    return make


def _fastgc_row(name, label, engine, full_cap=None, **options):
    """A table row for ``fastgc.check(..., engine=engine, **options)``."""
    available = _fastgc_available(engine, options) if options else None
    return Contender(name, label, _make_fastgc(engine, **options), full_cap=full_cap,
                     available=available,
                     subsettable=not {"subset", "directions"} & set(options))


# The table: one line per contender. The first is the baseline of every speed-up.
CONTENDERS = (
    Contender("exercise-loop", "exercise's loop (gradient_check_n)", _make_exercise_loop,
              full_cap=2_000, exercise_threshold=True),
    _fastgc_row("loop", "fastgc, engine='loop'", "loop", full_cap=2_000),
    _fastgc_row("stacked", "fastgc, engine='stacked' (@batched numpy)", "stacked",
                full_cap=2_000),
    _fastgc_row("network", "fastgc, engine='network'", "network"),
    Contender("kernel", "  network kernel alone (coordinate_deltas)", _make_kernel,
              subsettable=False),
    # Modes and methods other engineers add to fastgc.check run once check accepts them.
    _fastgc_row("network-subset", "fastgc network, subset=256", "network", subset=256),
    _fastgc_row("network-directions", "fastgc network, directions=2", "network",
                directions=2),
    # Richardson is timed in full up to the MNIST-sized network: on a small subset its per-call
    # set-up (the kernel's forward pass and tables, once per scipy iteration) dominates and the
    # extrapolation would overstate a full run several-fold.
    _fastgc_row("network-richardson", "fastgc network, method='richardson'", "network",
                method="richardson", full_cap=300_000),
    _fastgc_row("network-complex", "fastgc network, method='complex'", "network",
                method="complex"),
    _fastgc_row("stacked-complex", "fastgc stacked, method='complex'", "stacked",
                method="complex", full_cap=2_000),
    Contender("check_grad", "scipy.optimize.check_grad", _make_check_grad("all"),
              requires="scipy", full_cap=2_000),
    Contender("check_grad-random", "scipy check_grad(direction='random')",
              _make_check_grad("random"), requires="scipy", subsettable=False),
    Contender("jacobian", "scipy.differentiate.jacobian", _make_jacobian, requires="scipy",
              max_params=500, subsettable=False),
    Contender("numdifftools", "numdifftools.Gradient", _make_numdifftools,
              requires="numdifftools", full_cap=500, subset=40),
    Contender("gradcheck", "torch gradcheck (float64)", _make_gradcheck(False),
              requires="torch", full_cap=2_000, traced_memory=False),
    Contender("gradcheck-fast", "torch gradcheck(fast_mode=True)", _make_gradcheck(True),
              requires="torch", subsettable=False, traced_memory=False),
)


# ---- measuring ---------------------------------------------------------------------------


@dataclass
class Plan:
    """How a contender is timed on a problem: ``run()`` and the factor to a full check."""

    contender: Contender
    problem: Problem
    call: Callable
    index: np.ndarray | None
    scale: float

    @property
    def extrapolated(self) -> bool:
        """Whether the time is scaled from a subset of coordinates."""
        return self.index is not None

    def run(self) -> Outcome:
        """One timed call."""
        return self.call(self.index)


def plan(contender: Contender, problem: Problem, full: bool = False) -> Plan:
    """Prepare ``contender`` on ``problem``: a full check, or a subset to extrapolate from.

    Parameters
    ----------
    contender : Contender
    problem : Problem
    full : bool
        Full mode: caps 10 x higher and subsets 4 x larger than quick mode.

    Returns
    -------
    Plan
    """
    call = contender.make(problem)
    cap = contender.full_cap
    if cap is not None and full:
        cap *= 10
    if cap is None or problem.P <= cap or not contender.subsettable:
        return Plan(contender, problem, call, None, 1.0)
    index = problem.spread(contender.subset * (4 if full else 1))
    return Plan(contender, problem, call, index, problem.P / index.size)


def verify(plan_: Plan, outcome: Outcome) -> None:
    """Assert that a timed call's result is right.

    The numeric gradient matches the reference backprop on a sample of coordinates (98 % of
    them within ``1e-4`` relative plus ``1e-6 x max|g|`` absolute: a step across a relu kink
    may spoil a coordinate), and a contender's own verdict is "passed" (the exercise's loop
    excepted: its verdict is reported, not asserted, since eps = 1e-7 cannot reach its
    threshold on large costs).

    Raises
    ------
    AssertionError
        With the contender, the workload and what disagreed.
    """
    c, p = plan_.contender, plan_.problem
    where = f"{c.name} on {p.workload.name}"
    if outcome.numeric is not None:
        index = np.arange(p.P) if outcome.index is None else np.asarray(outcome.index)
        numeric = np.asarray(outcome.numeric, dtype=np.float64)
        assert numeric.shape == index.shape, f"{where}: numeric has shape {numeric.shape}"
        pick = np.random.default_rng(0).choice(index.size, min(SAMPLE, index.size),
                                               replace=False)
        g, a = p.reference[index[pick]], numeric[pick]
        tol = 1e-4 * np.abs(g) + 1e-6 * max(np.abs(p.reference).max(), 1e-12)
        good = np.abs(g - a) <= tol
        assert good.mean() >= 0.98, (
            f"{where}: numeric gradient disagrees with the reference at "
            f"{int((~good).sum())} of {good.size} sampled coordinates "
            f"(worst abs error {np.abs(g - a).max():.3g})"
        )
    if outcome.error_norm is not None:
        assert outcome.passed, f"{where}: ||g - a|| = {outcome.error_norm:.3g} too large"
    if outcome.passed is not None and not c.exercise_threshold:
        assert outcome.passed, f"{where}: verdict 'failed' on a correct gradient"


@dataclass
class Row:
    """One measured row: a contender on a workload (all times in seconds)."""

    workload: str
    contender: str
    label: str
    params: int
    status: str = "ok"
    seconds: float = math.nan
    times: list = field(default_factory=list)
    extrapolated: bool = False
    subset: int | None = None
    nfev: int | None = None
    peak_bytes: int | None = None
    memory_traced: bool = True
    passed: bool | None = None
    speedup: float | None = None


def _peak_bytes(plan_: Plan) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        plan_.run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(contender: Contender, problem: Problem, repeat: int = 3, full: bool = False,
            memory: bool = True, strict: bool = False) -> Row:
    """Time ``contender`` on ``problem``: warm-up, ``repeat`` timed calls, verified results.

    Parameters
    ----------
    contender : Contender
    problem : Problem
    repeat : int
        Timed calls; the row's ``seconds`` is their median (scaled to a full check when
        extrapolated).
    full : bool
        Full mode (see :func:`plan`).
    memory : bool
        Also measure the tracemalloc peak of one more (untimed) call.
    strict : bool
        Raise when a result is wrong (see :func:`verify`); otherwise the row's status says
        ``"WRONG RESULT: ..."`` and the run goes on.

    Returns
    -------
    Row
    """
    w = problem.workload
    row = Row(w.name, contender.name, contender.label, problem.P,
              memory_traced=contender.traced_memory)
    reason = contender.skip_reason(problem)
    if reason is not None:
        row.status = f"skipped: {reason}"
        return row
    p = plan(contender, problem, full=full)
    try:
        outcome = p.run()  # warm-up: JIT compile or cache load outside the timing
    except NotImplementedError as exc:  # an engine without this method or mode
        row.status = f"skipped: {exc}"
        return row
    times = []
    try:
        verify(p, outcome)
        for _ in range(repeat):
            start = time.perf_counter()
            outcome = p.run()
            times.append(time.perf_counter() - start)
            verify(p, outcome)
            # Quick mode: a slow row is timed once, without a memory run. Judged on a timed
            # call, not on the warm-up, which includes the JIT compile of a fresh install.
            if not full and times[-1] > SLOW_SECONDS:
                memory = False
                break
    except AssertionError as exc:
        if strict:
            raise
        row.status = f"WRONG RESULT: {exc}"
        return row
    scale = p.scale
    if p.extrapolated and outcome.index is not None:
        scale = problem.P / len(outcome.index)  # what was really checked (fastgc's subset)
    row.times = times
    row.seconds = float(np.median(times)) * scale
    row.extrapolated = p.extrapolated
    row.subset = None if not p.extrapolated else int(round(problem.P / scale))
    row.nfev = int(round(outcome.nfev * scale))
    row.passed = outcome.passed
    if memory:
        row.peak_bytes = _peak_bytes(p)
    return row


# ---- flop floor and machine --------------------------------------------------------------


def useful_multiply_adds(dims, m) -> int:
    """Multiply-adds a full central-difference check of a dense network cannot avoid.

    For each parameter of layer ``l`` (weights and biases): the rank-1 update of the next
    layer, ``n_{l+1} m``, plus the later layers' products ``sum_{t > l+1} n_t n_{t-1} m``;
    times 2 for the +h and -h points.

    Parameters
    ----------
    dims : sequence of int
        ``(n0, ..., nL)``.
    m : int
        Examples.

    Returns
    -------
    int
    """
    L = len(dims) - 1
    total = 0
    for layer in range(1, L + 1):
        count = dims[layer] * dims[layer - 1] + dims[layer]
        per = dims[layer + 1] * m if layer < L else 0
        per += sum(dims[t] * dims[t - 1] * m for t in range(layer + 2, L + 1))
        total += count * per
    return 2 * total


def flop_floor_seconds(dims, m, gflops) -> float:
    """``2 x useful_multiply_adds / (DGEMM rate)``: the time of a check at the matmul rate.

    Parameters
    ----------
    dims : sequence of int
    m : int
    gflops : float
        Measured float64 matrix-multiply rate, GFLOP/s (2 flops per multiply-add).

    Returns
    -------
    float
        Seconds.
    """
    return 2.0 * useful_multiply_adds(dims, m) / (gflops * 1e9)


_DGEMM = """
import time, numpy as np
rng = np.random.default_rng(0)
A = rng.standard_normal((2000, 2000)); B = rng.standard_normal((2000, 2000))
np.matmul(A, B)
best = min((lambda s: (np.matmul(A, B), time.perf_counter() - s)[1])(time.perf_counter())
           for _ in range(5))
print(2 * 2000 ** 3 / best / 1e9)
"""


def dgemm_gflops(threads: int | None = None) -> float:
    """Float64 matmul rate (GFLOP/s) of a 2000 x 2000 ``np.matmul``, best of 5.

    Measured in a subprocess so that this process's BLAS thread pool is not woken (see
    :func:`run_bench`). ``threads`` sets ``OPENBLAS_NUM_THREADS`` there (None: BLAS default,
    every core).
    """
    env = dict(os.environ)
    for var in _BLAS_VARS:
        env.pop(var, None)
    if threads is not None:
        for var in _BLAS_VARS:
            env[var] = str(threads)
    out = subprocess.run([sys.executable, "-c", _DGEMM], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def machine_info() -> dict:
    """CPU model, core count, Python, numpy and its BLAS, numba threads."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "unknown"
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{deps.get('name', '?')} {deps.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - show_config's layout varies across numpy versions
        pass
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
    }
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return info


# ---- startup rows (subprocesses) ----------------------------------------------------------

_FIRST_CHECK = """
import time
t0 = time.perf_counter()
import fastgc
from fastgc import _reference as ref
X, Y, params = ref.exercise_data()
net = fastgc.MLP([4, 5, 3, 1])
grads = net.gradients(params, X, Y)
t1 = time.perf_counter()
assert fastgc.check(net, grads, params, X, Y).passed
t2 = time.perf_counter()
for _ in range(20):
    fastgc.check(net, grads, params, X, Y)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, (t3 - t2) / 20)
"""


def _subprocess_env(cache_dir=None):
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    return env


def _first_check(cache_dir):
    out = subprocess.run([sys.executable, "-c", _FIRST_CHECK], env=_subprocess_env(cache_dir),
                         capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def startup_rows(repeat: int = 3) -> list[dict]:
    """Import time, cold JIT compile, and the first check with a warm cache (subprocesses).

    Parameters
    ----------
    repeat : int
        Runs of each (median).

    Returns
    -------
    list of dict
        ``{"name", "seconds", "note"}``.
    """
    env = _subprocess_env()
    probe = "import sys, fastgc; assert 'numba' not in sys.modules and 'scipy' not in sys.modules"

    def wall(code):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return time.perf_counter() - start

    bare = float(np.median([wall("pass") for _ in range(repeat)]))
    imp = float(np.median([wall(probe) for _ in range(repeat)]))
    cold, warm_first, warm_each = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            empty = os.path.join(tmp, f"cold{r}")
            os.mkdir(empty)
            _, first, each = _first_check(empty)
            cold.append(first - each)
        cache = os.path.join(tmp, "warm")
        os.mkdir(cache)
        _first_check(cache)  # fills the cache
        for _ in range(repeat):
            _, first, each = _first_check(cache)
            warm_first.append(first - each)
            warm_each.append(each)
    return [
        {"name": "python -c pass", "seconds": bare, "note": "interpreter start, for scale"},
        {"name": "python -c 'import fastgc'", "seconds": imp,
         "note": f"{imp - bare:+.3f} s over bare python; numba and scipy not imported"},
        {"name": "JIT compile, cold (empty NUMBA_CACHE_DIR)", "seconds": float(np.median(cold)),
         "note": "first check minus a warm check, exercise network, fresh process"},
        {"name": "first check, warm cache, fresh process", "seconds":
         float(np.median(warm_first)),
         "note": "added over a warm check: import numba/scipy + cache load"},
        {"name": "warm check (exercise network)", "seconds": float(np.median(warm_each)),
         "note": "mean of 20, same process"},
    ]


# ---- the run, the tables, the picture ----------------------------------------------------


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "-"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def format_table(workload: Workload, rows: list[Row], floor: float | None = None) -> str:
    """The table of one workload, as printed by ``fastgc bench``."""
    lines = [f"workload {workload.name}: {workload.title}",
             f"  {'contender':<44}{'time (median)':>15}{'vs loop':>10}{'nfev':>12}"
             f"{'peak MiB':>10}  note"]
    for r in rows:
        if r.status != "ok":
            lines.append(f"  {r.label:<44}{'':>47}  {r.status}")
            continue
        speed = f"{r.speedup:.1f}x" if r.speedup is not None else "-"
        mem = "-" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:.1f}"
        if not r.memory_traced and r.peak_bytes is not None:
            mem += "†"
        notes = []
        if r.extrapolated:
            notes.append(f"extrapolated from {r.subset} coordinates")
        if len(r.times) == 1:
            notes.append("1 timed call")
        if r.passed is False:
            notes.append("verdict: failed")
        mark = "*" if r.extrapolated else " "
        lines.append(f"  {r.label:<44}{_fmt_seconds(r.seconds) + mark:>15}{speed:>10}"
                     f"{r.nfev if r.nfev is not None else '-':>12,}{mem:>10}  "
                     + "; ".join(notes))
    if floor is not None:
        net = next((r for r in rows if r.contender == "network" and r.status == "ok"), None)
        ratio = f"network / floor = {net.seconds / floor:.2f}" if net else ""
        lines.append(f"  {'flop floor (useful multiply-adds at DGEMM rate)':<44}"
                     f"{_fmt_seconds(floor):>15}{'':>32}  {ratio}")
    return "\n".join(lines)


def _targets(rows, floors, startup):
    by = {(r.workload, r.contender): r for r in rows if r.status == "ok"}
    out = []

    def ratio(w, c):
        a, b = by.get((w, "exercise-loop")), by.get((w, c))
        return None if a is None or b is None else a.seconds / b.seconds

    def add(text, value, goal, ok):
        out.append({"target": text, "measured": value, "goal": goal,
                    "met": None if value is None else bool(ok(value))})

    add("mnist: network >= 300x faster than the exercise loop", ratio("mnist", "network"),
        300, lambda v: v >= 300)
    if "mnist" in floors and ("mnist", "network") in by:
        v = by["mnist", "network"].seconds / floors["mnist"]
    else:
        v = None
    add("mnist: network within 2x of the flop floor (time / floor)", v, 2, lambda v: v <= 2)
    add("large: network >= 1500x faster than the exercise loop", ratio("large", "network"),
        1500, lambda v: v >= 1500)
    add("exercise: fastgc.check >= 50x faster than its loop", ratio("exercise", "network"),
        50, lambda v: v >= 50)
    add("exercise: network kernel alone >= 50x faster than the loop",
        ratio("exercise", "kernel"), 50, lambda v: v >= 50)
    first = next((s["seconds"] for s in startup if s["name"].startswith("first check")), None)
    add("first check in a fresh process, warm cache, adds < 1 s", first, 1, lambda v: v < 1)
    return out


def run_bench(workloads=None, repeat: int = 3, full: bool = False, contenders=None,
              startup: bool = True, memory: bool = True, out=print) -> dict:
    """Run the comparison and print a table per workload.

    Parameters
    ----------
    workloads : sequence of str, optional
        Names from :data:`WORKLOADS` (default: all).
    repeat : int
        Timed calls per row (median).
    full : bool
        Full mode: larger caps and subsets (slower, fewer extrapolated rows).
    contenders : sequence of str, optional
        Names from :data:`CONTENDERS` (default: all; the exercise's loop always runs, as the
        baseline).
    startup : bool
        Also measure import time, cold JIT compile and the first check in a fresh process.
    memory : bool
        Measure the tracemalloc peak of each row (one more untimed call).
    out : callable
        Where lines go (``print``; ``lambda s: None`` for silence).

    Returns
    -------
    dict
        The raw numbers (what ``--json`` writes): ``machine``, ``dgemm_gflops``, ``rows``,
        ``floors``, ``startup``, ``targets``.
    """
    names = [w.name for w in WORKLOADS]
    chosen = list(names if workloads is None else workloads)
    unknown = [w for w in chosen if w not in names]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {names}")
    table = [c for c in CONTENDERS
             if contenders is None or c.name in contenders or c.name == "exercise-loop"]
    machine = machine_info()
    gflops = max(dgemm_gflops() for _ in range(3))  # best of 3 processes: the VM is noisy
    gflops_1 = dgemm_gflops(threads=1)
    out(f"machine: {machine['cpu']}, {machine['cores']} cores; numpy {machine['numpy']} with "
        f"{machine['blas']} (BLAS threads in this run: {machine['blas_threads']}); numba "
        f"{machine.get('numba', '?')} with {machine.get('numba_threads', '?')} threads")
    out(f"DGEMM (2000x2000 np.matmul, float64): {gflops:.1f} GFLOP/s all cores, "
        f"{gflops_1:.1f} GFLOP/s one thread")
    out(f"times: median of {repeat} after a warm-up; * = extrapolated from a subset of "
        "coordinates (time x P / subset); peak MiB = tracemalloc peak of one call "
        "(numpy/Python allocations; † = not traced: torch's allocator)\n")
    rows, floors = [], {}
    for w in WORKLOADS:
        if w.name not in chosen:
            continue
        problem = w.build()
        wrows = [measure(c, problem, repeat=repeat, full=full, memory=memory) for c in table]
        base = wrows[0]
        for r in wrows:
            if r.status == "ok" and base.status == "ok":
                r.speedup = base.seconds / r.seconds
        floors[w.name] = flop_floor_seconds(w.dims, w.m, gflops)
        out(format_table(w, wrows, floors[w.name]) + "\n")
        rows += wrows
    starts = startup_rows(repeat) if startup else []
    if starts:
        out("startup (subprocesses, median):")
        for s in starts:
            out(f"  {s['name']:<44}{_fmt_seconds(s['seconds']):>15}  {s['note']}")
        out("")
    targets = _targets(rows, floors, starts)
    out("issue targets:")
    for t in targets:
        v = t["measured"]
        verdict = "n/a (not run)" if t["met"] is None else ("met" if t["met"] else "NOT met")
        shown = "-" if v is None else f"{v:.3g}"
        out(f"  {t['target']:<62} measured {shown:>8}  {verdict}")
    return {
        "machine": machine,
        "dgemm_gflops": gflops,
        "dgemm_gflops_one_thread": gflops_1,
        "repeat": repeat,
        "full": full,
        "workloads": {w.name: {"dims": list(w.dims), "loss": w.loss, "m": w.m,
                               "params": w.param_count, "title": w.title}
                      for w in WORKLOADS if w.name in chosen},
        "rows": [dataclasses.asdict(r) for r in rows],
        "floors": floors,
        "startup": starts,
        "targets": targets,
    }


def plot(data: dict, path: str) -> None:
    """Log-log picture of check time against parameter count, one line per contender.

    Raises
    ------
    ImportError
        When matplotlib is missing (``pip install ".[plot]"``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib: pip install \".[plot]\"") from exc
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=90)
    by_contender = {}
    for r in data["rows"]:
        if r["status"] == "ok":
            by_contender.setdefault(r["label"].strip(), []).append(r)
    for i, (label, rows) in enumerate(by_contender.items()):
        rows = sorted(rows, key=lambda r: r["params"])
        x = [r["params"] for r in rows]
        y = [r["seconds"] for r in rows]
        (line,) = ax.plot(x, y, ("-", "-.", ":")[i // 10 % 3], lw=1.2, label=label)
        for r in rows:
            ax.plot(r["params"], r["seconds"], "o", color=line.get_color(),
                    mfc="none" if r["extrapolated"] else line.get_color())
    floors = data.get("floors", {})
    if floors:
        pts = sorted((data["workloads"][w]["params"], s) for w, s in floors.items())
        ax.plot([p for p, _ in pts], [s for _, s in pts], "k--", lw=1, label="flop floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters P")
    ax.set_ylabel("full check time, s (hollow: extrapolated)")
    m = data["machine"]
    ax.set_title(f"gradient check time, {m['cores']} cores {m['cpu']}", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(workloads=None, repeat=3, full=False, json_path=None, plot_path=None,
         contenders=None, startup=True) -> int:
    """``fastgc bench``: run, print, and write ``--json`` / ``--plot``; returns 0."""
    if plot_path is not None:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise SystemExit("fastgc bench: --plot needs matplotlib: pip install \".[plot]\"")
    data = run_bench(workloads=workloads, repeat=repeat, full=full, contenders=contenders,
                     startup=startup)
    if json_path is not None:
        with open(json_path, "w") as fh:
            json.dump(data, fh, indent=1, default=float)
        print(f"wrote {json_path}")
    if plot_path is not None:
        plot(data, plot_path)
        print(f"wrote {plot_path}")
    return 0


BLAS_THREADS_NOTE = textwrap.dedent("""\
    BLAS threads: multithreaded OpenBLAS on a small VM can make small matmuls erratically
    100x slower while its pool spins; the bench pins it to one thread unless told otherwise.""")
