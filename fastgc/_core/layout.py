"""Layout: how a structure of parameter arrays becomes one float64 vector, and back.

A *structure* is what the user hands fastgc: a dict of arrays (any names, e.g. the exercise's
``{"W1": ..., "b1": ...}``), a list or tuple of arrays, one array of any shape, or any nesting
of dicts, lists and tuples of arrays (a pytree: a textbook network's ``(weights, biases)``
tuple of lists, ``{"layers": [{"W": ..., "b": ...}, ...]}``). The layout records each block's
name (its path: ``"W1"``, ``"weights[0]"``, ``"layers[2]['W']"``), shape and offset in the flat
vector, so that any coordinate can be named (``"W2[1, 3]"``, ``"weights[0][4, 2]"``) and a
gradient given in the same structure (dict keys either the parameter names or ``"d" + name``,
as in the exercise, at every level) can be matched to it.

The flat order is the structure's own order (dict insertion order, depth first), each block
raveled in C order: for the exercise's dict this is exactly ``gc_utils.dictionary_to_vector``'s
order.

``exclude`` leaves entries out of the flat vector (a layer's non-trainable ``running_mean``):
they are not checked, need no gradient, and are put back, as read-only copies, into every
structure the layout builds for the cost.
"""

from __future__ import annotations

import numbers
import os
import re
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from fastgc._errors import Float32Warning

