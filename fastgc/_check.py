"""Front end: ``fastgc.check`` and ``fastgc.assert_gradients_close``."""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

import numpy as np

from ._diagnosis import describe_localisation, diagnose_factor
from ._kinks import find_kinks, one_sided_consistent
from ._layout import Layout
from ._localise import DEFAULT_BUDGET, check_directions, localise_block
from ._objective import ENGINES, CostError, make_objective
from ._plan import directions_plan, full_plan, miss_probability, subset_plan
from ._progress import with_progress
from ._result import (
    SAFETY,
    BlockResult,
    CheckResult,
    block_passes,
    build_result,
    entries_table,
    relative_difference,
)
from ._scheme import (
    COMPLEX_STEP,
    DEFAULT_CENTRAL_STEP,
    RICHARDSON_STEP,
    central,
    complex_step,
    coordinate_steps,
    richardson_scipy,
)

__all__ = ["assert_gradients_close", "check"]

METHODS = ("central", "richardson", "complex")

# Relative floors of the error-model verdicts: with Richardson and the complex step the
# tolerance is SAFETY x the estimated error of each estimate, plus this floor for what the
# error estimate cannot see (the analytic gradient's own rounding, ~1e-15; Richardson's error
# estimate is itself an extrapolation). Both sit far below the 1e-6 that central needs, so a
# gradient wrong by one part in 10^6 fails.
METHOD_THRESHOLDS = {"richardson": 1e-8, "complex": 1e-11}
# Directions mode extrapolates two steps and carries an error estimate (see _localise): its
# verdict follows that error model with this floor.
DIRECTIONS_THRESHOLD = 1e-9

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
        threshold = (DIRECTIONS_THRESHOLD if directions is not None and method == "central"
                     else METHOD_THRESHOLDS.get(method, DEFAULT_THRESHOLD))
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a float, not {type(threshold).__name__}")
    threshold = float(threshold)
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive finite float, not {threshold}")
    if directions is not None and method != "central":
        raise ValueError(f"directions mode runs its own two-step extrapolation along each "
                         f"direction: leave method='central' (got method={method!r})")
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
          max_memory=None, progress=None):
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
        Pass/fail threshold on the relative difference: default 1e-6 for ``"central"``; for
        ``"richardson"`` (1e-8) and ``"complex"`` (1e-11) a floor added to the error model.
    engine : {"auto", "loop", "stacked", "numba", "network"}
        How the cost is evaluated. ``"auto"`` picks network for an MLP, numba for an
        ``njit``-compiled cost, stacked for a cost marked with :func:`fastgc.batched`, else
        loop (one Python call per perturbed point).
    method : {"central", "richardson", "complex"}
        The scheme. ``"central"``: the exercise's central differences, 2 evaluations per
        coordinate, accurate to ~1e-10 at the default step. ``"richardson"``:
        ``scipy.differentiate.derivative`` (order 4, steps from 1e-3 x max(1, |theta|) down by
        halves), ~8-12 evaluations per coordinate, accurate to ~1e-13 on fastgc's network, with
        a per-coordinate error estimate. ``"complex"``: ``Im J(theta + i h e_k) / h`` with
        h = 1e-20, one complex evaluation per coordinate, exact to rounding for a complex-
        analytic cost (a cost that is not is detected and refused). With ``"richardson"`` and
        ``"complex"`` the verdict follows the estimated error (see Notes).
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
        Bytes of scratch memory the fast engines may use at once (chunk size): the stacked
        engine's parameter stacks (default 64 MiB) and the network engine's tables (default
        256 MiB). Smaller is slower, never less exact.
    progress : bool, optional
        A progress bar on stderr, drawn between chunks of work (which also makes a long check
        stop promptly on Ctrl-C). Default: on a terminal, for checks projected to take more
        than 2 s; ``False`` turns it off, ``True`` forces it.

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

    With ``"richardson"`` and ``"complex"`` the "rounding error" is each estimate's own error
    estimate (Richardson's, from the disagreement of its extrapolations; the complex step's, a
    few ulps), so the threshold follows the numerics instead of a fixed number.

    A coordinate whose step crosses a kink (a ReLU switching; the network engine detects it
    exactly, other engines by estimates that disagree across step sizes) is not
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
    inputs = _check_iv(cost, grad, params, args, eps, threshold, engine, method, subset,
                       directions, seed, budget)
    if progress not in (None, True, False):
        raise TypeError(f"progress must be True, False or None, not {progress!r}")
    if max_memory is not None and (isinstance(max_memory, bool) or not isinstance(
            max_memory, (int, np.integer)) or max_memory < 1):
        raise ValueError(f"max_memory must be a positive int (bytes) or None, not "
                         f"{max_memory!r}")
    objective = make_objective(cost, inputs.layout, inputs.theta, args, inputs.engine,
                               max_memory=max_memory)
    objective = with_progress(objective, progress)
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
    layout, theta, method = inputs.layout, inputs.theta, inputs.method
    if inputs.subset is None:
        index, notes = full_plan(layout), []
    else:
        index = subset_plan(layout, inputs.subset, inputs.rng)
        notes = [_subset_coverage(layout, index)]
    if method == "complex":
        estimate = complex_step(objective, index)
        _require_complex_analytic(objective, inputs, index, estimate)
        step_text = f"complex step h = {COMPLEX_STEP:g}"
        kinked = consistent = None
    else:
        if method == "richardson":
            h0 = (np.full(len(index), inputs.eps) if inputs.eps is not None
                  else RICHARDSON_STEP * np.maximum(1.0, np.abs(theta[index])))
            estimate = richardson_scipy(objective, theta, index, h0)
            step_text = ("first step " + (f"{inputs.eps:g}" if inputs.eps is not None
                                          else f"{RICHARDSON_STEP:g} x max(1, |theta|)")
                         + ", scipy.differentiate, order 4")
        else:
            h0 = coordinate_steps(theta, index, inputs.eps)
            estimate = central(objective, index, h0)
            step_text = _step_text(inputs.eps)
        kinked = find_kinks(objective, inputs.analytic, index, h0, estimate,
                            inputs.threshold, method)
        consistent = one_sided_consistent(objective, inputs.analytic, index[kinked],
                                          estimate.step[kinked], inputs.threshold)
    rule = ("" if method == "central" else
            f"{inputs.threshold:.0e} relative + {SAFETY:g} x the estimated error of each "
            f"estimate ({'Richardson' if method == 'richardson' else 'complex-step'} error "
            "model)")
    return build_result(
        layout, index, inputs.analytic, estimate, inputs.threshold,
        nfev=objective.nfev, seconds=time.perf_counter() - start, engine=objective.name,
        method=method, step=step_text, ignored_keys=inputs.ignored_keys,
        notes=notes, kinked=kinked, kink_consistent=consistent, threshold_rule=rule,
    )


