"""Diagnosis of a failing Hessian block: what kind of wrong ``H[A, B]`` is.

The patterns a hand-written Hessian typically leaves: a constant factor (a missing 1/2 on an
off-diagonal block, a sign), a block used transposed, only the upper triangle filled, a dropped
multiple of the identity (a regulariser's ``lambda I``), a wrong diagonal, a few wrong rows or
columns or entries. The first rule that explains the block wins, as in ``fastgc._core.diagnosis``
(whose fit tolerance is shared).

Two kinds of evidence reach here: the block itself (``matrix=True``: every column of ``B``
differenced, an ``nA x nB`` matrix), or products ``(H v)[A]`` for directions ``v`` on ``B``
(an ``nA x m`` matrix, one column per direction).
"""

from __future__ import annotations

import numpy as np

from fastgc._core.diagnosis import _FIT_RESIDUAL

_LISTED = 5


def _fit(g: np.ndarray, a: np.ndarray) -> float | None:
    """The constant c with g = c a, when it explains g - a; else None."""
    g, a = g.ravel(), a.ravel()
    aa = float(np.dot(a, a))
    gnorm = float(np.linalg.norm(g))
    if aa == 0.0 or gnorm == 0.0:
        return None
    c = float(np.dot(g, a) / aa)
    residual = float(np.linalg.norm(g - c * a))
    if residual > _FIT_RESIDUAL * gnorm or residual > 0.01 * np.linalg.norm(g - a):
        return None
    return c


def _close(g, a) -> bool:
    """``g`` and ``a`` agree to the fit tolerance (relative to the larger)."""
    scale = max(float(np.linalg.norm(g)), float(np.linalg.norm(a)))
    return float(np.linalg.norm(g - a)) <= _FIT_RESIDUAL * scale


def explains(g, candidate, a) -> bool:
    """``candidate`` matches ``g`` to the fit tolerance and accounts for (almost all of) its
    discrepancy from the numeric ``a``."""
    gap = float(np.linalg.norm(g - candidate))
    return gap <= _FIT_RESIDUAL * float(np.linalg.norm(g)) and gap <= 0.01 * float(
        np.linalg.norm(g - a))


def _factor_text(name: str, c: float) -> str:
    if abs(c + 1.0) < 1e-3:
        return f"{name} has the wrong sign (-1 x the numeric Hessian)"
    if abs(c - 1.0) < 1e-2:
        sign = "+" if c > 1 else "-"
        return f"{name} is (1 {sign} {abs(c - 1):.2g}) x the numeric Hessian"
    return f"{name} is {c:.4g} x the numeric Hessian"


def _names(block, indices) -> str:
    indices = [int(i) for i in indices]
    shown = ", ".join(block.entry_name(i) for i in indices[:_LISTED])
    return shown + (f" and {len(indices) - _LISTED} more" if len(indices) > _LISTED else "")


