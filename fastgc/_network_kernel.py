"""Kept only for ``fastgc/_bench.py`` (owned elsewhere), which still imports
``coordinate_deltas`` from here; the engine lives in `fastgc._network`. Delete this module once
that import reads ``from ._network import coordinate_deltas``."""

from ._network import coordinate_deltas

__all__ = ["coordinate_deltas"]