# Gradient-dict keys of the exercise's backprop that are intermediate quantities, not parameter
# gradients ("dZ3", "dA2"): recognised and ignored rather than reported as extra keys.
_BACKPROP_INTERMEDIATE = re.compile(r"^d[ZA]\d+$")




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
    ``kind`` is ``"dict"``, ``"sequence"`` or ``"array"`` for a flat structure (arrays directly
    in one dict, list or tuple, or one array) and ``"tree"`` for anything nested or with
    excluded entries.
    """

    def __init__(self, kind: str, blocks: tuple[Block, ...], container=None, tree=None,
                 excluded: tuple[str, ...] = ()):
        self.kind = kind  # "dict", "sequence", "array" or "tree"
        self.blocks = blocks
        self.container = container  # list or tuple for kind == "sequence"
        self.size = blocks[-1].stop if blocks else 0
        self._offsets = np.array([b.offset for b in blocks], dtype=np.int64)
        self._tree = tree  # the skeleton that assemble() fills, for kind == "tree"
        self.excluded = excluded  # names of the excluded entries, in structure order
        # Per block, the axes order of the user's array in memory when it is a transposed
        # (permuted) contiguous array, else None (C order): an engine that hands the user's
        # code views of its working vector can lay them out as the user's arrays were, so
        # that the code runs at the speed it runs on its own arrays.
        self.memory_axes: tuple = (None,) * len(blocks)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def of(cls, params, argname: str = "params", exclude=None) -> tuple[Layout, np.ndarray]:
        """Validate ``params`` and return its layout and a new float64 flat copy of it.

        ``exclude`` (a name or path, a list of them, or a predicate on the path) leaves entries
        out of the flat vector; see :func:`exclusion`.

        Raises
        ------
        TypeError
            A structure that is not a dict, list, tuple or array; a non-numeric or complex
            block.
        ValueError
            An empty structure, an empty block, a NaN/inf entry (named), or an ``exclude``
            name that matches no entry.
        """
        if not isinstance(params, (dict, list, tuple)) and not (isinstance(
                params, (np.ndarray, float, int, np.floating)) and not isinstance(params, bool)):
            raise TypeError(
                f"{argname} must be a dict of arrays, a list/tuple of arrays or one array "
                f"(or any nesting of dicts, lists and tuples of arrays), not "
                f"{type(params).__name__}"
            )
        excluded_by = exclusion(exclude)
        leaves: list[tuple[tuple, object]] = []  # (path, value) in structure order
        tree = _skeleton(params, (), argname, leaves)
        flat_kind = _flat_kind(params)
        blocks, arrays, offset, upcast, excluded, used = [], [], 0, [], [], set()
        leaf_slot: dict[tuple, int | None] = {}
        fixed: dict[tuple, np.ndarray] = {}
        for path, value in leaves:
            name = _path_name(path)

            def label(path=path):  # spelled out only for a message: a check makes many
                return argname + _path_suffix(path)

            array = _as_real_array(value, label)
            hit = excluded_by(name, path) if excluded_by is not None else None
            if hit:
                used.update(hit)
                excluded.append(name)
                frozen = np.array(array, dtype=np.float64)
                frozen.flags.writeable = False
                fixed[path], leaf_slot[path] = frozen, None
                continue
            if array.size == 0:
                raise ValueError(f"{label()} is empty (shape {array.shape}): nothing to check")
            if array.dtype == np.float32:
                upcast.append(label())
            leaf_slot[path] = len(blocks)
            key = (path if flat_kind is None or excluded_by is not None
                   else int(path[0]) if isinstance(path[0] if path else None, _Index)
                   else path[0] if path else None)
            blocks.append(Block(name, key, tuple(int(n) for n in array.shape), offset,
                                int(array.size)))
            arrays.append(array)
            offset += array.size
        if excluded_by is not None:
            unused = [s for s in excluded_by.names if s not in used]
            if unused:
                raise ValueError(
                    f"exclude names {unused[0]!r}, which matches no entry of {argname} "
                    f"(entries: {[_path_name(p) for p, _ in leaves]!r})"
                )
            if not blocks:
                raise ValueError(f"exclude leaves nothing of {argname} to check (excluded: "
                                 f"{excluded!r})")
        memory_axes = tuple(_memory_axes(a) for a in arrays)
        if excluded_by is not None or flat_kind is None:
            layout = cls("tree", tuple(blocks), None, _fill_slots(tree, leaf_slot, fixed),
                         tuple(excluded))
        else:
            layout = cls(flat_kind, tuple(blocks),
                         type(params) if flat_kind == "sequence" else None)
        layout.memory_axes = memory_axes
        flat = np.empty(offset, dtype=np.float64)
        for block, array in zip(blocks, arrays, strict=True):
            flat[block.offset : block.stop] = array.ravel()
        layout.require_finite(flat, argname)
        if upcast:
            warnings.warn(
                f"{', '.join(upcast)} {'is' if len(upcast) == 1 else 'are'} float32: upcast to "
                "float64 for the estimate (in float32 a difference quotient loses about half of "
                "its 7 digits to rounding), and the cost is called with float64 arrays. If it "
                "computes in float32 anyway (float32 data, a cast), fastgc measures its noise "
                "and chooses the step and threshold for it; the report says so.",
                Float32Warning,
                stacklevel=_user_stacklevel(),
            )
        return layout, flat

    # -- the flat vector and back -------------------------------------------------------------
    def unflatten(self, flat: np.ndarray):
        """The structure (same container types and keys) whose arrays are views into
        ``flat``; excluded entries are read-only copies of their values."""
        return self.assemble([flat[b.offset : b.stop].reshape(b.shape) for b in self.blocks])

    def assemble(self, arrays, fill=None):
        """The user's kind of structure holding ``arrays``, one per block in order.

        Excluded entries hold their (read-only) values, or, with ``fill``, arrays of their
        shape full of ``fill`` (``np.nan`` for a numeric gradient: not checked).
        """
        if self.kind == "dict":
            return {b.key: a for b, a in zip(self.blocks, arrays, strict=True)}
        if self.kind == "sequence":
            return _make_sequence(self.container, list(arrays))
        if self.kind == "array":
            return arrays[0]
        if len(arrays) != len(self.blocks):
            raise ValueError(f"assemble needs {len(self.blocks)} arrays, got {len(arrays)}")
        return _build(self._tree, arrays, fill)

    def leaves(self, structure) -> list:
        """The arrays of ``structure`` (built by :meth:`unflatten` or :meth:`assemble`), one
        per block, in block order (excluded entries left out)."""
        if self.kind == "array":
            return [structure]
        if self.kind == "dict":
            return [structure[b.key] for b in self.blocks]
        if self.kind == "sequence":
            return list(structure)
        return [_get(structure, b.key if isinstance(b.key, tuple) else (b.key,))
                for b in self.blocks]

    def flatten_gradient(self, grad, argname: str = "grad") -> tuple[np.ndarray, list[str]]:
        """Match ``grad`` to the parameters block by block and return it as a flat float64 copy.

        Dict keys may be the parameter names or ``"d" + name`` (the exercise's ``"dW1"``), at
        every level of a nested structure. Returns the flat gradient and the list of ignored
        keys (the exercise's backprop intermediates such as ``"dZ1"``). Gradients of excluded
        entries may be given or left out; they are not read.

        Raises
        ------
        TypeError, ValueError
            Structure, key or shape mismatches (both shapes named), non-real dtypes, NaN/inf.
        """
        ignored: list[str] = []
        if self.kind == "tree":
            found: list = []
            _match(self._tree, grad, (), argname, argname, found, ignored)
            arrays = [(self.blocks[slot], value, label) for slot, value, label in found]
        elif self.kind == "dict":
            if not isinstance(grad, dict):
                raise TypeError(
                    f"{argname} must be a dict like params (keys 'W1' or 'dW1'), "
                    f"not {type(grad).__name__}"
                )
            keys, ignored = _match_dict_keys([b.key for b in self.blocks], grad, argname, "")
            arrays = [(b, grad[k], f"{argname}[{k!r}]")
                      for b, k in zip(self.blocks, keys, strict=True)]
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
            if isinstance(value, dict) and self.kind == "tree":
                raise TypeError(f"{label} must be an array like parameter {b.name!r}, not "
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
        """Name of flat coordinate ``index``: ``"W2[1, 3]"``, ``"weights[0][4, 2]"``."""
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


# -- exclusion ----------------------------------------------------------------------------------
class _Exclusion:
    """Which entries ``exclude`` names: called with an entry's name and path, it returns the
    exclude names that hit it (a non-empty tuple; ``("<predicate>",)`` for a predicate), or
    an empty tuple."""

    def __init__(self, names: tuple[str, ...], predicate):
        self.names = names
        self.predicate = predicate

    def __call__(self, name: str, path: tuple) -> tuple:
        if self.predicate is not None:
            return ("<predicate>",) if self.predicate(name) else ()
        last = str(path[-1]) if path else name
        return tuple(s for s in self.names
                     if s == name or s == last or name.startswith(s + "["))


def exclusion(exclude):
    """Normalise ``exclude`` (None, a name, a sequence of names, or a predicate) to a matcher.

    A name excludes the entry with that path (``"bn['running_mean']"``), every entry whose own
    key is that name (``"running_mean"`` at any depth) and every entry below that path
    (``"layers[1]"`` excludes the whole second layer). A predicate is called with each
    entry's path name (``"layers[1]['W']"``) and excludes it when it returns true.

    Raises
    ------
    TypeError
        ``exclude`` of another type.
    """
    if exclude is None:
        return None
    if callable(exclude):
        return _Exclusion((), exclude)
    if isinstance(exclude, str):
        return _Exclusion((exclude,), None)
    if isinstance(exclude, (list, tuple, set, frozenset)) and all(
            isinstance(s, str) for s in exclude):
        return _Exclusion(tuple(exclude), None)
    raise TypeError(f"exclude must be a name, a list of names or a predicate on the path "
                    f"name, not {type(exclude).__name__}")


# -- pytree helpers -----------------------------------------------------------------------------
_LEAF = "leaf"


def _is_numeric_nest(value) -> bool:
    """A list/tuple of numbers (or of such lists): an array written as a list (``[[1.0, 2.0]]``)
    below the top level, read as one array rather than as a structure of scalars."""
    return (isinstance(value, (list, tuple)) and len(value) > 0 and not hasattr(value, "_fields")
            and all((isinstance(v, numbers.Number) and not isinstance(v, np.ndarray))
                    or _is_numeric_nest(v) for v in value))


def _flat_kind(params):
    """The legacy kind of a structure with arrays directly in it; None when nested."""
    if isinstance(params, dict):
        return "dict" if all(not isinstance(v, (dict, list, tuple)) or _is_numeric_nest(v)
                             for v in params.values()) else None
    if isinstance(params, (list, tuple)):
        return "sequence" if all(not isinstance(v, (dict, list, tuple)) or _is_numeric_nest(v)
                                 for v in params) else None
    return "array"


def _path_name(path: tuple) -> str:
    """``("layers", 2, "W")`` -> ``"layers[2]['W']"``: a top-level dict key bare (the
    exercise's ``"W1"``), then numpy-like subscripts."""
    if not path:
        return "params"
    head, rest = path[0], path[1:]
    first = f"[{head.index}]" if isinstance(head, _Index) else str(head)
    return first + _path_suffix(rest)


def _path_suffix(path: tuple) -> str:
    return "".join(f"[{k.index}]" if isinstance(k, _Index) else f"[{k!r}]" for k in path)


class _Index(int):
    """A list/tuple position inside a path (so that a dict key 0 and a position 0 differ)."""

    @property
    def index(self) -> int:
        return int(self)


def _skeleton(value, path: tuple, argname: str, leaves: list):
    """The structure's skeleton: ``("dict", type, keys, children)``, ``("seq", type,
    children)`` or ``(_LEAF, path)``; appends ``(path, value)`` for every leaf."""
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"{argname + _path_suffix(path)} is an empty dict: there is "
                             "nothing to check")
        keys = list(value)
        return ("dict", type(value), keys,
                [_skeleton(value[k], (*path, k), argname, leaves) for k in keys])
    if isinstance(value, (list, tuple)) and (not path or not _is_numeric_nest(value)):
        if not value:
            raise ValueError(f"{argname + _path_suffix(path)} is an empty "
                             f"{type(value).__name__}")
        return ("seq", type(value),
                [_skeleton(v, (*path, _Index(i)), argname, leaves) for i, v in enumerate(value)])
    leaves.append((path, value))
    return (_LEAF, path)


def _fill_slots(node, slot: dict, fixed: dict):
    """The skeleton with each leaf replaced by ``(_LEAF, block index or None, fixed value)``."""
    if node[0] == _LEAF:
        path = node[1]
        return (_LEAF, slot[path], fixed.get(path), path)
    if node[0] == "dict":
        return ("dict", node[1], node[2], [_fill_slots(c, slot, fixed) for c in node[3]])
    return ("seq", node[1], [_fill_slots(c, slot, fixed) for c in node[2]])


def _make_sequence(container, items: list):
    if hasattr(container, "_fields"):  # a namedtuple takes one argument per field
        return container(*items)
    return container(items)


def _make_dict(container, items):
    if container is dict:
        return dict(items)
    try:
        return container(items)
    except TypeError:  # a dict subclass with another constructor
        return dict(items)


def _build(node, arrays, fill):
    if node[0] == _LEAF:
        _, slot, value, _ = node
        if slot is not None:
            return arrays[slot]
        return value if fill is None else np.full(value.shape, fill)
    if node[0] == "dict":
        return _make_dict(node[1], [(k, _build(c, arrays, fill))
                                    for k, c in zip(node[2], node[3], strict=True)])
    return _make_sequence(node[1], [_build(c, arrays, fill) for c in node[2]])


def _get(structure, path: tuple):
    for k in path:
        structure = structure[k]
    return structure


def _match_dict_keys(param_keys: list, grad: dict, argname: str, where: str):
    """For each parameter key, the gradient key that holds its gradient (``k`` or
    ``"d" + k``), and the ignored backprop intermediates; ValueError on a missing, ambiguous
    or unknown key."""
    keys_of = set(param_keys)
    chosen = []
    for k in param_keys:
        # "dW" is an alias of "W"'s gradient, unless "dW" is itself a parameter.
        aliases = (k,) if f"d{k}" in keys_of else (k, f"d{k}")
        keys = [a for a in aliases if a in grad]
        name = (where + f"[{k!r}]") if where else str(k)
        if not keys:
            raise ValueError(f"{argname} has no gradient for parameter {name!r}: expected key "
                             f"{str(k)!r} or {'d' + str(k)!r}")
        if len(keys) == 2:
            raise ValueError(f"{argname}{_bare(where)} has both {keys[0]!r} and {keys[1]!r}: "
                             f"which one is the gradient of {name!r} is ambiguous")
        chosen.append(keys[0])
    extra = [k for k in grad if k not in set(chosen)]
    ignored = [str(k) for k in extra if _BACKPROP_INTERMEDIATE.match(str(k))]
    unknown = [k for k in extra if not _BACKPROP_INTERMEDIATE.match(str(k))]
    if unknown:
        listed = [(where + f"[{k!r}]") if where else str(k) for k in param_keys]
        raise ValueError(f"{argname}{_bare(where)} has keys that match no parameter: "
                         f"{unknown!r} (parameters: {listed!r})")
    return chosen, ignored


def _bare(where: str) -> str:
    """The subscript part of a path name, for ``grad`` + it: ``"layers[2]"`` -> ``"['layers'][2]"``
    is not recoverable from the name, so messages spell the nested location with the name."""
    return f" at {where}" if where else ""


def _match(node, grad, path: tuple, label: str, argname: str, out: list,
           ignored: list) -> None:
    """Walk the parameter skeleton and ``grad`` together, appending ``(block index, value,
    label)`` for every checked leaf, in block order. ``path`` is the parameter's path,
    ``label`` where the gradient's value sits (``"grad['layers'][0]['dW']"``)."""
    if node[0] == _LEAF:
        if node[1] is not None:
            out.append((node[1], grad, label))
        return
    where = "params" + _path_suffix(path)
    if node[0] == "dict":
        if not isinstance(grad, dict):
            raise TypeError(f"{label} must be a dict like {where}, not {type(grad).__name__}")
        keys, children = node[2], node[3]
        checked = [(k, c) for k, c in zip(keys, children, strict=True) if _has_checked(c)]
        skipped = {k for k, c in zip(keys, children, strict=True) if not _has_checked(c)}
        # Excluded entries need no gradient; one given (as "k" or "dk") is not read.
        live = set(keys) - skipped
        pruned = {k: v for k, v in grad.items()
                  if k not in skipped and not (isinstance(k, str) and k[:1] == "d"
                                               and k[1:] in skipped and k[1:] not in live)}
        chosen, ign = _match_dict_keys([k for k, _ in checked], pruned, argname,
                                       _path_name(path) if path else "")
        ignored.extend(ign)
        for (k, child), gk in zip(checked, chosen, strict=True):
            _match(child, grad[gk], (*path, k), f"{label}[{gk!r}]", argname, out, ignored)
        return
    children = node[2]
    if not isinstance(grad, (list, tuple)):
        raise TypeError(f"{label} must be a list/tuple like {where}, not "
                        f"{type(grad).__name__}")
    if len(grad) != len(children):
        raise ValueError(f"{label} has {len(grad)} items but {where} has {len(children)}")
    for i, (child, g) in enumerate(zip(children, grad, strict=True)):
        _match(child, g, (*path, _Index(i)), f"{label}[{i}]", argname, out, ignored)


def _has_checked(node) -> bool:
    if node[0] == _LEAF:
        return node[1] is not None
    return any(_has_checked(c) for c in (node[3] if node[0] == "dict" else node[2]))


def _user_stacklevel() -> int:
    """``stacklevel`` that attributes a warning to the first frame outside fastgc.

    A fixed number would point at fastgc's own code whenever the call path changes (``check``
    through ``fastgc._check._validate``, or the exercise's wrappers around ``check``).
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # fastgc/
    frame, level = sys._getframe(2), 2  # frame 2 (stacklevel 2): the warner's caller
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _memory_axes(array: np.ndarray):
    """The axes order ``ax`` such that ``array.transpose(ax)`` is C-contiguous, when
    ``array`` is a permuted contiguous array other than C order (a transposed weight); else
    None."""
    if array.ndim < 2 or array.flags.c_contiguous:
        return None
    axes = tuple(int(a) for a in np.argsort([-s for s in array.strides], kind="stable"))
    if not array.transpose(axes).flags.c_contiguous:
        return None  # strided (a slice with steps), or broadcast: C order for fastgc's copy
    return axes


def _as_real_array(value, label) -> np.ndarray:
    """``value`` as a real floating ndarray (not copied), or a TypeError naming ``label`` (a
    string, or a callable that makes it: only an error needs it)."""
    if callable(label):
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.dtype.itemsize >= 4:
            return value  # the common case, with nothing to name
        label = label()
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
