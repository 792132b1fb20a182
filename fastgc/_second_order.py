"""Front ends for second derivatives: ``fastgc.check_hvp`` and ``fastgc.check_hessian``.

Both compare the user's Hessian with derivatives of the user's *gradient*: a product ``H v``
with ``(g(theta + h v) - g(theta - h v)) / 2h`` (or its extrapolations), a Hessian column with
the same along ``e_j``. The gradient is the vector-valued function here, as ``f`` is in
:func:`fastgc.check_jvp`; its noise is measured and the step chosen for it
(``fastgc._core.gradient_differences``). Directions are seeded Gaussians supported on one block
each, so one direction on block ``B`` checks every block ``H[A, B]`` of that column at once and
a failure is located as a block of the Hessian.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from fastgc._check import check
from fastgc._core.gradient_differences import (
    DEFAULT_THRESHOLDS,
    DESCRIPTIONS,
    KINK_SHRINK,
    METHODS,
    Gradient,
    step_text,
)
from fastgc._core.hessian_diagnosis import describe_transposed_product, diagnose_pair, explains
from fastgc._core.layout import Layout
from fastgc._core.plan import subset_plan
from fastgc._core.second_order_result import HessianResult, PairResult, PropertyResult
from fastgc._core.validate import (
    count_or_fraction,
    integer,
    one_of,
    positive_float,
    random_generator,
)
from fastgc._core.verdict import agree, relative_difference, tolerance

__all__ = ["check_hessian", "check_hvp"]

# check_hessian differences every column up to this many parameters unless told otherwise
# (2 gradient evaluations per column); beyond, random directions.
FULL_LIMIT = 2000
_LARGE_DIRECTIONS = 2
# The gradient check that ``cost=`` asks for: every coordinate up to this size, else random
# directions (what fastgc.check does fast on any size).
_GRADIENT_FULL_LIMIT = 2000
_GRADIENT_DIRECTIONS = 4


@dataclass
class _Probes:
    """The items of one column block: directions ``V`` (P x m) supported on ``block``, the
    numeric ``H V`` with its error, and the user's ``H V``."""

    block: int
    V: np.ndarray
    numeric: np.ndarray
    error: np.ndarray
    analytic: np.ndarray


# ---- shared validation -----------------------------------------------------------------------
def _common_iv(grad, second, second_name, params, cost, method, eps, threshold, seed, exclude):
    if not callable(grad):
        raise TypeError(f"grad must be callable, grad(params, *args) -> structure like params; "
                        f"got {type(grad).__name__}")
    if not callable(second):
        raise TypeError(f"{second_name} must be callable; got {type(second).__name__}")
    if cost is not None and not callable(cost):
        raise TypeError(f"cost must be callable or None, not {type(cost).__name__}")
    method = one_of(method, "method", METHODS)
    threshold = positive_float(DEFAULT_THRESHOLDS[method] if threshold is None else threshold,
                               "threshold")
    eps = positive_float(eps, "eps", none=True)
    rng = random_generator(seed)
    layout, theta = Layout.of(params, "params", exclude=exclude)
    return layout, theta, method, threshold, eps, rng


def _gradient_first(cost, grad, params, args, layout, exclude, seed):
    """The gradient's own check, when a cost is given (None otherwise)."""
    if cost is None:
        return None
    options = {"exclude": exclude, "seed": seed}
    if layout.size > _GRADIENT_FULL_LIMIT:
        options["directions"] = _GRADIENT_DIRECTIONS
    return check(cost, grad, params, *args, **options)


def _gradient_failed(gradient, kind, method, start) -> HessianResult:
    return HessianResult(
        passed=False, failed=("gradient",),
        message=("the gradient is wrong (see result.gradient): the Hessian was not checked, "
                 "since differences of a wrong gradient are not the Hessian of the cost"),
        difference=math.nan, threshold=math.nan, pairs={}, gradient=gradient, symmetry=None,
        linearity=None, numeric=None, ngev=0, nhvp=0, seconds=time.perf_counter() - start,
        kind=kind, mode="", method=method, description=DESCRIPTIONS[method], step="")


def _gaussian_probes(layout, k, rng) -> list[np.ndarray]:
    """``k`` seeded Gaussian directions per block, each supported on its block (P x k)."""
    out = []
    for b in layout.blocks:
        V = np.zeros((layout.size, k))
        V[b.offset:b.stop] = rng.standard_normal((b.size, k))
        out.append(V)
    return out


