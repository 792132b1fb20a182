"""Differences along directions: ``J(theta + step_j v_j) - J(theta)`` for sparse or dense ``v_j``.

A direction perturbs whole blocks, so the difference of every layer from the lowest perturbed
one on is dense; numpy's matrix products carry it, batched over the directions of a chunk
(columns ``j*m .. (j+1)*m - 1`` of each difference array belong to direction ``j``). The
elementwise steps reuse the stable scalar formulas of `fastgc._network.differences`.

One forward pass at ``theta``; then, per direction, only differences travel, from the lowest
perturbed layer ``l0`` on (``dA_{l0-1} = 0``)::

    dZ_l = W_l dA_{l-1} + dW_l (A_{l-1} + dA_{l-1}) + db_l
    dA_l = g_l(Z_l + dZ_l) - g_l(Z_l)          (stable forms, as for coordinates)

and the cost difference is the mean of the per-example loss differences at the output (stable
forms) plus ``(l2 / 2m) sum(dW (2 W + dW))``. Nothing subtracts two totals, so the error is a
few ulps of the *difference*, not of ``J``.

Noise
-----
The noise estimate is a first-order rounding model with a safety factor ``C = 4``::

    noise = C eps / m * ( sum_s |dc_s|
             + sum_{c, s} (1 + sy_s a_cs + 2 |y_cs| + |a_cs - y_cs| + |dZ_L[c, s]|)
                          |dZ_L[c, s]|
             + sqrt( sum_{l >= l0} sum_{i, s} delta_l[i, s]^2 e_l[i, s]^2 ) )
          + C eps sqrt(log2(q) + 1) (l2 / 2m) ||dW o (2 W + dW)||_2

    e_l[i, s]^2 = (n_{l-1} + 2) (||W_l[i, :]||^2 ||dA_{l-1}[:, s]||^2
                                 + ||dW_l[i, :]||^2 ||A_{l-1}[:, s] + dA_{l-1}[:, s]||^2)
                  + db_l[i]^2

with ``dc_s`` the per-example loss differences (their rounding, and their sum's, is the
first term), ``a`` the output activation and ``sy_s = sum_c y_cs`` (rounding inside the
output formulas: second term), ``delta_l[i, s] = d c_s / d Z_l[i, s]`` (per-example backprop
at ``theta``) and ``q`` the number of perturbed weights. ``eps e_l[i, s]`` is the rounding
of one ``dZ_l`` entry, a length-``n_{l-1}`` dot product, in the probabilistic model of
Higham & Mary (``sqrt(n) eps`` times the dot product of absolute values, bounded here by
Cauchy-Schwarz); it also covers the activation differences feeding it. These roundings
reach the cost through ``delta_l`` and, being independent, add in quadrature, as do the
roundings of the pairwise-summed L2 difference (last term). It is an estimate, not a
worst-case bound (that would be linear in the sizes and hopelessly loose). For a block of
10^6 weights and small steps it is about 1e-12 of the difference, 5 to 10 times the error
measured against extended precision, and thousands of times below the ``8 eps |J|`` of
a subtraction.
"""

import numba
import numpy as np
from numba import prange

from fastgc._engines.jit import jit
from fastgc._network.activations import code
from fastgc._network.differences import LOSS_CODES, act_diff, head_vec
from fastgc._network.forward import SERIAL_WORK

# Read at each call, so a test can force the threaded kernels.
_SERIAL_WORK = SERIAL_WORK

_EPS = np.finfo(np.float64).eps
# Safety factor of the noise estimate over its rounding model (see the module docstring).
_NOISE_FACTOR = 4.0


@jit
def _act_diff_range(code, z, a, d, m, out, q0, q1):
    """out[i, c] = g(z[i, s] + d[i, c]) - g(z[i, s]), s = c mod m, for flat q0 <= q < q1."""
    km = d.shape[1]
    # (i, c, s) advanced by counters: two integer divisions per entry cost more than relu
    i = q0 // km
    c = q0 - i * km
    s = c % m
    for _ in range(q0, q1):
        out[i, c] = act_diff(code, z[i, s], a[i, s], d[i, c])
        c += 1
        s += 1
        if s == m:
            s = 0
        if c == km:
            i, c, s = i + 1, 0, 0