def _require_complex_analytic(objective, inputs: _Inputs, index, estimate) -> None:
    """Cross-check a few complex-step estimates against central differences.

    A cost that uses abs, conj or |z|^2 runs on complex input without dropping the imaginary
    part but is not complex-analytic: its complex step is wrong. Four coordinates (the largest
    estimates) are compared with central differences at the default step.
    """
    if objective.name == "network" or len(index) == 0:
        return  # fastgc's own network: analytic by construction (ReLU branches on Re z)
    probe = np.argsort(-np.abs(estimate.numeric), kind="stable")[:4]
    check = central(objective, index[probe], coordinate_steps(inputs.theta, index[probe], None))
    gap = np.abs(check.numeric - estimate.numeric[probe])
    allowed = SAFETY * check.error + 1e-6 * np.abs(check.numeric)
    if np.any(gap > allowed):
        j = int(probe[np.argmax(gap - allowed)])
        raise CostError(
            "method='complex': the cost is not complex-analytic (it uses abs, conj, |z|**2 or "
            "a branch on the imaginary part): at "
            f"{inputs.layout.coordinate_name(int(index[j]))} the complex step gives "
            f"{estimate.numeric[j]:.10g} but central differences give "
            f"{check.numeric[np.flatnonzero(probe == j)[0]]:.10g}. Use method='richardson'."
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
    notes = [f"directions mode: {inputs.directions} Gaussian direction(s) per block; g.v is "
             "compared with central differences along v at h and h/2, extrapolated (4 "
             "evaluations per direction). A wrong gradient goes unseen only on a set of "
             "directions of measure zero, or when its error along v is within the tolerance "
             "(roughly threshold x ||g_block|| in norm, or the estimated error)"]
    return CheckResult(
        difference=relative_difference(all_g, all_a),
        passed=all(b.passed for b in blocks.values()),
        threshold=inputs.threshold, blocks=blocks, numeric=None, nfev=objective.nfev,
        seconds=time.perf_counter() - start, engine=objective.name,
        method="directions", step=_step_text(inputs.eps) + " and half of it",
        checked=index, ignored_keys=inputs.ignored_keys, notes=notes,
        threshold_rule=f"{inputs.threshold:.0e} relative + {SAFETY:g} x the estimated error "
                       "of each extrapolated directional derivative",
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