def _difference(gradient, V, method, eps, noise):
    numeric, error = np.empty_like(V), np.empty_like(V)
    for j in range(V.shape[1]):
        d = gradient.derivative(V[:, j], method, eps, noise)
        numeric[:, j], error[:, j] = d.numeric, d.error
    return numeric, error


# ---- the verdict per block pair --------------------------------------------------------------
def _judge(layout, probes: list[_Probes], threshold, matrix: bool) -> dict:
    pairs = {}
    for col in layout.blocks:
        for row in layout.blocks:
            pr = next((p for p in probes if layout.blocks[p.block] is col), None)
            if pr is None:
                continue
            rows = slice(row.offset, row.stop)
            g, a, e = pr.analytic[rows], pr.numeric[rows], pr.error[rows]
            gap, scale, noise = (float(np.linalg.norm(g - a)),
                                 float(np.linalg.norm(g) + np.linalg.norm(a)),
                                 float(np.linalg.norm(e)))
            passed = gap <= tolerance(scale, noise, threshold)
            diagnosis = "ok"
            if not passed:
                wrong = ~agree(g, a, e, threshold)
                diagnosis = diagnose_pair(row, col, g, a, e, wrong, matrix=matrix,
                                          directions=pr.V[rows] if row is col else None)
            pairs[row.name, col.name] = PairResult(
                row.name, col.name, int(g.size), gap / scale if scale > 0 else 0.0,
                bool(passed), float(np.max(np.abs(g - a))), noise, diagnosis)
    # keep the report in row-major order
    names = [b.name for b in layout.blocks]
    pairs = {k: pairs[k] for k in sorted(pairs, key=lambda k: (names.index(k[0]),
                                                               names.index(k[1])))}
    for (r, c), p in pairs.items():
        mirror = pairs.get((c, r))
        if (not p.passed and "is zero where" in p.diagnosis and mirror is not None
                and mirror.passed):
            p.diagnosis += (f"; H[{c}, {r}] agrees: only one triangle of H is filled? "
                            "(symmetrise)")
    return pairs


def _confirm_transposes(layout, pairs, probes, gradient, method, eps, noise):
    """A failing off-diagonal block of equal-sized blocks that no factor explains: does the
    product match ``H[A, B]^T v``? One more difference per direction tells (the true block's
    transpose is ``H[B, A]``, applied to ``v`` placed in ``A``)."""
    for p in probes:
        col = layout.blocks[p.block]
        for row in layout.blocks:
            pair = pairs[row.name, col.name]
            if (pair.passed or row is col or row.size != col.size
                    or "x the numeric" in pair.diagnosis or "zero" in pair.diagnosis):
                continue
            W = np.zeros_like(p.V)
            W[row.offset:row.stop] = p.V[col.offset:col.stop]
            numeric, _ = _difference(gradient, W, method, eps, noise)
            if explains(p.analytic[row.offset:row.stop], numeric[col.offset:col.stop],
                        p.numeric[row.offset:row.stop]):
                pair.diagnosis = describe_transposed_product(row, col)


def _probe_properties(apply, size, rng, threshold, linear: bool):
    """Symmetry ``<u, Hv> = <Hu, v>`` and, when ``linear``, linearity, ``H 0 = 0`` and
    determinism, from 2 (5) products with seeded Gaussian vectors."""
    u, v = rng.standard_normal(size), rng.standard_normal(size)
    Hu, Hv = apply(u), apply(v)
    s1, s2 = float(u @ Hv), float(Hu @ v)
    scale = float(np.linalg.norm(u) * np.linalg.norm(Hv) + np.linalg.norm(Hu) * np.linalg.norm(v))
    value = abs(s1 - s2) / scale if scale > 0 else 0.0
    passed = value <= threshold
    detail = f"<u, Hv> = {s1:.10g}, <Hu, v> = {s2:.10g}"
    if not passed:
        detail += ": the Hessian is not symmetric (a block and its mirror disagree)"
    symmetry = PropertyResult("symmetry", value, threshold, bool(passed), detail)
    if not linear:
        return symmetry, None
    a, b = rng.standard_normal(2)
    combined = a * Hu + b * Hv
    Hw = apply(a * u + b * v)
    zero = apply(np.zeros(size))
    again = apply(v)
    norm_v = max(float(np.linalg.norm(Hv)), np.finfo(np.float64).tiny)
    parts = {
        "H(a u + b v) vs a Hu + b Hv": relative_difference(Hw, combined),
        "|H 0| / |H v|": float(np.linalg.norm(zero)) / norm_v,
        "two calls with the same v": float(np.linalg.norm(again - Hv)) / norm_v,
    }
    worst = max(parts, key=parts.get)
    value = parts[worst]
    passed = value <= threshold
    detail = ", ".join(f"{k} {parts[k]:.1e}" for k in parts)
    if not passed:
        detail += {
            "H(a u + b v) vs a Hu + b Hv": ": not linear in v",
            "|H 0| / |H v|": ": not zero for a zero vector (a term that does not multiply v)",
            "two calls with the same v": ": nondeterministic",
        }[worst]
    return symmetry, PropertyResult("linearity", value, threshold, bool(passed), detail)