@jit(parallel=True)
def _act_diff_par(code, z, a, d, m, out, nblocks):
    """`_act_diff_range` over all entries, in parallel."""
    total = d.shape[0] * d.shape[1]
    for b in prange(nblocks):
        _act_diff_range(code, z, a, d, m, out, b * total // nblocks, (b + 1) * total // nblocks)


@jit
def _head_range(loss, act, zt, at, yt, sy, dt, m, out, c0, c1):
    """out[c] = c_s(z_s + dt[c]) - c_s(z_s), s = c mod m: per-example loss differences."""
    nL = zt.shape[1]
    for c in range(c0, c1):
        s = c % m
        out[c] = head_vec(loss, act, zt[s], at[s], yt[s], dt[c], nL, sy[s])


@jit(parallel=True)
def _head_par(loss, act, zt, at, yt, sy, dt, m, out, nblocks):
    """`_head_range` over all rows of ``dt``, in parallel."""
    n = dt.shape[0]
    for b in prange(nblocks):
        _head_range(loss, act, zt, at, yt, sy, dt, m, out, b * n // nblocks, (b + 1) * n // nblocks)


def _act_diff_cols(code, Z, A, D, m):
    out = np.empty_like(D)
    if D.size < _SERIAL_WORK * 4:
        _act_diff_range(code, Z, A, D, m, out, 0, D.size)
    else:
        _act_diff_par(code, Z, A, D, m, out, 4 * numba.get_num_threads())
    return out


def _head_cols(loss, act, ZT, AT, YT, sy, DT, m):
    out = np.empty(DT.shape[0])
    if DT.size < _SERIAL_WORK * 4:
        _head_range(loss, act, ZT, AT, YT, sy, DT, m, out, 0, DT.shape[0])
    else:
        _head_par(loss, act, ZT, AT, YT, sy, DT, m, out, 4 * numba.get_num_threads())
    return out



@jit
def _span_start(indices):
    """``indices[0]`` when ``indices[j] == indices[0] + j`` for every ``j`` (a contiguous span,
    as the plans' whole-block directions are), else -1."""
    first = indices[0]
    for j in range(1, indices.size):
        if indices[j] != first + j:
            return -1
    return first


@jit
def _span_steps(theta, lo, values, v0, step, local0, ncols, delta, rows):
    """delta[q] = (theta[lo + q] + step values[v0 + q]) - theta[lo + q], the steps a perturbed
    copy of theta applies, in one pass; returns how many are nonzero. For ``ncols > 0`` (a
    weight block, ``delta[q]`` at its local index ``local0 + q``) also the row sums of squares,
    rows[r] = sum delta[q]^2 over the row, added in index order from 0 as `np.bincount` adds."""
    nnz = 0
    r, c = 0, 0
    acc = 0.0
    if ncols > 0:
        r = local0 // ncols
        c = local0 - r * ncols
    for q in range(delta.size):
        t = theta[lo + q]
        d = (t + step * values[v0 + q]) - t
        delta[q] = d
        if d != 0.0:
            nnz += 1
        if ncols > 0:
            acc += d * d
            c += 1
            if c == ncols or q == delta.size - 1:
                rows[r] = acc
                r, c, acc = r + 1, 0, 0.0
    return nnz


def validate_directions(directions, step, P):
    """Validate directions and steps for a network of ``P`` parameters.

    Returns
    -------
    pairs : list of (indices, float64 ndarray)
        ``indices`` an int64 ndarray, or a ``slice(a, b)`` where they were the contiguous span
        ``a, a + 1, ..., b - 1`` (the plans' whole-block directions): no repeat test, no
        gathers, no block search for those.
    step : numpy.ndarray, float64, shape (n,)
    """
    try:
        n = len(directions)
    except TypeError:
        raise TypeError("directions must be a sequence of (indices, values) pairs") from None
    step = np.ascontiguousarray(step, dtype=np.float64)
    if step.shape != (n,):
        raise ValueError(f"step must have shape ({n},), one per direction, got {step.shape}")
    if not np.all(np.isfinite(step)):
        raise ValueError("step entries must be finite")
    pairs = []
    slot = None  # repeat test in O(size), no sort; allocated on the first scattered direction
    spans = {}  # id of an index array -> (the array, its span start or -1)
    for j, pair in enumerate(directions):
        try:
            indices, values = pair
        except (TypeError, ValueError):
            raise TypeError(f"directions[{j}] must be an (indices, values) pair") from None
        indices = np.asarray(indices)
        if indices.size and indices.dtype.kind not in "iu":
            raise TypeError(f"directions[{j}]: indices must be integers, got {indices.dtype}")
        indices = indices.astype(np.int64, copy=False)
        values = np.asarray(values, dtype=np.float64)
        if indices.ndim != 1 or values.shape != indices.shape:
            raise ValueError(
                f"directions[{j}]: indices and values must be 1-d of equal length, got "
                f"{indices.shape} and {values.shape}"
            )
        # contiguous copies only where needed: one compiled specialisation of the kernels
        indices, values = np.ascontiguousarray(indices), np.ascontiguousarray(values)
        # the same index array often comes back (a direction at +-h, h/2): tested once. The
        # cache holds the array itself, so no id is reused while it lives.
        hit = spans.get(id(indices))
        if hit is None or hit[0] is not indices:
            hit = spans[id(indices)] = (indices, _span_start(indices) if indices.size > 1 else -1)
        first = hit[1]
        if first >= 0:
            if first + indices.size > P:
                raise ValueError(f"directions[{j}]: indices must lie in [0, {P})")
            indices = slice(int(first), int(first) + indices.size)
        else:
            if indices.size and (indices.min() < 0 or indices.max() >= P):
                raise ValueError(f"directions[{j}]: indices must lie in [0, {P})")
            if slot is None:
                slot = np.empty(P, dtype=np.int64)
            positions = np.arange(indices.size)
            slot[indices] = positions  # a repeated index keeps only its last position
            if not np.array_equal(slot[indices], positions):
                raise ValueError(f"directions[{j}]: indices must not repeat")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"directions[{j}]: values must be finite")
        pairs.append((indices, values))
    return pairs, step


class _Piece:
    """A direction's applied steps in one parameter block: ``delta`` at the block's local
    indices ``local``, or at ``lo, lo + 1, ...`` when ``local`` is None (a span whose steps are
    all nonzero; the same entries, in the same order, as the index array would hold)."""

    __slots__ = ("local", "lo", "delta", "rows")

    def __init__(self, local, delta, lo=0, rows=None):
        self.local, self.delta, self.lo, self.rows = local, delta, lo, rows

    def indices(self):
        """The local indices as an array."""
        if self.local is None:
            return np.arange(self.lo, self.lo + self.delta.size)
        return self.local

    def entries(self, flat):
        """``flat[local]``, a view where the piece is a span."""
        if self.local is None:
            return flat[self.lo : self.lo + self.delta.size]
        return flat[self.local]


class _Direction:
    """One direction's applied perturbation, split by parameter block."""

    def __init__(self, theta, indices, values, step, starts, shapes):
        self.pieces = {}  # block number -> _Piece
        if isinstance(indices, slice):
            self._span(theta, indices, values, step, starts, shapes)
        else:
            moved = theta[indices] + step * values  # the perturbed vector, as an engine builds it
            delta = moved - theta[indices]
            keep = delta != 0.0
            indices, delta = indices[keep], delta[keep]
            block = np.searchsorted(starts, indices, side="right") - 1
            for b in np.flatnonzero(np.bincount(block, minlength=starts.size - 1)):
                sel = block == b
                self.pieces[int(b)] = _Piece(indices[sel] - starts[b], delta[sel])
        self.first_layer = min(self.pieces) // 2 + 1 if self.pieces else 0

    def _span(self, theta, span, values, step, starts, shapes):
        """The pieces of the span ``span.start <= index < span.stop``: one pass over theta and
        values per block, no index arrays."""
        b0 = int(np.searchsorted(starts, span.start, side="right")) - 1
        for b in range(b0, starts.size - 1):
            lo, hi = max(span.start, int(starts[b])), min(span.stop, int(starts[b + 1]))
            if lo >= hi:
                break
            delta = np.empty(hi - lo)
            local0 = lo - int(starts[b])
            # a weight block: its row sums of squared steps too, for the noise
            ncols = shapes[b][1] if b % 2 == 0 else 0
            rows = np.zeros(shapes[b][0]) if ncols else None
            nnz = _span_steps(theta, lo, values, lo - span.start, step, local0, ncols, delta,
                              delta if rows is None else rows)  # fmt: skip
            if nnz == 0:
                continue
            if nnz < delta.size:  # vanished steps are dropped, as for an index array
                keep = delta != 0.0
                self.pieces[b] = _Piece(np.flatnonzero(keep) + local0, delta[keep])
                continue
            self.pieces[b] = _Piece(None, delta, local0, rows)


def _weight_step(piece, shape):
    """dW as a dense matrix, or as a sparse one when it has few entries."""
    delta = piece.delta
    size = shape[0] * shape[1]
    if piece.local is None and delta.size == size:
        return delta.reshape(shape)  # the whole block (the piece owns delta)
    if delta.size * 8 >= size:
        dW = np.zeros(size)
        if piece.local is None:
            dW[piece.lo : piece.lo + delta.size] = delta
        else:
            dW[piece.local] = delta
        return dW.reshape(shape)
    from scipy.sparse import csr_matrix

    local = piece.indices()
    return csr_matrix((delta, (local // shape[1], local % shape[1])), shape=shape)


def _row_squares(piece, shape):
    if piece.rows is not None:
        return piece.rows
    local, delta = piece.indices(), piece.delta
    return np.bincount(local // shape[1], weights=delta * delta, minlength=shape[0])


class DirectionDeltas:
    """The direction engine of one point: per-example backprop and noise weights, built once.

    Parameters
    ----------
    net : fastgc._network.mlp.MLP
    forward : fastgc._network.forward.Forward
    Y : numpy.ndarray, float64, shape (nL, m)
    budget : int
        Bytes for the difference arrays of one batch of directions, about
        ``6 * m * max(n_l) * 8`` per direction; at least one direction per batch.
    """

    def __init__(self, net, forward, Y, budget):
        params, Zs, As = forward.params, forward.Zs, forward.As
        L = net.n_layers
        self._net, self._params, self._Zs, self._As = net, params, Zs, As
        self._starts = forward.packed.starts
        self._theta = forward.packed.theta
        self._shapes = [shape for _, shape in net.param_shapes()]
        self._deltas = [d * d for d in net.example_deltas(params, Zs, As, Y)]  # squared
        self._acts = [code(a) for a in net.activations]
        self._loss = LOSS_CODES[net.loss]
        self._ZT = np.ascontiguousarray(Zs[-1].T)
        self._AT = np.ascontiguousarray(As[-1].T)
        self._YT = np.ascontiguousarray(Y.T)
        self._sy = np.ascontiguousarray(Y.sum(axis=0))
        # Output-formula weights of the noise model, per (unit, example).
        self._head_w = 1.0 + self._sy * As[-1] + 2.0 * np.abs(Y) + np.abs(As[-1] - Y)
        # U_l[s] = sum_i delta_l[i, s]^2 ||W_l[i, :]||^2.
        self._U = [None] + [np.sum(params[f"W{li}"] ** 2, axis=1) @ self._deltas[li - 1]
                            for li in range(1, L + 1)]  # fmt: skip
        per_direction = 6 * forward.packed.m * max(net.layer_dims) * 8
        self._kmax = max(1, budget // per_direction)

    def deltas(self, pairs, step):
        """Differences and their noise for validated ``pairs`` and ``step``
        (`validate_directions`): two float64 arrays of shape ``(n,)``."""
        n = len(pairs)
        out = np.zeros(n)
        noise = np.zeros(n)
        if n == 0:
            return out, noise
        dirs = [_Direction(self._theta, idx, val, step[j], self._starts, self._shapes)
                for j, (idx, val) in enumerate(pairs)]  # fmt: skip
        order = sorted((d.first_layer, j) for j, d in enumerate(dirs) if d.first_layer > 0)
        groups = {}
        for l0, j in order:
            groups.setdefault(l0, []).append(j)
        kmax = self._kmax
        for l0, members in groups.items():
            for c0 in range(0, len(members), kmax):
                self._chunk(dirs, members[c0 : c0 + kmax], l0, out, noise)
        return out, noise

    def _chunk(self, dirs, chunk, l0, out, noise):
        """Differences of the directions ``chunk`` (all with lowest perturbed layer ``l0``)."""
        net, params, Zs, As = self._net, self._params, self._Zs, self._As
        deltas, U, head_w, acts, loss = self._deltas, self._U, self._head_w, self._acts, self._loss
        ZT, AT, YT, sy = self._ZT, self._AT, self._YT, self._sy
        L = net.n_layers
        m = ZT.shape[0]
        k = len(chunk)
        l2 = net.l2
        noise_ss = np.zeros(k)  # sum of squares of the propagated-rounding terms
        l2_diff = np.zeros(k)
        l2_noise = np.zeros(k)
        dA = None  # dA_{l-1}, shape (n_{l-1}, k m); None while it is zero
        for li in range(l0, L + 1):
            W = params[f"W{li}"]
            shape = W.shape
            A_prev = As[li - 1]
            delta = deltas[li - 1]
            width = shape[1] + 2.0
            if dA is None:
                dZ = np.zeros((shape[0], k * m))
            else:
                # One product per direction, always of shape (n_l, m): a direction's bits must
                # not depend on which other directions share its batch (BLAS rounds a wider
                # product's columns differently), so results are the same however the request
                # is chunked.
                dZ = np.empty((shape[0], k * m))
                for jj in range(k):
                    cols = slice(jj * m, (jj + 1) * m)
                    dZ[:, cols] = W @ np.ascontiguousarray(dA[:, cols])
                col_ss = np.sum(dA * dA, axis=0).reshape(k, m)
                noise_ss += width * (col_ss * U[li]).sum(axis=1)
            for jj, j in enumerate(chunk):
                pieces = dirs[j].pieces
                cols = slice(jj * m, (jj + 1) * m)
                wpiece = pieces.get(2 * li - 2)
                if wpiece is not None:
                    base = A_prev if dA is None else A_prev + dA[:, cols]
                    dZ[:, cols] += _weight_step(wpiece, shape) @ base
                    R = _row_squares(wpiece, shape) @ delta
                    noise_ss[jj] += width * (R @ np.sum(base * base, axis=0))
                    if l2 != 0.0:
                        dw = wpiece.delta
                        terms = dw * (2.0 * wpiece.entries(W.ravel()) + dw)
                        l2_diff[jj] += np.sum(terms)
                        l2_noise[jj] += np.sqrt(np.log2(terms.size) + 1.0) * np.linalg.norm(terms)
                bpiece = pieces.get(2 * li - 1)
                if bpiece is not None:
                    local, db = bpiece.indices(), bpiece.delta
                    dZ[local, cols] += db[:, None]
                    noise_ss[jj] += np.sum((db * db) @ delta[local])
            if li < L:
                dA = _act_diff_cols(acts[li - 1], Zs[li - 1], As[li], dZ, m)
        DT = np.ascontiguousarray(dZ.T)  # (k m, nL)
        dc = _head_cols(loss, acts[-1], ZT, AT, YT, sy, DT, m).reshape(k, m)
        aD = np.abs(DT).reshape(k, m, -1)
        # per-direction reductions (no BLAS): independent of the batch, like the products above
        head = (aD * head_w.T).sum(axis=(1, 2)) + (aD * aD).sum(axis=(1, 2))
        loss_diff = dc.sum(axis=1) / m
        scale = l2 / (2.0 * m)
        idx = np.asarray(chunk)
        out[idx] = loss_diff + scale * l2_diff
        noise[idx] = (
            _NOISE_FACTOR
            * _EPS
            * ((np.abs(dc).sum(axis=1) + np.sqrt(noise_ss) + head) / m + scale * l2_noise)
        )
