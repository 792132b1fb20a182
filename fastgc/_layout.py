"""Layout: how a structure of parameter arrays becomes one float64 vector, and back.

A *structure* is what the user hands fastgc: a dict of arrays (any names, e.g. the exercise's
``{"W1": ..., "b1": ...}``), a list or tuple of arrays, or one array of any shape. The layout
records each block's name, shape and offset in the flat vector, so that any coordinate can be
named (``"W2[1, 3]"``) and a gradient given in the same structure (dict keys either the
parameter names or ``"d" + name``, as in the exercise) can be matched to it.

The flat order is the structure's own order (dict insertion order), each block raveled in C
order: for the exercise's dict this is exactly ``gc_utils.dictionary_to_vector``'s order.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from dataclasses import dataclass

import numpy as np

# Gradient-dict keys of the exercise's backprop that are intermediate quantities, not parameter
# gradients ("dZ3", "dA2"): recognised and ignored rather than reported as extra keys.
_BACKPROP_INTERMEDIATE = re.compile(r"^d[ZA]\d+$")


class Float32Warning(UserWarning):
    """float32 parameters were upcast to float64 for the finite-difference estimate."""


@dataclass(frozen=True)
class Block:
    """One parameter array inside the flat vector.

    Attributes
    ----------
    name : str
        The name used in reports: the dict key, ``"[i]"`` for the i-th array of a list, or
        ``"params"`` for a single array.
    key : object
        The dict key or list index that retrieves the array from the user's structure.
    shape : tuple of int
        The array's shape.
    offset : int
        Position of the block's first entry in the flat vector.
    size : int
        Number of entries.
    """

    name: str
    key: object
    shape: tuple
    offset: int
    size: int  # number of entries, prod(shape)

    @property
    def stop(self) -> int:
        return self.offset + self.size

    def entry_name(self, local_index: int) -> str:
        """Name of the entry at ``local_index`` (C order) inside this block: ``"W2[1, 3]"``."""
        if not self.shape:
            return self.name
        idx = np.unravel_index(local_index, self.shape)
        return f"{self.name}[{', '.join(str(int(i)) for i in idx)}]"


class Layout:
    """The flat-vector view of a parameter structure.

    Build one with :meth:`Layout.of`; it validates the structure and names every block.
    """

    def __init__(self, kind: str, blocks: tuple[Block, ...], container=None):
        self.kind = kind  # "dict", "sequence" or "array"
        self.blocks = blocks
        self.container = container  # list or tuple for kind == "sequence"
        self.size = blocks[-1].stop if blocks else 0
        self._offsets = np.array([b.offset for b in blocks], dtype=np.int64)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def of(cls, params, argname: str = "params") -> tuple[Layout, np.ndarray]:
        """Validate ``params`` and return its layout and a new float64 flat copy of it.

        Raises
        ------
        TypeError
            A structure that is not a dict, list, tuple or array; a non-numeric or complex
            block.
        ValueError
            An empty structure, an empty block, or a NaN/inf entry (named).
        """
        if isinstance(params, dict):
            if not params:
                raise ValueError(f"{argname} is an empty dict: there is nothing to check")
            items = [(str(k), k, v) for k, v in params.items()]
            kind, container = "dict", None
        elif isinstance(params, (list, tuple)):
            if not params:
                raise ValueError(f"{argname} is an empty {type(params).__name__}")
            items = [(f"[{i}]", i, v) for i, v in enumerate(params)]
            kind, container = "sequence", type(params)
        elif isinstance(params, (np.ndarray, float, int, np.floating)) and not isinstance(
            params, bool
        ):
            items = [("params", None, params)]
            kind, container = "array", None
        else:
            raise TypeError(
                f"{argname} must be a dict of arrays, a list/tuple of arrays or one array, "
                f"not {type(params).__name__}"
            )
        blocks, arrays, offset, upcast = [], [], 0, []
        for name, key, value in items:
            label = _label(argname, kind, key)
            array = _as_real_array(value, label)
            if array.size == 0:
                raise ValueError(f"{label} is empty (shape {array.shape}): nothing to check")
            if array.dtype == np.float32:
                upcast.append(label)
            blocks.append(Block(name, key, tuple(int(n) for n in array.shape), offset,
                                int(array.size)))
            arrays.append(array)
            offset += array.size
        layout = cls(kind, tuple(blocks), container)
        flat = np.empty(offset, dtype=np.float64)
        for block, array in zip(blocks, arrays, strict=True):
            flat[block.offset : block.stop] = array.ravel()
        layout.require_finite(flat, argname)
        if upcast:
            warnings.warn(
                f"{', '.join(upcast)} {'is' if len(upcast) == 1 else 'are'} float32: upcast to "
                "float64 for the estimate (in float32 a difference quotient loses about half of "
                "its 7 digits to rounding). The gradient is checked against the float64 cost.",
                Float32Warning,
                stacklevel=_user_stacklevel(),
            )
        return layout, flat

    # -- the flat vector and back -------------------------------------------------------------
    def unflatten(self, flat: np.ndarray):
        """The structure (same container type and keys) whose arrays are views into ``flat``."""
        return self.assemble([flat[b.offset : b.stop].reshape(b.shape) for b in self.blocks])

    def assemble(self, arrays):
        """The user's kind of structure (dict, list/tuple or array) holding ``arrays``, one per
        block in order."""
        if self.kind == "dict":
            return {b.key: a for b, a in zip(self.blocks, arrays, strict=True)}
        if self.kind == "sequence":
            if hasattr(self.container, "_fields"):  # a namedtuple takes one argument per field
                return self.container(*arrays)
            return self.container(arrays)
        return arrays[0]

    def flatten_gradient(self, grad, argname: str = "grad") -> tuple[np.ndarray, list[str]]:
        """Match ``grad`` to the parameters block by block and return it as a flat float64 copy.

        Dict keys may be the parameter names or ``"d" + name`` (the exercise's ``"dW1"``).
        Returns the flat gradient and the list of ignored keys (the exercise's backprop
        intermediates such as ``"dZ1"``).

        Raises
        ------
        TypeError, ValueError
            Structure, key or shape mismatches (both shapes named), non-real dtypes, NaN/inf.
        """
        ignored: list[str] = []
        if self.kind == "dict":
            if not isinstance(grad, dict):
                raise TypeError(
                    f"{argname} must be a dict like params (keys 'W1' or 'dW1'), "
                    f"not {type(grad).__name__}"
                )
            arrays, used = [], set()
            param_keys = {b.key for b in self.blocks}
            for b in self.blocks:
                # "dW" is an alias of "W"'s gradient, unless "dW" is itself a parameter.
                aliases = (b.key,) if f"d{b.key}" in param_keys else (b.key, f"d{b.key}")
                keys = [k for k in aliases if k in grad]
                if not keys:
                    raise ValueError(
                        f"{argname} has no gradient for parameter {b.name!r}: expected key "
                        f"{b.name!r} or {'d' + b.name!r}"
                    )
                if len(keys) == 2:
                    raise ValueError(
                        f"{argname} has both {keys[0]!r} and {keys[1]!r}: which one is the "
                        f"gradient of {b.name!r} is ambiguous"
                    )
                used.add(keys[0])
                arrays.append((b, grad[keys[0]], f"{argname}[{keys[0]!r}]"))
            extra = [k for k in grad if k not in used]
            ignored = [str(k) for k in extra if _BACKPROP_INTERMEDIATE.match(str(k))]
            unknown = [k for k in extra if not _BACKPROP_INTERMEDIATE.match(str(k))]
            if unknown:
                raise ValueError(
                    f"{argname} has keys that match no parameter: {unknown!r} "
                    f"(parameters: {[b.name for b in self.blocks]!r})"
                )
        elif self.kind == "sequence":
            if not isinstance(grad, (list, tuple)):
                raise TypeError(
                    f"{argname} must be a list/tuple like params, not {type(grad).__name__}"
                )
            if len(grad) != len(self.blocks):
                raise ValueError(
                    f"{argname} has {len(grad)} arrays but params has {len(self.blocks)}"
                )
            arrays = [(b, g, f"{argname}[{b.key}]") for b, g in zip(self.blocks, grad, strict=True)]
        else:
            arrays = [(self.blocks[0], grad, argname)]
        flat = np.empty(self.size, dtype=np.float64)
        for b, value, label in arrays:
            if isinstance(value, (dict, list, tuple)) and self.kind == "array":
                raise TypeError(f"{argname} must be an array like params, not "
                                f"{type(value).__name__}")
            array = _as_real_array(value, label)
            if array.shape != b.shape:
                raise ValueError(
                    f"{label} has shape {array.shape} but parameter {b.name!r} has shape "
                    f"{b.shape}"
                )
            flat[b.offset : b.stop] = array.ravel()
        self.require_finite(flat, argname)
        return flat, ignored

    # -- naming ---------------------------------------------------------------------------------
    def block_index(self, index):
        """Index of the block holding each flat coordinate in ``index``."""
        return np.searchsorted(self._offsets, index, side="right") - 1

    def coordinate_name(self, index: int) -> str:
        """Name of flat coordinate ``index``: ``"W2[1, 3]"``."""
        block = self.blocks[int(self.block_index(index))]
        return block.entry_name(int(index) - block.offset)

    def require_finite(self, flat: np.ndarray, argname: str) -> None:
        """Raise ValueError naming the first NaN/inf entry of ``flat``, if any."""
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            i = int(bad[0])
            more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
            raise ValueError(
                f"{argname} has a non-finite value {flat[i]} at "
                f"{self.coordinate_name(i)}{more}"
            )


def _user_stacklevel() -> int:
    """``stacklevel`` that attributes a warning to the first frame outside fastgc.

    A fixed number would point at fastgc's own code whenever the call path changes (``check``
    through ``_check_iv``, or the exercise's wrappers around ``check``).
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep + "fastgc"
    frame, level = sys._getframe(2), 2  # frame 2 (stacklevel 2): the warner's caller
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _label(argname: str, kind: str, key) -> str:
    if kind == "dict":
        return f"{argname}[{key!r}]"
    if kind == "sequence":
        return f"{argname}[{key}]"
    return argname


def _as_real_array(value, label: str) -> np.ndarray:
    """``value`` as a real floating ndarray (not copied), or a TypeError naming ``label``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{label} is a bool; parameters and gradients must be floating point")
    if isinstance(value, (int, float)):
        return np.asarray(value, dtype=np.float64)
    if not isinstance(value, np.ndarray) and not np.isscalar(value):
        try:
            value = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{label} cannot be read as an array: {exc}") from None
    array = np.asarray(value)
    if np.iscomplexobj(array):
        raise TypeError(f"{label} is complex ({array.dtype}); fastgc checks real parameters")
    if array.dtype.kind not in "f":
        raise TypeError(
            f"{label} has dtype {array.dtype}; parameters and gradients must be floating "
            "point (float32 or float64)"
        )
    if array.dtype.itemsize < 4:
        raise TypeError(f"{label} has dtype {array.dtype}; use float32 or float64")
    return array
