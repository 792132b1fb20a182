"""Front end: ``fastgc.check`` and ``fastgc.assert_gradients_close``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ._layout import Layout
from ._objective import ENGINES, make_objective
from ._result import build_result
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


def _check_iv(cost, grad, params, args, eps, threshold, engine, method) -> _Inputs:
    """Validate and normalise every argument of :func:`check` (kernels never re-check)."""
    if not callable(cost):
        raise TypeError(f"cost must be callable, cost(params, *args) -> float; got "
                        f"{type(cost).__name__}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if eps is not None:
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)):
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
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        raise TypeError(f"threshold must be a float, not {type(threshold).__name__}")
    threshold = float(threshold)
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive finite float, not {threshold}")
    layout, theta = Layout.of(params, "params")
    if callable(grad):
        grad = grad(layout.unflatten(theta.copy()), *args)
    analytic, ignored = layout.flatten_gradient(grad, "grad")
    return _Inputs(layout, theta, analytic, ignored, eps, threshold, engine, method)


def check(cost, grad, params, *args, eps=None, threshold=None, engine="auto",
          method="central", max_memory=None):
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
    parameter block passes when its own difference is within ``threshold`` or when
    ``||g - a||`` is within 10 times the estimated rounding error of the numeric gradient
    (so a correct block whose gradient is tiny is not failed by noise); the check passes when
    every block does. A full check costs two cost evaluations per parameter, plus one at
    ``params``.

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
    inputs = _check_iv(cost, grad, params, args, eps, threshold, engine, method)
    layout, theta = inputs.layout, inputs.theta
    objective = make_objective(cost, layout, theta, args, inputs.engine, max_memory=max_memory)
    try:
        index = np.arange(layout.size, dtype=np.int64)
        step = coordinate_steps(theta, index, inputs.eps)
        estimate = central(objective, index, step)
        step_text = (f"eps {inputs.eps:g}" if inputs.eps is not None
                     else f"step {DEFAULT_CENTRAL_STEP:.2g} x max(1, |theta|)")
        return build_result(
            layout, index, inputs.analytic, estimate, inputs.threshold,
            nfev=objective.nfev, seconds=time.perf_counter() - start, engine=objective.name,
            method=inputs.method, step=step_text, ignored_keys=inputs.ignored_keys,
        )
    finally:
        objective.close()


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
