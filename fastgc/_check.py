"""Front end: ``fastgc.check`` and ``fastgc.assert_gradients_close``."""

from __future__ import annotations

import time

import numpy as np

from fastgc._complex import CONVENTIONS, as_real, has_complex
from fastgc._complex import note as complex_note
from fastgc._core.driver import Problem, run
from fastgc._core.layout import Layout
from fastgc._core.localise import DEFAULT_BUDGET
from fastgc._core.plan import make_plan
from fastgc._core.schemes import DEFAULT_CENTRAL_STEP, SCHEMES
from fastgc._core.validate import (
    bool_flag,
    count_or_fraction,
    integer,
    one_of,
    positive_float,
    random_generator,
)
from fastgc._engines.evaluator import Evaluator, measure_cost_noise
from fastgc._engines.progress import progress_bar
from fastgc._engines.registry import engine_names, make_objective
from fastgc._engines.workers import EngineSpec, Workers, validate_workers

__all__ = ["assert_gradients_close", "check"]

# The smallest absolute step that still resolves a difference quotient in float64: below it
# the perturbation is lost to rounding in theta + h for any |theta| >= 1.
_MIN_STEP = 1e-13


def _bounds(bounds, theta, method, directions):
    """``bounds=(lower, upper)`` as two flat float arrays (floats or arrays of the flattened
    parameters' size; +-inf for none), or None."""
    if bounds is None:
        return None
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError("bounds must be a pair (lower, upper) of floats or arrays, not "
                        f"{type(bounds).__name__}")
    if method != "central" or directions is not None:
        raise ValueError("bounds= steps one-sided at an active bound: it needs "
                         f"method='central' and no directions (got method={method!r})")
    flat = []
    for name, value in zip(("lower", "upper"), bounds, strict=True):
        try:
            v = np.broadcast_to(np.asarray(value, dtype=np.float64).ravel()
                                if np.ndim(value) else np.float64(value), theta.shape)
        except (TypeError, ValueError):
            raise ValueError(f"bounds' {name} must be a float or an array of "
                             f"{theta.size} values (the flattened params), not "
                             f"{np.shape(value)}") from None
        flat.append(np.array(v))
    lower, upper = flat
    bad = np.flatnonzero((theta < lower) | (theta > upper) | np.isnan(lower) | np.isnan(upper))
    if bad.size:
        raise ValueError(f"params lie outside bounds at flat index {int(bad[0])}: "
                         f"{theta[bad[0]]} not in [{lower[bad[0]]}, {upper[bad[0]]}]")
    return lower, upper


def _validate(cost, grad, params, args, eps, threshold, engine, method, subset, directions,
              seed, budget, max_memory, progress, exclude=None, workers=None, bounds=None):
    """Validate and normalise every argument of :func:`check` (kernels never re-check).

    Returns the plan, the scheme, the :class:`~fastgc._core.driver.Problem`, and ``workers``
    (None: in this process), ``progress`` and ``max_memory`` normalised.
    """
    if not callable(cost):
        raise TypeError(f"cost must be callable, cost(params, *args) -> float; got "
                        f"{type(cost).__name__}")
    one_of(engine, "engine", engine_names())
    one_of(method, "method", SCHEMES)
    progress = bool_flag(progress, "progress", none=True)
    workers = validate_workers(workers)
    if max_memory is not None:
        max_memory = integer(max_memory, "max_memory", "bytes")
    eps = positive_float(eps, "eps", none=True)
    if eps is not None and eps < _MIN_STEP:
        raise ValueError(
            f"eps={eps:g} is too small for float64: the step is lost to rounding in "
            f"theta + eps (use eps >= {_MIN_STEP:g}; the default is "
            f"{DEFAULT_CENTRAL_STEP:.2g} x max(1, |theta|))"
        )
    if subset is not None and directions is not None:
        raise ValueError("subset and directions are two different modes: pass one of them")
    if directions is not None and method == "central":
        method = "two-step"  # along a direction, central differences are always extrapolated
    scheme = SCHEMES[method]
    if directions is not None and scheme.items != "directions":
        raise ValueError(f"directions mode runs its own two-step extrapolation along each "
                         f"direction: leave method='central' (got method={method!r})")
    if directions is None and scheme.items == "directions":
        raise ValueError(f"method={method!r} estimates derivatives along random directions: "
                         "pass directions=k (directions per block)")
    threshold = positive_float(scheme.default_threshold if threshold is None else threshold,
                               "threshold")
    if subset is not None:
        subset = count_or_fraction(subset, "subset", "coordinates")
    if directions is not None:
        directions = integer(directions, "directions", "directions per block")
    budget = integer(budget, "budget", "evaluations per failing block", minimum=0)
    rng = random_generator(seed)
    layout, theta = Layout.of(params, "params", exclude=exclude)
    if callable(grad):
        grad = grad(layout.unflatten(theta.copy()), *args)
    analytic, ignored = layout.flatten_gradient(grad, "grad")
    problem = Problem(layout, theta, analytic, ignored, eps, threshold, rng, budget,
                      _bounds(bounds, theta, method, directions))
    return make_plan(subset, directions), scheme, problem, workers, progress, max_memory