def _kink_notes(gradient) -> list[str]:
    if not gradient.kinks:
        return []
    n = gradient.kinks
    return [f"{n} direction{'s' if n > 1 else ''} crossed a kink of the gradient at the default "
            "step (its second difference did not shrink with the step, as a relu unit "
            f"changing sign does): differenced again at 1/{int(KINK_SHRINK)} of it"]


def _finish(kind, mode, method, eps, threshold, noise, gradient, probes, pairs, symmetry,
            linearity, numeric, ngev, nhvp, notes, start) -> HessianResult:
    g = np.concatenate([p.analytic.ravel() for p in probes])
    a = np.concatenate([p.numeric.ravel() for p in probes])
    failed = []
    if any(not p.passed for p in pairs.values()):
        failed.append("hessian")
    for prop in (symmetry, linearity):
        if prop is not None and not prop.passed:
            failed.append(prop.name)
    bad = [p for p in pairs.values() if not p.passed]
    if not failed:
        n = len(pairs)
        message = (f"{'the block' if n == 1 else f'all {n} blocks'} of H "
                   f"agree{'s' if n == 1 else ''} with differences of the gradient")
    elif bad:
        message = (f"{len(bad)} of {len(pairs)} blocks of H fail: "
                   + "; ".join(p.diagnosis for p in bad[:3])
                   + (f"; and {len(bad) - 3} more" if len(bad) > 3 else ""))
        message += "".join(f"; {prop} fails" for prop in failed[1:])
    else:
        message = (f"every block of H agrees with differences of the gradient, but "
                   f"{' and '.join(failed)} fail{'s' if len(failed) == 1 else ''}")
    if gradient is not None:
        message = "gradient ok; " + message
    return HessianResult(
        passed=not failed, failed=tuple(failed), message=message,
        difference=relative_difference(g, a), threshold=float(threshold), pairs=pairs,
        gradient=gradient, symmetry=symmetry, linearity=linearity, numeric=numeric,
        ngev=int(ngev), nhvp=int(nhvp), seconds=time.perf_counter() - start, kind=kind,
        mode=mode, method=method, description=DESCRIPTIONS[method],
        step=step_text(method, eps, noise), notes=notes)


