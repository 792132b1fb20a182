"""Diagnosis: what kind of wrong a failing block's gradient is.

Each rule looks for one pattern a backprop bug typically leaves: a constant factor (a missing
``1/m``, a stray ``* 2``, a sign), a transposed matrix, or a few wrong rows, columns or
entries. The first rule that explains the block wins.
"""

from __future__ import annotations

import numpy as np

# A block is "c x the numeric gradient" when the best-fitting c leaves a residual below this
# fraction of the analytic block's norm: far above finite-difference noise (~1e-8), far below
# the residual of an unrelated gradient (~1).
_FIT_RESIDUAL = 1e-3
_LISTED = 5


def diagnose(block, analytic: np.ndarray, numeric: np.ndarray, wrong: np.ndarray,
             checked: np.ndarray | None = None, smooth: np.ndarray | None = None) -> str:
    """A one-line description of how ``analytic`` departs from ``numeric`` in ``block``.

    Parameters
    ----------
    block : Block
        The parameter block (for its name and shape).
    analytic, numeric : ndarray
        The block's checked entries, flat, in the block's C order.
    wrong : ndarray of bool
        Which checked entries disagree beyond tolerance.
    checked : ndarray of int, optional
        Local (in-block) indices of the checked entries; all of them when None.
    smooth : ndarray of bool, optional
        Which checked entries' one-sided differences agree with each other far better than
        with the analytic value (the cost is smooth there); unknown when None.
    """
    name = block.name
    # "dW2" for a dict key or a single array; "grad[0]" for a list item, and for a key that
    # "d" cannot prefix readably ("grad['my-w']", not "dmy-w").
    gname = f"d{name}" if name.isidentifier() else f"grad[{block.key!r}]"
    g, a = analytic, numeric
    gnorm, anorm = np.linalg.norm(g), np.linalg.norm(a)
    if anorm == 0.0:
        return f"{gname} is nonzero where the numeric gradient is zero"
    if gnorm == 0.0:
        return f"{gname} is zero where the numeric gradient is not"
    factor_text = diagnose_factor(block, g, a)
    if factor_text is not None:
        return factor_text
    full = checked is None or len(checked) == block.size
    shape = block.shape
    if full and len(shape) == 2 and shape[0] == shape[1] > 1:
        at = a.reshape(shape).T.ravel()
        if np.linalg.norm(g - at) <= _FIT_RESIDUAL * gnorm:
            return f"{gname} is transposed (it matches the numeric gradient's transpose)"
    local = np.arange(block.size) if checked is None else np.asarray(checked)
    if full and len(shape) >= 2:
        text = _slices(block, gname, g, a, wrong, shape)
        if text is not None:
            return text
    n_wrong = int(np.count_nonzero(wrong))
    if 0 < n_wrong < len(g):
        names = [block.entry_name(int(i)) for i in local[wrong][:_LISTED]]
        more = f" and {n_wrong - _LISTED} more" if n_wrong > _LISTED else ""
        return f"{n_wrong} of {len(g)} entries disagree: {', '.join(names)}{more}"
    if n_wrong == 0:
        return (f"{gname} is off by small amounts throughout: no entry fails on its own, but "
                "together they exceed the threshold")
    text = f"{gname} disagrees with the numeric gradient throughout (no simple pattern)"
    if smooth is not None and np.mean(smooth[wrong]) >= 0.9:
        # The cost is smooth where the entries fail (the one-sided differences agree with each
        # other, far from the analytic value): no kink or noise explains it, the backward and
        # the cost disagree about the function itself.
        text += ("; the forward and backward differences agree with each other but not with "
                 f"{gname}: the backward may differentiate a different function than the cost "
                 "(train/eval mode, a detached term)")
    return text


def _gradient_name(block) -> str:
    # "dW2" for a dict key or a single array; "grad[0]" for a list item, and for a key that
    # "d" cannot prefix readably ("grad['my-w']", not "dmy-w").
    return f"d{block.name}" if block.name.isidentifier() else f"grad[{block.key!r}]"


def diagnose_factor(block, analytic: np.ndarray, numeric: np.ndarray,
                    min_items: int = 1) -> str | None:
    """``"dW2 is 2 x the numeric gradient"`` when the analytic values are (nearly) a constant
    multiple of the numeric ones (coordinates or directional derivatives alike); else None.

    The factor must explain the discrepancy: the residual of the fit has to be a small part
    of ``||g - a||`` (a factor near 1 that leaves the discrepancy unexplained is no diagnosis).
    With fewer than ``min_items`` values a factor always fits, so none is claimed.
    """
    g, a = analytic, numeric
    aa = float(np.dot(a, a))
    gnorm = np.linalg.norm(g)
    if aa == 0.0 or gnorm == 0.0 or len(g) < min_items:
        return None
    factor = float(np.dot(g, a) / aa)
    residual = np.linalg.norm(g - factor * a)
    if residual > _FIT_RESIDUAL * gnorm or residual > 0.01 * np.linalg.norm(g - a):
        return None
    gname = _gradient_name(block)
    if abs(factor + 1.0) < 1e-3:
        return f"{gname} has the wrong sign (-1 x the numeric gradient)"
    if abs(factor - 1.0) < 1e-2:  # "1 x" would hide the discrepancy: show it
        sign = "+" if factor > 1 else "-"
        return f"{gname} is (1 {sign} {abs(factor - 1):.2g}) x the numeric gradient"
    return f"{gname} is {factor:.4g} x the numeric gradient"