def check(cost, grad, params, *args, eps=None, threshold=None, engine="auto",
          method="central", subset=None, directions=None, seed=0, budget=DEFAULT_BUDGET,
          max_memory=None, progress=None, exclude=None, workers=None, bounds=None,
          convention=None):
    """Check an analytic gradient against finite differences of the cost.

    Parameters
    ----------
    cost : callable
        ``cost(params, *args)`` returning the cost as a float, or a tuple whose first item is
        the float (the exercise's ``(cost, cache)``). A :class:`fastgc.MLP` is recognised and
        checked by the fast network engine.
    grad : structure or callable
        The analytic gradient, in the same structure as ``params``: a dict with the parameter
        names or ``"d" + name`` as keys (the exercise's ``"dW1"``; its intermediates ``"dZ1"``,
        ``"dA1"`` are ignored), a list/tuple, or an array. Or a callable
        ``grad(params, *args)`` returning one.
    params : dict, list, tuple or ndarray, or any nesting of them
        The point at which to check: float64 or float32 arrays (float32 is upcast, with a
        warning). Never modified. Blocks are named by their path: ``"W1"``, ``"weights[0]"``,
        ``"layers[2]['W']"``; ``grad`` has the same nesting.
    *args
        Extra arguments for ``cost`` (and ``grad`` when callable), e.g. ``X, Y``.
    eps : float, optional
        Absolute step of the central difference for every coordinate. Default: a relative
        step ``6.1e-6 * max(1, |theta_k|)`` (the cube root of float64's machine epsilon,
        where truncation and rounding errors balance). ``eps=1e-7`` is the exercise's.
    threshold : float, optional
        Pass/fail threshold on the relative difference: default 1e-6 for ``"central"``; for
        ``"richardson"`` (1e-8) and ``"complex"`` (1e-11) a floor added to the error model.
    engine : {"auto", "loop", "stacked", "numba", "network"}
        How the cost is evaluated. ``"auto"`` picks network for an MLP, numba for an
        ``njit``-compiled cost, stacked for a cost marked with :func:`fastgc.batched`, else
        loop (one Python call per perturbed point).
    method : {"central", "richardson", "complex", "two-step"}
        The scheme (``result.method``; ``result.mode`` says which items were checked).
        With ``directions=k``, ``"central"`` means ``"two-step"``: central differences along
        each direction at h and h/2, extrapolated. ``"central"``: the exercise's central
        differences, 2 evaluations per coordinate, accurate to ~1e-10 at the default step.
        ``"richardson"``:
        ``scipy.differentiate.derivative`` (order 4, steps from ``1e-3 x max(1, |theta|)`` down by
        halves), ~8-12 evaluations per coordinate, accurate to ~1e-13 on fastgc's network, with
        a per-coordinate error estimate. ``"complex"``: ``Im J(theta + i h e_k) / h`` with
        h = 1e-20, one complex evaluation per coordinate, exact to rounding for a complex-
        analytic cost (a cost that is not is detected and refused). With ``"richardson"`` and
        ``"complex"`` the verdict follows the estimated error (see Notes).
    subset : int or float, optional
        Check only this many coordinates (an int) or this fraction of them (a float in
        (0, 1]), drawn without replacement per block in proportion to its size, with at least
        8 per block (a smaller block is checked whole). ``result.checked`` lists them and
        ``result.notes`` states, per block, the chance that a bug touching 1% of it goes
        unseen, and that a single wrong entry does (``1 - k/n``): a pass is probabilistic.
    directions : int, optional
        Check ``directions`` random directions per block instead of coordinates: each costs
        one +/- pair whatever the block's size. A failing block is then bisected down to its
        wrong entries (or rows/columns) within ``budget`` evaluations.
    seed : int, SeedSequence or Generator
        Seed of the random subset or directions (default 0: results are reproducible).
    budget : int
        Cost evaluations allowed per failing block to localise the wrong entries in
        ``directions`` mode (default 400; 0 disables localisation).
    max_memory : int, optional
        Bytes of scratch memory the fast engines may use at once (chunk size): the stacked
        engine's parameter stacks (default 64 MiB) and the network engine's tables (default
        256 MiB). Smaller is slower, never less exact.
    progress : bool, optional
        A progress bar on stderr, drawn between chunks of work (which also makes a long check
        stop promptly on Ctrl-C). Default: on a terminal, for checks projected to take more
        than 2 s; ``False`` turns it off, ``True`` forces it. Work is cut into the same chunks
        either way, so the bar never changes a result.
    exclude : str, list of str or callable, optional
        Entries left out of the check (a layer's ``running_mean``): a path name, an entry's own
        key at any depth, a path prefix (``"layers[1]"``), or a predicate called with each
        entry's path name. They are handed to ``cost`` as read-only copies, and their
        gradients may be left out of ``grad``.
    workers : int, concurrent.futures.Executor or distributed.Client, optional
        Where the cost evaluations run. None or 1: in this process. An int: fastgc's own pool
        of that many processes (``-1``: one per core; needs loky, ``pip install
        "fastgc[workers]"``), kept for later checks and closed at exit. An Executor (loky,
        ``ProcessPoolExecutor``, ``mpi4py.futures.MPIPoolExecutor``, ...): used, never shut
        down. A ``distributed.Client``: the check's data is scattered to every worker once.
        The cost, params and args are pickled once (cloudpickle: lambdas work) and each worker
        builds the engine from them once; the result is bit-identical for any number of
        workers. Each worker limits numba and BLAS threads to its share of the cores.
    bounds : tuple (lower, upper), optional
        Bounds on the parameters, as in ``scipy.optimize.approx_derivative``: floats, or
        arrays of the flattened parameters' size (``+-np.inf`` for none). No step leaves
        them: a coordinate within a step of a bound gets a smaller step, one on a bound a
        one-sided difference (extrapolated over h, h/2 and h/4), named in ``result.notes``.
        ``method="central"`` only. Without bounds the same happens, with the default step,
        where the cost itself is not finite on one side.
    convention : {"torch", "jax"}, optional
        Needed when ``params`` hold complex arrays (of a real cost): how ``grad`` packs
        ``dJ/dRe`` and ``dJ/dIm`` into a complex array. ``"torch"``: ``dJ/dRe + i dJ/dIm``
        (``z.grad``); ``"jax"``: ``dJ/dRe - i dJ/dIm`` (``jax.grad``). Each complex array is
        checked as a real one with a trailing axis of 2 (``[..., 0]`` real, ``[..., 1]``
        imaginary part; blocks, entries and ``result.numeric`` are named so). Every method
        but ``"complex"`` works.

    Returns
    -------
    CheckResult
        ``passed``, ``difference``, per-block results in ``blocks``, ``worst(k)``, the
        numeric gradient, ``nfev`` and ``seconds``; ``str(result)`` is the report.

    Raises
    ------
    TypeError, ValueError
        Invalid arguments (named, with the key or coordinate) before any work is done; a cost
        that returns a non-scalar, NaN or inf (with the coordinate and step); with
        ``workers``, a cost or args that cannot be pickled (named).
    CostError
        (a ValueError) A cost that is not deterministic (``J(params)`` differs between two
        calls), or not complex-analytic under ``method="complex"`` (naming the block).
    WorkerError
        A worker died twice on the same chunk of work (named by its coordinates).

    Notes
    -----
    The metric is the exercise's relative difference ``||g - a|| / (||g|| + ||a||)``. Each
    parameter block passes when ``||g - a|| <= threshold (||g|| + ||a||)`` plus 10 times the
    estimated rounding error of the numeric gradient (so a correct block whose gradient is tiny
    is not failed by noise); the check passes when every block does. A full
    check costs two cost evaluations per parameter, plus one at ``params``, plus 7 (13 at a
    kink or in lower precision) to measure the cost's own noise (not on the network engine):
    a nondeterministic cost raises ``CostError``, and a cost that computes in lower precision
    (float32) is checked at the step and threshold its noise allows, as the report states.

    With ``"richardson"`` and ``"complex"`` the "rounding error" is each estimate's own error
    estimate (Richardson's, from the disagreement of its extrapolations; the complex step's, a
    few ulps), so the threshold follows the numerics instead of a fixed number.

    A coordinate with a kink within its step or at the point itself (a ReLU switching, a zero
    pre-activation, a tie in a max; the network engine detects it exactly, other engines by
    one-sided slopes that stay apart or estimates that move when the step is cut) is not
    differentiable within the step: it is reported in ``result.kinks`` and judged by whether
    the analytic value lies between the forward and backward differences.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> cost = lambda x: 0.5 * x @ A @ x
    >>> result = fastgc.check(cost, lambda x: A @ x, np.array([1.0, -2.0]))
    >>> result.passed
    True
    >>> fastgc.check(cost, lambda x: 2 * A @ x, np.array([1.0, -2.0])).blocks["params"].diagnosis
    'dparams is 2 x the numeric gradient'
    """
    start = time.perf_counter()
    complex_params = has_complex(params)
    if complex_params:
        if method == "complex":
            raise ValueError("method='complex' needs real parameters (it perturbs them along "
                             "i): with complex params use 'central' or 'richardson'")
        cost, grad, params = as_real(cost, grad, params, convention)
    elif convention is not None:
        one_of(convention, "convention", CONVENTIONS)
    plan, scheme, problem, workers, progress, max_memory = _validate(
        cost, grad, params, args, eps, threshold, engine, method, subset, directions, seed,
        budget, max_memory, progress, exclude, workers, bounds)
    engine = make_objective(cost, problem.layout, problem.theta, args, engine,
                            max_memory=max_memory)
    pool = None
    try:
        if workers is not None:
            pool = Workers(workers, EngineSpec(cost, problem.layout, problem.theta, tuple(args),
                                               engine.name, max_memory))
        evaluator = Evaluator(engine, measure_cost_noise(engine), progress_bar(progress), pool)
    except BaseException:
        try:
            if pool is not None:
                pool.close()
        finally:
            engine.close()
        raise
    try:
        result = run(plan, scheme, evaluator, problem, start)
        if complex_params:
            result.notes.append(complex_note(convention))
        return result
    finally:
        evaluator.close()