def diagnose_pair(row, column, analytic: np.ndarray, numeric: np.ndarray, error: np.ndarray,
                  wrong: np.ndarray, *, matrix: bool, directions: np.ndarray | None = None) -> str:
    """A one-line description of how ``H[row, column]`` departs from the numeric Hessian.

    Parameters
    ----------
    row, column : Block
        The row and column blocks (names, shapes).
    analytic, numeric, error : ndarray, shape (row.size, m)
        The compared items: the block itself (``matrix``) or one column per direction.
    wrong : ndarray of bool, shape (row.size, m)
        Items beyond tolerance on their own.
    matrix : bool
        Whether the items are the whole block ``H[row, column]`` (every column differenced).
    directions : ndarray, shape (row.size, m), optional
        The directions' entries on the row block (for a diagonal block, a dropped ``c I``).
    """
    name = f"H[{row.name}, {column.name}]"
    g, a = analytic, numeric
    gnorm, anorm = float(np.linalg.norm(g)), float(np.linalg.norm(a))
    if anorm <= 10 * float(np.linalg.norm(error)):
        return f"{name} is nonzero where the numeric Hessian is zero"
    if gnorm == 0.0:
        return f"{name} is zero where the numeric Hessian is not"
    if g.size >= 2:
        c = _fit(g, a)
        if c is not None:
            return _factor_text(name, c)
    diagonal = row.offset == column.offset
    if matrix and diagonal and row.size > 1:
        strict_lower = np.tril(np.ones(g.shape, dtype=bool), -1)
        strict_upper = strict_lower.T
        for kept, empty, word in ((~strict_lower, strict_lower, "upper"),
                                  (~strict_upper, strict_upper, "lower")):
            hollow = np.all(g[empty] == 0) and np.linalg.norm(a[empty]) > 0
            if hollow and _close(g[kept], a[kept]):
                return (f"{name} holds only its {word} triangle: the entries "
                        f"{'below' if word == 'upper' else 'above'} the diagonal are zero "
                        "where the numeric Hessian's are not (symmetrise: H + H.T - diag(H))")
    # (a diagonal block of the numeric Hessian is symmetric: its transpose explains nothing)
    if (matrix and not diagonal and g.shape[0] == g.shape[1] > 1
            and explains(g, a.T, a)):
        return f"{name} is transposed (it matches the numeric block's transpose)"
    if not matrix and len(row.shape) == 2 and row.shape[0] == row.shape[1] > 1:
        flipped = np.stack([col.reshape(row.shape).T.ravel() for col in a.T], axis=1)
        if explains(g, flipped, a):
            return (f"(H v)[{row.name}] is transposed: it matches the numeric product with "
                    f"{row.name}'s axes swapped")
    if diagonal:
        shift = _identity_shift(g - a, matrix, directions)
        if shift is not None:
            return (f"{name} is off by {shift:.4g} x I (a dropped or extra multiple of the "
                    "identity: a regulariser's term?)")
    if matrix and diagonal and row.size > 1:
        off = ~np.eye(len(g), dtype=bool)
        if np.any(wrong) and not np.any(wrong[off]):
            count = int(np.count_nonzero(np.diag(wrong)))
            return (f"the diagonal of {name} disagrees ({count} of {len(g)} entries, at "
                    f"{_names(row, np.flatnonzero(np.diag(wrong)))}); its off-diagonal "
                    "entries agree: a dropped or wrong diagonal term")
    n_wrong = int(np.count_nonzero(wrong))
    if n_wrong:
        rows = np.flatnonzero(wrong.any(axis=1))
        cols = np.flatnonzero(wrong.any(axis=0))
        if matrix and n_wrong < _LISTED + 1 and n_wrong < g.size:
            pairs = np.argwhere(wrong)
            listed = ", ".join(f"H[{row.entry_name(int(i))}, {column.entry_name(int(j))}]"
                               for i, j in pairs)
            return f"{n_wrong} of {g.size} entries of {name} disagree: {listed}"
        if rows.size < g.shape[0]:
            return (f"the rows of {name} for {_names(row, rows)} disagree; its other "
                    "rows agree")
        if matrix and cols.size < g.shape[1]:
            return (f"the columns of {name} for {_names(column, cols)} disagree; its "
                    "other columns agree")
    if n_wrong == 0:
        return (f"{name} is off by small amounts throughout: no entry fails on its own, but "
                "together they exceed the threshold")
    return f"{name} disagrees with the numeric Hessian throughout (no simple pattern)"


def _identity_shift(residual: np.ndarray, matrix: bool, directions) -> float | None:
    """c when ``analytic - numeric`` is ``c I`` (matrix) or ``c v`` for every direction."""
    if matrix:
        d = np.diag(residual)
        if residual.shape[0] < 2 or np.linalg.norm(residual - np.diag(d)) > (
                _FIT_RESIDUAL * np.linalg.norm(residual)):
            return None
        c = float(np.mean(d))
        return c if np.linalg.norm(d - c) <= _FIT_RESIDUAL * np.linalg.norm(d) else None
    if directions is None or residual.shape[0] < 2:
        return None
    return _fit(residual, directions)


def describe_transposed_product(row, column) -> str:
    """The diagnosis once ``(H v)[row]`` is confirmed to be ``H[row, column]^T v``."""
    return (f"H[{row.name}, {column.name}] is transposed: (H v)[{row.name}] matches "
            f"H[{row.name}, {column.name}]^T v (the block applied as its own transpose)")