# ---- check_hvp -------------------------------------------------------------------------------
def check_hvp(grad, hvp, params, *args, cost=None, directions=1, method="central", eps=None,
              threshold=None, seed=0, exclude=None):
    """Check a Hessian-vector product against differences of the gradient.

    Parameters
    ----------
    grad : callable
        ``grad(params, *args)`` returning the gradient in the structure of ``params`` (keys
        ``"W1"`` or ``"dW1"``, as :func:`fastgc.check` accepts).
    hvp : callable
        ``hvp(params, v, *args)`` returning ``H v`` in the structure of ``params``; ``v`` has
        that structure too.
    params : dict, list, tuple or ndarray, or any nesting of them
        The point. Never modified: ``grad`` and ``hvp`` get fresh float64 copies.
    *args
        Passed to ``grad``, ``hvp`` and ``cost``.
    cost : callable, optional
        ``cost(params, *args)``. When given, ``grad`` is checked first with
        :func:`fastgc.check` (all coordinates up to 2,000 parameters, else 4 random directions
        per block); if it fails the Hessian is not checked and ``result.failed`` is
        ``("gradient",)``.
    directions : int
        Seeded Gaussian directions per block (default 1). A direction on block ``B`` costs 2
        gradient evaluations (central) and checks every block ``H[A, B]`` of that column.
    method : {"central", "two-step", "richardson"}
        How the gradient is differenced along each direction: central differences (2
        gradient evaluations, threshold 1e-6), central differences at h and h/2 extrapolated
        (4, threshold 1e-9 plus the extrapolation's error), or ``scipy.differentiate``'s
        order-4 Richardson extrapolation (~12, threshold 1e-8 plus its error estimate).
    eps : float, optional
        Absolute step along each direction. Default: the relative step for the gradient's
        measured noise (6.1e-6 for float64), times ``max(1, rms theta)`` over the block.
    threshold : float, optional
        Relative threshold of the verdict (the method's default above); raised for a
        gradient measured to compute in lower precision.
    seed : int, SeedSequence or Generator
        Seed of the directions and of the symmetry and linearity probes.
    exclude : str, list of str or callable, optional
        Entries held fixed (see :func:`fastgc.check`): no direction moves them, ``v`` is zero
        there and their entries of ``grad`` and ``hvp`` are not compared.

    Returns
    -------
    HessianResult
        ``passed``, ``failed`` (which parts), ``message``, per-block results
        ``pairs[row, column]`` with diagnoses, ``symmetry``, ``linearity``, ``gradient``
        (with ``cost=``), and the evaluation counts ``ngev`` and ``nhvp``.

    Raises
    ------
    TypeError, ValueError
        Invalid arguments, or an ``hvp`` or ``grad`` returning the wrong structure or shape
        (naming the key), before any differencing.
    CostError
        A gradient that is not deterministic, or not finite at a perturbed point.

    Notes
    -----
    ``(H v)_i = d/dt g_i(theta + t v)`` at ``t = 0``, so one direction checks every entry of
    ``H v`` at once. With ``v`` supported on block ``B``, ``(H v)[A] = H[A, B] v[B]`` for every
    block ``A``: a wrong block shows as its own failing pair. Symmetry (``<u, Hv> = <Hu, v>``
    for Gaussian ``u, v``) and linearity (``H(a u + b v) = a Hu + b Hv``, ``H 0 = 0``, the same
    ``Hv`` twice) cost 5 more hvp calls and no gradient; they are reported separately.
    The gradient's noise is measured first (7 gradient evaluations).

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> from scipy.optimize import rosen, rosen_der, rosen_hess_prod
    >>> x = np.array([1.3, 0.7, 0.8, 1.9, 1.2])
    >>> result = fastgc.check_hvp(rosen_der, rosen_hess_prod, x, cost=rosen)
    >>> result.passed
    True
    >>> half = lambda x, v: 0.5 * rosen_hess_prod(x, v)
    >>> fastgc.check_hvp(rosen_der, half, x).pairs["params", "params"].diagnosis
    'H[params, params] is 0.5 x the numeric Hessian'
    """
    start = time.perf_counter()
    layout, theta, method, threshold, eps, rng = _common_iv(
        grad, hvp, "hvp", params, cost, method, eps, threshold, seed, exclude)
    k = integer(directions, "directions", "directions per block")
    gradient_result = _gradient_first(cost, grad, params, args, layout, exclude, seed)
    if gradient_result is not None and not gradient_result.passed:
        return _gradient_failed(gradient_result, "hvp", method, start)
    calls = [0]

    def apply(v_flat):
        calls[0] += 1
        v = layout.assemble([v_flat[b.offset:b.stop].reshape(b.shape).copy()
                             for b in layout.blocks], fill=0.0)
        value = hvp(layout.unflatten(theta.copy()), v, *args)
        return layout.flatten_gradient(value, "hvp(params, v)")[0]

    # the user's functions are called once before any differencing, so that a wrong
    # structure is reported at once
    g = Gradient(grad, layout, theta, args)
    probes_V = _gaussian_probes(layout, k, rng)
    analytic = [np.stack([apply(V[:, j]) for j in range(k)], axis=1) for V in probes_V]
    noise = g.measure_noise()
    threshold = noise.threshold(threshold)
    probes = []
    for b, (V, A) in enumerate(zip(probes_V, analytic, strict=True)):
        numeric, error = _difference(g, V, method, eps, noise)
        probes.append(_Probes(b, V, numeric, error, A))
    pairs = _judge(layout, probes, threshold, matrix=False)
    _confirm_transposes(layout, pairs, probes, g, method, eps, noise)
    symmetry, linearity = _probe_properties(apply, layout.size, rng, threshold, linear=True)
    notes = noise.notes(threshold) + _kink_notes(g)
    if layout.excluded:
        notes.append(f"excluded (held fixed): {', '.join(layout.excluded)}")
    return _finish("hvp", "directions", method, eps, threshold, noise, gradient_result,
                   probes, pairs, symmetry, linearity, None, g.nfev, calls[0], notes, start)


