"""The objective: the cost as the checker sees it.

An objective answers batches of requests "J at theta + step * e_index" with the cost
*differences* ``J(theta + step * e_index) - J(theta)``. Every engine returns differences, so a
scheme combines them the same way whichever engine ran; an engine that can compute the
difference more precisely than by subtracting two totals (the network engine sums per-sample
differences) simply does so.

For a pair of steps +h and -h, ``(d_plus - d_minus)`` equals ``J_plus - J_minus`` bit for bit
when the differences are computed by subtraction (Sterbenz: differences of nearby floats are
exact), so the loop engine reproduces the exercise's numbers exactly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from fastgc._errors import CostError

_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)




class Deltas(NamedTuple):
    """What an engine call computed.

    Attributes
    ----------
    values : ndarray
        One value per request: a cost difference ``J(theta + p) - J(theta)``, or
        ``Im J(theta + i h e_k)`` for the complex step.
    noise : ndarray
        Estimated absolute rounding error of each value; schemes turn it into the error
        estimate of a derivative.
    nfev : int
        Cost evaluations the call performed.
    """

    values: np.ndarray
    noise: np.ndarray
    nfev: int


class Objective:
    """Base class of the engines.

    An engine's expensive set-up (the base cost, compiled kernels, cached forward passes) is
    built once, in ``__init__``, and reused by every call of the check. Every call returns a
    :class:`Deltas`: its values, their noise and the evaluations it cost, so that wrappers
    (chunking, progress, workers) pass results through without reaching into the engine.

    Attributes
    ----------
    name : str
        The engine's name, reported in the result.
    base_cost : float
        ``J(theta)``, evaluated once at set-up (one cost evaluation).
    noise : float
        Estimated absolute rounding error of one cost difference, from ``base_cost``.
    """

    name = "abstract"
    setup_nfev = 1  # the base point
    # Whether the check measures the cost's noise (fastgc._core.noise) before choosing steps: an
    # engine whose cost is known to be deterministic float64 may skip it.
    measures_noise = True
    # Whether the engine's complex evaluation is complex-analytic by construction (fastgc's own
    # network: its ReLU branches on Re z), so the complex step's analyticity probe is skipped.
    exact_complex = False
    # A lower bound on the noise (sigma) of one cost value that the engine knows from the
    # dtype the cost computes in (a float32 tensor's rounding): a short noise table can miss
    # noise that quantised inputs make piecewise constant, never exceed what the dtype implies.
    noise_floor = 0.0
    # How the engine ran, for an engine with more than one way (CheckResult.path).
    path = ""

    def __init__(self, layout, theta: np.ndarray):
        self.layout = layout
        self.theta = theta  # fastgc's own copy; never the user's arrays
        self.base_cost = math.nan
        self.noise = 0.0

    def _deltas(self, values: np.ndarray, nfev: int | None = None) -> Deltas:
        """``values`` with the loop-type noise ``self.noise`` for each."""
        n = len(values)
        return Deltas(values, np.full(n, self.noise), n if nfev is None else nfev)

    def at_coordinates(self, index: np.ndarray, step: np.ndarray) -> Deltas:
        """``J(theta + step[j] * e_{index[j]}) - J(theta)`` for each j."""
        raise NotImplementedError

    def along_directions(self, directions, step: np.ndarray) -> Deltas:
        """``J(theta + step[j] * v_j) - J(theta)`` for sparse directions.

        ``directions`` is a sequence of ``(indices, values)`` pairs, one per request.
        """
        raise NotImplementedError

    def complex_at_coordinates(self, index: np.ndarray, h: float) -> Deltas:
        """``Im J(theta + i h e_{index[j]})`` for each j (the complex step)."""
        raise NotImplementedError(f"the {self.name} engine does not support method='complex'")

    def kink_mask(self, index: np.ndarray, step: np.ndarray) -> np.ndarray | None:
        """Which perturbations cross a kink of the cost (a ReLU switching), when the engine
        can tell exactly; None when it cannot (black-box costs)."""
        return None

    def close(self) -> None:
        """Release scratch memory; the objective is not used afterwards."""


def as_cost_value(value, where: str) -> float:
    """The float in ``value`` (a scalar, or a tuple whose first item is one), or CostError."""
    if isinstance(value, tuple):
        if not value:
            raise CostError(f"cost returned an empty tuple {where}")
        value = value[0]
    if value is None:
        raise CostError(f"cost returned None {where}; it must return a float")
    if isinstance(value, (str, bytes)):
        raise CostError(f"cost returned a string {value!r} {where}; it must return a float")
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise CostError(
            f"cost returned an array of shape {value.shape} {where}; it must return a "
            "scalar (use .item() or np.sum)"
        )
    if np.iscomplexobj(value):
        raise CostError(f"cost returned a complex value {value!r} {where}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise CostError(
            f"cost returned {type(value).__name__} {where}; it must return a float"
        ) from None
    if not math.isfinite(result):
        raise CostError(f"cost returned {result} {where}")
    return result


def describe_point(layout, index: int, step: float) -> str:
    """``"at W2[1, 3] + 1e-07"``: where a perturbed cost was evaluated, for error messages."""
    sign = "+" if step >= 0 else "-"
    return f"at {layout.coordinate_name(index)} {sign} {abs(step):.3g}"


def rounding_noise(base_cost: float) -> float:
    """Estimated rounding error of ``J(theta + p) - J(theta)`` evaluated by subtraction.

    A cost summed over many terms carries a rounding error of a few ulps of its magnitude;
    8 ulps is a deliberately generous figure (schemes multiply by a safety factor on top), so
    that noise never passes for a wrong gradient.
    """
    return 8.0 * _EPS * max(abs(base_cost), _TINY)


def as_complex_imag(value, where: str) -> float:
    """``Im`` of a cost evaluated at complex parameters, or CostError when the cost is not
    complex-safe (it returned a real value: abs, np.real, float() or a real buffer dropped the
    imaginary part)."""
    if isinstance(value, tuple):
        value = value[0] if value else None
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if not isinstance(value, (complex, np.complexfloating)):
        raise CostError(
            f"method='complex' needs a complex-safe cost, but it returned "
            f"{type(value).__name__} {where} for complex parameters: something in it drops the "
            "imaginary part (abs, np.real, float(), a float64 buffer). Use method='richardson'."
        )
    if not (np.isfinite(value.real) and np.isfinite(value.imag)):
        raise CostError(f"cost returned {value} {where}")
    return float(value.imag)


def nonfinite_data_hint(args) -> str:
    """``" (args[0] has nan at [0, 2])"`` when an array argument holds NaN/inf, else ``""``.

    Appended to the error for a non-finite cost at the unperturbed point: bad data is the
    usual cause. Data with inf can be legitimate (masks), so it is only a hint, not an error.
    """
    for k, arg in enumerate(args):
        if isinstance(arg, np.ndarray) and arg.dtype.kind in "fc":
            bad = np.argwhere(~np.isfinite(arg))
            if bad.size:
                at = ", ".join(str(int(i)) for i in bad[0])
                return f" (args[{k}] has {arg[tuple(bad[0])]} at [{at}])"
    return ""
