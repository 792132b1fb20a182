"""Front end: ``fastgc.check`` and ``fastgc.assert_gradients_close``."""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

import numpy as np

from ._diagnosis import describe_localisation, diagnose_factor
from ._layout import Layout
from ._localise import DEFAULT_BUDGET, check_directions, localise_block
from ._objective import ENGINES, make_objective
from ._plan import directions_plan, full_plan, miss_probability, subset_plan
from ._result import (
    BlockResult,
    CheckResult,
    block_passes,
    build_result,
    entries_table,
    relative_difference,
)
from ._scheme import DEFAULT_CENTRAL_STEP, central, coordinate_steps

__all__ = ["assert_gradients_close", "check"]

METHODS = ("central",)

# Default verdict threshold on the relative difference. Central differences at the default
# step are accurate to ~1e-10 relative on smooth costs (truncation and rounding balance near
# eps^(2/3)); 1e-6 leaves two orders of magnitude for costs with larger third derivatives,
# while a gradient wrong by one part in 10^6 or more fails. The exercise used eps=1e-7 with
# threshold 2e-7: pass those to get its verdict.
DEFAULT_THRESHOLD = 1e-6

# The smallest absolute step that still resolves a difference quotient in float64: below it
# the perturbation is lost to rounding in theta + h for any |theta| >= 1.
_MIN_STEP = 1e-13


@dataclass
class _Inputs:
    layout: Layout
    theta: np.ndarray
    analytic: np.ndarray
    ignored_keys: list
    eps: float | None
    threshold: float
    engine: str
    method: str
    subset: int | float | None
    directions: int | None
    rng: np.random.Generator
    budget: int


def _check_iv(cost, grad, params, args, eps, threshold, engine, method, subset, directions,
              seed, budget) -> _Inputs:
    """Validate and normalise every argument of :func:`check` (kernels never re-check)."""
    if not callable(cost):
        raise TypeError(f"cost must be callable, cost(params, *args) -> float; got "
                        f"{type(cost).__name__}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if eps is not None:
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
            raise TypeError(f"eps must be a positive float or None, not {type(eps).__name__}")
        eps = float(eps)
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive finite float, not {eps}")
        if eps < _MIN_STEP:
            raise ValueError(
                f"eps={eps:g} is too small for float64: the step is lost to rounding in "
                f"theta + eps (use eps >= {_MIN_STEP:g}; the default is "
                f"{DEFAULT_CENTRAL_STEP:.2g} x max(1, |theta|))"
            )
    if threshold is None:
        threshold = DEFAULT_THRESHOLD
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a float, not {type(threshold).__name__}")
    threshold = float(threshold)
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive finite float, not {threshold}")
    if subset is not None and directions is not None:
        raise ValueError("subset and directions are two different modes: pass one of them")
    if subset is not None:
        if isinstance(subset, (bool, np.bool_)) or not isinstance(
                subset, (int, float, np.integer, np.floating)):
            raise TypeError(f"subset must be an int (a count) or a float in (0, 1] (a "
                            f"fraction), not {type(subset).__name__}")
        if isinstance(subset, (int, np.integer)):
            subset = int(subset)
            if subset < 1:
                raise ValueError(f"subset must be at least 1 coordinate, not {subset}")
        else:
            subset = float(subset)
            if not 0 < subset <= 1:
                raise ValueError(f"subset as a fraction must lie in (0, 1], not {subset}")
    if directions is not None:
        if isinstance(directions, (bool, np.bool_)) or not isinstance(
                directions, (int, np.integer)):
            raise TypeError(f"directions must be an int (directions per block), not "
                            f"{type(directions).__name__}")
        directions = int(directions)
        if directions < 1:
            raise ValueError(f"directions must be at least 1 per block, not {directions}")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ValueError(f"budget must be a non-negative int (evaluations), not {budget!r}")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"seed must be an int, a SeedSequence or a Generator: {exc}") from None
    layout, theta = Layout.of(params, "params")
    if callable(grad):
        grad = grad(layout.unflatten(theta.copy()), *args)
    analytic, ignored = layout.flatten_gradient(grad, "grad")
    return _Inputs(layout, theta, analytic, ignored, eps, threshold, engine, method, subset,
                   directions, rng, int(budget))