# ---- check_hessian ---------------------------------------------------------------------------
class _Matrix:
    """The user's Hessian over the flattened parameters, restricted to the checked ones."""

    def __init__(self, H, full_size: int, index: np.ndarray, layout):
        from scipy import sparse
        from scipy.sparse.linalg import LinearOperator

        self.products = 0
        self.layout, self.index, self.full_size = layout, index, full_size
        expected = (full_size, full_size)
        if isinstance(H, LinearOperator):
            self.kind = "operator"
            shape = tuple(H.shape)
        elif sparse.issparse(H):
            self.kind = "sparse"
            shape = tuple(H.shape)
        else:
            self.kind = "dense"
            if isinstance(H, (dict, str, bytes)) or H is None:
                raise TypeError(f"hess(params) must return a 2-D array, a scipy sparse matrix or "
                                f"a scipy.sparse.linalg.LinearOperator, not {type(H).__name__}")
            H = np.asarray(H)
            shape = H.shape
        if shape != expected:
            raise ValueError(
                f"hess(params) has shape {shape} but params flatten to {full_size} entries "
                f"(blocks {self._blocks_text(layout)}): hess must return a {expected} matrix "
                "over the flattened parameters")
        if self.kind == "operator":
            self.H = H
            return
        dtype = H.dtype
        if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
            raise TypeError(f"hess(params) must be a real matrix, not dtype {dtype}")
        if self.kind == "sparse":
            sub = sparse.csr_matrix(H, dtype=np.float64)[index][:, index]
            self.dense = None
            self.H = sub
            values = sub.data
        else:
            sub = np.asarray(H, dtype=np.float64)[np.ix_(index, index)]
            self.dense = sub
            self.H = sub
            values = sub
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            if self.kind == "sparse":
                coo = sub.tocoo()
                i, j = int(coo.row[bad[0, 0]]), int(coo.col[bad[0, 0]])
            else:
                i, j = (int(x) for x in bad[0])
            raise ValueError(f"hess(params) has a non-finite value at "
                             f"H[{layout.coordinate_name(i)}, {layout.coordinate_name(j)}]")

    @staticmethod
    def _blocks_text(layout) -> str:
        return ", ".join(f"{b.name} {b.shape}" for b in layout.blocks)

    def apply(self, V: np.ndarray) -> np.ndarray:
        """``H V`` for V (P x m) on the checked coordinates."""
        V2 = V if V.ndim == 2 else V[:, None]
        if self.kind == "operator":
            full = np.zeros((self.full_size, V2.shape[1]))
            full[self.index] = V2
            out = np.empty_like(V2)
            for j in range(V2.shape[1]):
                self.products += 1
                y = self._matvec(full[:, j])
                if y.size != self.full_size or not np.isrealobj(y):
                    raise ValueError(f"hess(params)'s matvec returned shape {y.shape}, not "
                                     f"({self.full_size},) real")
                out[:, j] = y.ravel()[self.index]
        else:
            self.products += V2.shape[1]
            out = np.asarray(self.H @ V2, dtype=np.float64)
        return out if V.ndim == 2 else out[:, 0]

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self.H.matvec(x))
        except ValueError:
            # scipy reshapes the product to (n,) and says only "cannot reshape": show what
            # the operator's own product returned, when that is the trouble
            raw = getattr(self.H, "_matvec", None)
            y = np.asarray(raw(x)) if raw is not None else None
            if y is not None and y.size != self.full_size:
                raise ValueError(f"hess(params)'s matvec returned shape {y.shape}, not "
                                 f"({self.full_size},)") from None
            raise

    def columns(self, cols: np.ndarray) -> np.ndarray:
        if self.kind == "dense":
            return self.dense[:, cols]
        if self.kind == "sparse":
            return self.H[:, cols].toarray()
        E = np.zeros((len(self.index), len(cols)))
        E[cols, np.arange(len(cols))] = 1.0
        return self.apply(E)

    def asymmetry(self, threshold) -> PropertyResult | None:
        """``||H - H^T|| / ||H||`` over the checked coordinates (a matrix given as one)."""
        if self.kind == "operator":
            return None
        D = self.H - self.H.T
        if self.kind == "sparse":
            D = D.tocoo()
            values, rows, cols = D.data, D.row, D.col
            norm_h = float(np.sqrt((self.H.multiply(self.H)).sum()))
        else:
            values = D.ravel()
            rows, cols = np.unravel_index(np.arange(D.size), D.shape)
            norm_h = float(np.linalg.norm(self.H))
        value = float(np.linalg.norm(values)) / norm_h if norm_h > 0 else 0.0
        passed = value <= threshold
        detail = "||H - H^T|| / ||H||"
        if values.size and not passed:
            k = int(np.argmax(np.abs(values)))
            i, j = int(rows[k]), int(cols[k])
            name = self.layout.coordinate_name
            Hij = self.H[i, j]
            Hji = self.H[j, i]
            detail += (f": H is not symmetric, most at H[{name(i)}, {name(j)}] = {Hij:.6g} vs "
                       f"H[{name(j)}, {name(i)}] = {Hji:.6g}")
        return PropertyResult("symmetry", value, threshold, bool(passed), detail)


