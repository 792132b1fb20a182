"""The bench's contenders: ways to check a workload's gradient, one :class:`Contender` each.

The exercise's loop (the baseline of every speed-up), fastgc's engines, modes and methods, the
network kernel alone, and the peers that are installed (scipy, numdifftools, torch). Every row
of ``fastgc bench`` is one entry of :data:`CONTENDERS`, so a new mode or method of
``fastgc.check`` is one line there. A contender's ``make(problem)`` does the set-up once and
returns ``run(index)``, the call that is timed.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.harness.workloads import Problem, batched_cost, exercise_forward
from fastgc._exercise import original as ref
from fastgc.gc_utils import dictionary_to_vector, vector_to_dictionary

__all__ = ["CONTENDERS", "EXERCISE_EPSILON", "EXERCISE_THRESHOLD", "Contender", "Outcome",
           "exercise_loop_subset"]

# The exercise's step and threshold (its loop reports "passed" below 2e-7).
EXERCISE_EPSILON = 1e-7
EXERCISE_THRESHOLD = 2e-7


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
    subsettable: bool = True
    traced_memory: bool = True
    exercise_threshold: bool = False

    def skip_reason(self, problem: Problem | None = None) -> str | None:
        """Why this contender cannot run (on ``problem``), or None."""
        if self.requires is not None:
            import importlib.util

            if importlib.util.find_spec(self.requires) is None:
                return f"{self.requires} is not installed (pip install \".[bench]\")"
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


def _fastgc_cost(problem: Problem, engine: str):
    if engine == "stacked":
        return batched_cost(problem.workload.dims, problem.workload.loss)
    return problem.net


def _make_fastgc(engine: str, **options):
    """``make`` for a ``fastgc.check(..., engine=engine, **options)`` row.

    Extrapolated rows run ``fastgc.check(..., subset=k)`` (a seeded stratified subset of
    ``k`` coordinates, the same work per coordinate as the full check). With
    ``progress=True`` the bar is drawn into a buffer: its chunking and drawing are timed, the
    terminal is left to the tables.
    """

    def make(problem: Problem):
        from fastgc._check import check

        cost = _fastgc_cost(problem, engine)

        def run(index):
            extra = dict(options)
            if index is not None:
                extra["subset"] = int(len(index))
            quiet = (contextlib.redirect_stderr(io.StringIO()) if options.get("progress")
                     else contextlib.nullcontext())
            with quiet:
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
    from fastgc._core.schemes import coordinate_steps
    from fastgc._network import coordinate_deltas

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
    return Contender(name, label, _make_fastgc(engine, **options), full_cap=full_cap,
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
    # What the progress bar costs: the same check cut into chunks, with the bar drawn.
    _fastgc_row("network-progress", "fastgc network, progress=True", "network",
                progress=True),
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