def check(cost, grad, params, *args, eps=None, threshold=None, engine="auto",
          method="central", subset=None, directions=None, seed=0, budget=DEFAULT_BUDGET,
          max_memory=None):
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
    params : dict, list, tuple or ndarray
        The point at which to check: float64 or float32 arrays (float32 is upcast, with a
        warning). Never modified.
    *args
        Extra arguments for ``cost`` (and ``grad`` when callable), e.g. ``X, Y``.
    eps : float, optional
        Absolute step of the central difference for every coordinate. Default: a relative
        step ``6.1e-6 * max(1, |theta_k|)`` (the cube root of float64's machine epsilon,
        where truncation and rounding errors balance). ``eps=1e-7`` is the exercise's.
    threshold : float, optional
        Pass/fail threshold on the relative difference, default 1e-6 (see Notes).
    engine : {"auto", "loop", "stacked", "numba", "network"}
        How the cost is evaluated. ``"auto"`` picks network for an MLP, numba for an
        ``njit``-compiled cost, stacked for a cost marked with :func:`fastgc.batched`, else
        loop (one Python call per perturbed point).
    method : {"central"}
        The finite-difference scheme.
    subset : int or float, optional
        Check only this many coordinates (an int) or this fraction of them (a float in
        (0, 1]), drawn without replacement per block in proportion to its size, with at least
        8 per block (a smaller block is checked whole). ``result.checked`` lists them and
        ``result.notes`` states the chance that a bug touching 1% of a block goes unseen.
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
        Bytes of scratch memory the fast engines may use at once (chunk size).

    Returns
    -------
    CheckResult
        ``passed``, ``difference``, per-block results in ``blocks``, ``worst(k)``, the
        numeric gradient, ``nfev`` and ``seconds``; ``str(result)`` is the report.

    Raises
    ------
    TypeError, ValueError
        Invalid arguments (named, with the key or coordinate) before any work is done; a cost
        that returns a non-scalar, NaN or inf (with the coordinate and step).

    Notes
    -----
    The metric is the exercise's relative difference ``||g - a|| / (||g|| + ||a||)``. Each
    parameter block passes when ``||g - a|| <= threshold (||g|| + ||a||)`` plus 10 times the
    estimated rounding error of the numeric gradient (so a correct block whose gradient is tiny
    is not failed by noise); the check passes when every block does. A full
    check costs two cost evaluations per parameter, plus one at ``params``.

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
    inputs = _check_iv(cost, grad, params, args, eps, threshold, engine, method, subset,
                       directions, seed, budget)
    objective = make_objective(cost, inputs.layout, inputs.theta, args, inputs.engine,
                               max_memory=max_memory)
    try:
        if inputs.directions is not None:
            return _run_directions(objective, inputs, start)
        return _run_coordinates(objective, inputs, start)
    finally:
        objective.close()


def _step_text(eps) -> str:
    return (f"eps {eps:g}" if eps is not None
            else f"step {DEFAULT_CENTRAL_STEP:.2g} x max(1, |theta|)")


def _run_coordinates(objective, inputs: _Inputs, start: float) -> CheckResult:
    layout, theta = inputs.layout, inputs.theta
    if inputs.subset is None:
        index, notes = full_plan(layout), []
    else:
        index = subset_plan(layout, inputs.subset, inputs.rng)
        notes = [_subset_coverage(layout, index)]
    step = coordinate_steps(theta, index, inputs.eps)
    estimate = central(objective, index, step)
    return build_result(
        layout, index, inputs.analytic, estimate, inputs.threshold,
        nfev=objective.nfev, seconds=time.perf_counter() - start, engine=objective.name,
        method=inputs.method, step=_step_text(inputs.eps), ignored_keys=inputs.ignored_keys,
        notes=notes,
    )