def _hessian_index(params, layout, exclude):
    """The flat size of all of ``params`` and the positions of the checked entries in it."""
    if not layout.excluded:
        return layout.size, np.arange(layout.size), layout
    full, _ = Layout.of(params, "params")
    by_name = {b.name: b for b in full.blocks}
    index = np.concatenate([np.arange(by_name[b.name].offset, by_name[b.name].stop)
                            for b in layout.blocks])
    return full.size, index, full


def check_hessian(grad, hess, params, *args, cost=None, subset=None, directions=None,
                  method="central", eps=None, threshold=None, seed=0, exclude=None):
    """Check a Hessian matrix against differences of the gradient, block by block.

    Parameters
    ----------
    grad : callable
        ``grad(params, *args)`` returning the gradient in the structure of ``params``.
    hess : callable
        ``hess(params, *args)`` returning the Hessian over the flattened parameters (every
        block raveled in C order, blocks in structure order, excluded entries included): a
        dense ``(P, P)`` array, a scipy sparse matrix or a
        ``scipy.sparse.linalg.LinearOperator``.
    params : dict, list, tuple or ndarray, or any nesting of them
        The point. Never modified.
    *args
        Passed to ``grad``, ``hess`` and ``cost``.
    cost : callable, optional
        When given, ``grad`` is checked first (see :func:`fastgc.check_hvp`).
    subset : int or float, optional
        Difference only this many columns (an int) or this fraction of them (a float in
        (0, 1]), drawn per block as :func:`fastgc.check` draws coordinates.
    directions : int, optional
        Compare ``H v`` along this many seeded Gaussian directions per block instead of
        columns (2 gradient evaluations each, whatever the size).
    method, eps, threshold, seed, exclude : optional
        As in :func:`fastgc.check_hvp`.

    Returns
    -------
    HessianResult
        Per-block results ``pairs[row, column]``, the asymmetry ``||H - H^T|| / ||H||`` as
        ``symmetry`` (or ``<u, Hv>`` vs ``<Hu, v>`` for a LinearOperator, with
        ``linearity``), and in a full check the numeric Hessian as ``numeric``.

    Raises
    ------
    TypeError, ValueError
        Invalid arguments; ``hess`` returning the wrong type or shape (both sizes named), or a
        NaN/inf entry (named).

    Notes
    -----
    By default every column is differenced when the parameters have at most 2,000 entries
    (2 gradient evaluations per column with central differences: ``2P + 7`` in all), else 2
    random directions per block. Column ``j`` of the numeric Hessian is
    ``(g(theta + h e_j) - g(theta - h e_j)) / 2h``; the comparison is entry by entry, so a
    failing block is diagnosed as a matrix: a factor, a sign, a transposed block, one
    triangle only, a wrong diagonal, rows, columns or entries.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> from scipy.optimize import rosen, rosen_der, rosen_hess
    >>> x = np.array([1.3, 0.7, 0.8, 1.9, 1.2])
    >>> fastgc.check_hessian(rosen_der, rosen_hess, x, cost=rosen).passed
    True
    >>> upper = lambda x: np.triu(rosen_hess(x))
    >>> result = fastgc.check_hessian(rosen_der, upper, x)
    >>> result.failed
    ('hessian', 'symmetry')
    >>> result.pairs["params", "params"].diagnosis.split(":")[0]
    'H[params, params] holds only its upper triangle'
    """
    start = time.perf_counter()
    layout, theta, method, threshold, eps, rng = _common_iv(
        grad, hess, "hess", params, cost, method, eps, threshold, seed, exclude)
    if subset is not None and directions is not None:
        raise ValueError("subset and directions are two different modes: pass one of them")
    if directions is not None:
        directions = integer(directions, "directions", "directions per block")
    if subset is not None:
        subset = count_or_fraction(subset, "subset", "columns")
    gradient_result = _gradient_first(cost, grad, params, args, layout, exclude, seed)
    if gradient_result is not None and not gradient_result.passed:
        return _gradient_failed(gradient_result, "hessian", method, start)
    full_size, index, full_layout = _hessian_index(params, layout, exclude)
    calls = 1
    H = hess(full_layout.unflatten(Layout.of(params, "params")[1]) if layout.excluded
             else layout.unflatten(theta.copy()), *args)
    matrix = _Matrix(H, full_size, index, layout)
    g = Gradient(grad, layout, theta, args)
    notes = []
    if subset is None and directions is None and layout.size > FULL_LIMIT:
        directions = _LARGE_DIRECTIONS
        notes.append(f"{layout.size} parameters: checked along {directions} random "
                     f"directions per block (pass subset= or directions= to choose)")
    mode = "directions" if directions is not None else "subset" if subset is not None \
        else "full"
    if mode == "directions":
        Vs = _gaussian_probes(layout, directions, rng)
        analytic = [matrix.apply(V) for V in Vs]
    else:
        cols = (np.arange(layout.size) if mode == "full"
                else subset_plan(layout, subset, rng))
        Vs, analytic = [], []
        block_of = layout.block_index(cols)
        for b in range(len(layout.blocks)):
            mine = cols[block_of == b]
            if not mine.size:
                continue
            V = np.zeros((layout.size, mine.size))
            V[mine, np.arange(mine.size)] = 1.0
            Vs.append((b, V, mine))
            analytic.append(matrix.columns(mine))
    noise = g.measure_noise()
    threshold = noise.threshold(threshold)
    probes = []
    for j, A in enumerate(analytic):
        b, V = (j, Vs[j]) if mode == "directions" else Vs[j][:2]
        numeric, error = _difference(g, V, method, eps, noise)
        probes.append(_Probes(b, V, numeric, error, A))
    pairs = _judge(layout, probes, threshold, matrix=mode == "full")
    if mode == "directions":
        _confirm_transposes(layout, pairs, probes, g, method, eps, noise)
    numeric_h = None
    if mode != "directions":
        numeric_h = np.full((layout.size, layout.size), np.nan)
        for (_, _, mine), p in zip(Vs, probes, strict=True):
            numeric_h[:, mine] = p.numeric
    symmetry = matrix.asymmetry(threshold) if mode == "full" or matrix.kind == "sparse" else None
    linearity = None
    if symmetry is None:
        symmetry, linearity = _probe_properties(matrix.apply, layout.size, rng, threshold,
                                                linear=matrix.kind == "operator")
    notes = noise.notes(threshold) + _kink_notes(g) + notes
    if mode == "subset":
        notes.append(f"subset check: {sum(p.V.shape[1] for p in probes)} of {layout.size} "
                     "columns differenced (unchecked columns are NaN in result.numeric)")
    if layout.excluded:
        notes.append(f"excluded (held fixed): {', '.join(layout.excluded)}")
    return _finish("hessian", mode, method, eps, threshold, noise, gradient_result, probes,
                   pairs, symmetry, linearity, numeric_h, g.nfev, calls + matrix.products,
                   notes, start)

