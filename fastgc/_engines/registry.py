"""Engines: how a batch of perturbed costs is evaluated.

``make_objective`` picks the engine for a cost; every engine returns cost differences
``J(theta + p) - J(theta)`` for batches of perturbations (see ``_base``).
"""

from __future__ import annotations

import sys

from fastgc._engines.base import Deltas, Objective
from fastgc._errors import CostError

__all__ = ["CostError", "Deltas", "Objective", "batched", "engine_names", "make_objective"]

def batched(cost):
    """Mark ``cost`` as batch-aware, for the stacked engine.

    A batch-aware cost accepts parameters whose arrays carry a leading batch axis (``W`` of
    shape ``(B, n, k)`` instead of ``(n, k)``; ``np.matmul`` broadcasts over it) and returns a
    float64 array of ``B`` costs. ``engine="auto"`` uses the stacked engine for marked costs.

    Parameters
    ----------
    cost : callable
        ``cost(params, *args)`` as above.

    Returns
    -------
    callable
        ``cost`` itself, with the attribute ``fastgc_batched = True``.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> @fastgc.batched
    ... def cost(w, x):
    ...     return 0.5 * np.sum((w @ x) ** 2, axis=(-2, -1))
    >>> cost.fastgc_batched
    True
    """
    if not callable(cost):
        raise TypeError(f"batched expects a callable cost, not {type(cost).__name__}")
    cost.fastgc_batched = True
    return cost


# The engines, by name: (module, class). Adding an engine is one new module in this package
# and one line here (plus, for engine="auto", one rule in _engine_for). Modules are imported on
# first use, so that numba is imported only when a numba kernel runs.
_ENGINE_CLASSES = {
    "loop": ("fastgc._engines.loop", "LoopObjective"),
    "stacked": ("fastgc._engines.stacked", "StackedObjective"),
    "numba": ("fastgc._engines.numba", "NumbaObjective"),
    "network": ("fastgc._network.engine", "NetworkObjective"),
    "framework": ("fastgc._engines.framework", "FrameworkObjective"),
}


def engine_names() -> tuple:
    """The ``engine=`` values: ``"auto"`` and every registered engine."""
    return ("auto", *_ENGINE_CLASSES)


def make_objective(cost, layout, theta, args, engine="auto", max_memory=None):
    """The objective that evaluates ``cost`` with the requested engine, set up once.

    ``engine="auto"`` picks network (an ``MLP``) > numba (an ``njit``-compiled cost) > stacked
    (a cost marked with :func:`batched`) > loop. A numba cost always receives the flat float64
    parameter vector, whichever engine runs it.
    """
    import importlib

    kind = _engine_for(cost, engine)
    module_name, class_name = _ENGINE_CLASSES[kind]
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class(cost, layout, theta, args, max_memory=max_memory)


def _is_mlp(cost) -> bool:
    # An MLP exists only if its module was imported: no need to import it (and numba) here.
    mlp_module = sys.modules.get("fastgc._network.mlp")
    return mlp_module is not None and isinstance(cost, mlp_module.MLP)


def _is_numba(cost) -> bool:
    # numba dispatchers are recognised without importing numba (keeps `import fastgc` light).
    return type(cost).__module__.startswith("numba") and hasattr(cost, "py_func")


def _is_framework(cost) -> bool:
    # a backend of fastgc.torch / fastgc.jax says so as data, not by its type's name
    return getattr(cost, "fastgc_framework", None) is not None


def _engine_for(cost, engine: str) -> str:
    if engine == "auto":
        if _is_framework(cost):
            return "framework"
        if _is_mlp(cost):
            return "network"
        if _is_numba(cost):
            return "numba"
        if getattr(cost, "fastgc_batched", False):
            return "stacked"
        return "loop"
    if engine == "network" and not _is_mlp(cost):
        raise ValueError(
            f"engine='network' needs a fastgc.MLP as the cost, got {type(cost).__name__}"
        )
    if engine == "framework" and not _is_framework(cost):
        raise ValueError("engine='framework' is the engine of fastgc.torch and fastgc.jax; "
                         f"use their check functions (got a {type(cost).__name__} cost)")
    if engine == "numba" and not _is_numba(cost):
        raise ValueError(
            "engine='numba' needs a cost compiled with numba.njit, "
            f"cost(theta, *args) -> float; got {type(cost).__name__}"
        )
    return engine