def _subset_coverage(layout, index) -> str:
    counts = np.bincount(layout.block_index(index), minlength=len(layout.blocks))
    parts = []
    for b, k in zip(layout.blocks, counts, strict=True):
        if k == b.size:
            parts.append(f"{b.name} whole")
        else:
            parts.append(f"{b.name} {k}/{b.size}: "
                         f"{miss_probability(b.size, int(k), 0.01):.2g}")
    return ("subset check: the chance that a bug touching 1% of a block's entries goes "
            "unseen is " + "; ".join(parts))


def _run_directions(objective, inputs: _Inputs, start: float) -> CheckResult:
    layout, theta, analytic = inputs.layout, inputs.theta, inputs.analytic
    plan = directions_plan(layout, inputs.directions, inputs.rng)
    checked = check_directions(objective, analytic, theta, plan, inputs.eps)
    block_of = np.array([d.block for d in plan])
    blocks, entries = {}, []
    for b_i, block in enumerate(layout.blocks):
        sel = np.flatnonzero(block_of == b_i)
        g, a, err = checked.analytic[sel], checked.numeric[sel], checked.error[sel]
        diff = relative_difference(g, a)
        noise = float(np.linalg.norm(err))
        passed = block_passes(g, a, noise, inputs.threshold)
        diagnosis, loc_nfev = "ok", 0
        if not passed:
            diagnosis = diagnose_factor(block, g, a, min_items=2)
            if diagnosis is None and inputs.budget > 0:
                # A part holding the error shows at least about the block's relative
                # difference (more as parts shrink); a correct part only noise. A tenth of the
                # block's difference separates the two better than the verdict threshold,
                # which a small error barely crosses.
                local_threshold = min(inputs.threshold, diff / 10)
                found = localise_block(objective, analytic, theta, b_i, block, local_threshold,
                                       inputs.eps, inputs.rng, inputs.budget)
                loc_nfev = found.nfev
                diagnosis = describe_localisation(block, found)
                entries.extend(int(i) for grp in found.groups if len(grp) == 1 for i in grp)
            elif diagnosis is None:
                diagnosis = "the directional derivatives disagree (localisation disabled)"
        blocks[block.name] = BlockResult(block.name, block.shape, int(sel.size), diff,
                                         bool(passed), float(np.abs(g - a).max()), noise,
                                         diagnosis, loc_nfev)
    index = np.array(sorted(set(entries)), dtype=np.int64)
    estimate = (central(objective, index, coordinate_steps(theta, index, inputs.eps))
                if index.size else None)
    all_g, all_a = checked.analytic, checked.numeric
    notes = [f"directions mode: {inputs.directions} Gaussian direction(s) per block compare "
             "g.v with the central difference along v; a wrong gradient goes unseen only on a "
             "set of directions of measure zero, or when its error along v is below "
             f"threshold x |g.v| (about threshold x ||g_block|| in norm)"]
    return CheckResult(
        difference=relative_difference(all_g, all_a),
        passed=all(b.passed for b in blocks.values()),
        threshold=inputs.threshold, blocks=blocks, numeric=None, nfev=objective.nfev,
        seconds=time.perf_counter() - start, engine=objective.name,
        method=inputs.method, step=_step_text(inputs.eps), checked=index,
        ignored_keys=inputs.ignored_keys, notes=notes,
        _entries=entries_table(layout, index, analytic, estimate, inputs.threshold)
        if estimate is not None else (),
    )


def assert_gradients_close(cost, grad, params, *args, **options):
    """Assert that ``grad`` agrees with finite differences of ``cost``; for tests.

    Takes exactly the arguments of :func:`check`.

    Returns
    -------
    CheckResult
        When the check passes.

    Raises
    ------
    AssertionError
        When it fails; the message is the full report (which blocks, what factor, worst
        entries).

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
