"""The dense-network engine: finite differences of an `MLP` cost by its structure.

One forward pass at the point serves every perturbed point: a perturbation of layer ``l``
reuses the cached activations of the layers below it, and only *differences* travel through
the later layers, evaluated in forms that never subtract two nearly equal costs.

API
---
NetworkState              the set-up at one point (forward pass and packing, once), with
                          ``coordinate_deltas``, ``kink_mask``, ``direction_deltas`` and
                          ``complex_step_derivatives``
coordinate_deltas, kink_mask, direction_deltas, complex_step_derivatives
                          one-shot forms: a fresh state for a single request

Modules, one concept each: ``_activations`` (the activation table, numpy only), ``_differences``
(their numba scalar forms and the losses'), ``_forward`` (the packed forward cache),
``_coordinates`` (coordinate kernel and its linear/Taylor tables), ``_kinks``, ``_directions``,
``_complex`` and ``_state``.

This package's names resolve lazily (PEP 562): ``fastgc._network.mlp`` imports the numpy-only
``_activations`` from here, and must not import numba by doing so.
"""

__all__ = [
    "NetworkState",
    "complex_step_derivatives",
    "coordinate_deltas",
    "direction_deltas",
    "kink_mask",
]


def __getattr__(name):
    if name in __all__:
        from fastgc._network import state as _state

        return getattr(_state, name)
    raise AttributeError(f"module 'fastgc._network' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