def describe_group(block, group) -> str:
    """``"W1[3, 7]"`` for one entry, ``"W1[3, :]"`` for a row, ``"W1[:, 7]"`` for a column."""
    local = np.asarray(group) - block.offset
    if len(local) == 1:
        return block.entry_name(int(local[0]))
    if len(block.shape) == 2:
        rows, cols = np.unravel_index(local, block.shape)
        if np.all(rows == rows[0]) and len(local) == block.shape[1]:
            return f"{block.name}[{int(rows[0])}, :]"
        if np.all(cols == cols[0]) and len(local) == block.shape[0]:
            return f"{block.name}[:, {int(cols[0])}]"
    return f"{len(local)} entries of {block.name}"


def describe_localisation(block, found) -> str:
    """The report line for a block localised by bisection (``fastgc._core.localise``)."""
    names = [describe_group(block, g) for g in found.groups]
    shown = ", ".join(names[:_LISTED]) + (f" and {len(names) - _LISTED} more"
                                          if len(names) > _LISTED else "")
    cost = f"({found.nfev} evaluations)"
    if not names:
        return f"{_gradient_name(block)} disagrees along random directions, but no part of it " \
               f"fails on its own {cost}"
    if found.broad:
        return f"the error is spread out: at least {shown} disagree {cost}"
    prefix = "budget exhausted; so far " if found.exhausted else ""
    return f"{prefix}localised to {shown} {cost}"


def _slices(block, gname, g, a, wrong, shape) -> str | None:
    """``"rows [1] of dW disagree; the other rows agree"`` or, along any axis of an N-d
    block, ``"dX[:, 0:3, :] disagree; dX[:, 3, :] agrees"``, when the wrong entries fill whole
    slices along one axis and the other slices agree; with the factor of each wrong slice
    where one fits (a gradient accumulated once where it should be twice is 0.5 x)."""
    wrong = wrong.reshape(shape)
    g, a = g.reshape(shape), a.reshape(shape)
    for axis, n in enumerate(shape):
        if n < 2 or wrong.size // n < 2:  # slices of single entries are entries
            continue
        other = tuple(k for k in range(len(shape)) if k != axis)
        counts = wrong.sum(axis=other)
        bad = np.flatnonzero(counts)
        # A block can fail with no entry wrong on its own (its entries' small errors add up):
        # then there are no bad slices to name, and "rows []" would mislead.
        if not (0 < bad.size < n and np.all(counts[bad] == wrong.size // n)):
            continue
        good = np.setdiff1d(np.arange(n), bad)
        if len(shape) == 2:
            word = ("rows", "row") if axis == 0 else ("columns", "column")
            text = (f"{word[0]} {_short(bad)} of {gname} disagree; the other {word[0]} agree")

            def name(i, word=word):
                return f"{word[1]} {i}"
        else:
            text = (f"{gname}{_index(shape, axis, _span(bad))} disagree; "
                    f"{gname}{_index(shape, axis, _span(good))} "
                    f"{'agrees' if good.size == 1 else 'agree'}")

            def name(i, axis=axis):
                return f"{gname}{_index(shape, axis, str(i))}"
        factors = [_slice_factor(np.take(g, i, axis=axis), np.take(a, i, axis=axis))
                   for i in bad[:_LISTED]]
        if all(f is not None for f in factors):
            text += "; " + ", ".join(f"{name(int(i))} is {f:.4g} x"
                                     for i, f in zip(bad, factors, strict=False))
            text += " the numeric gradient" + (" and more" if bad.size > _LISTED else "")
        return text
    return None


def _slice_factor(g, a) -> float | None:
    """The nonzero constant c with g = c a on one slice, when it fits; else None."""
    g, a = g.ravel(), a.ravel()
    aa = float(np.dot(a, a))
    gnorm = np.linalg.norm(g)
    if aa == 0.0 or gnorm == 0.0:
        return None
    c = float(np.dot(g, a) / aa)
    return c if np.linalg.norm(g - c * a) <= _FIT_RESIDUAL * gnorm else None


def _span(values) -> str:
    """``"0:3"`` for a run of consecutive indices, ``"3"`` for one, else ``"[0, 2]"``."""
    values = [int(v) for v in values]
    if len(values) == 1:
        return str(values[0])
    if values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}:{values[-1] + 1}"
    return _short(values)


def _index(shape, axis, text) -> str:
    return "[" + ", ".join(text if k == axis else ":" for k in range(len(shape))) + "]"


def _short(values) -> str:
    values = [int(v) for v in values]
    if len(values) > _LISTED:
        return f"[{', '.join(map(str, values[:_LISTED]))}, ...] ({len(values)})"
    return str(values)