def assert_gradients_close(cost, grad, params, *args, **options):
    """Assert that ``grad`` agrees with finite differences of ``cost``; for tests.

    Takes exactly the arguments of :func:`check`.

    Parameters
    ----------
    cost : callable
        As for :func:`check`.
    grad : structure of arrays, or callable
        As for :func:`check`.
    params : dict, list, tuple or ndarray, or any nesting of them
        As for :func:`check`.
    *args
        As for :func:`check`.
    **options
        As for :func:`check` (``method=``, ``subset=``, ``directions=``, ...).

    Returns
    -------
    CheckResult
        When the check passes.

    Raises
    ------
    AssertionError
        When it fails; the message is the full report (which blocks, what factor, worst
        entries).

    Notes
    -----
    With ``subset=`` a pass is probabilistic: only the drawn coordinates are checked, so a
    single wrong entry of a block of n, k of them checked, goes unseen with probability
    ``1 - k/n`` (``result.notes`` states it per block). Use a full check, or ``directions=``,
    for a test that must catch any wrong entry.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> fastgc.assert_gradients_close(lambda x: np.sum(x ** 3), lambda x: 3 * x ** 2,
    ...                               np.array([0.5, 1.5])).passed
    True
    """
    __tracebackhide__ = True  # pytest shows the report, not this frame
    result = check(cost, grad, params, *args, **options)
    if not result.passed:
        raise AssertionError("gradient check failed\n" + result.report(color=False))
    return result
