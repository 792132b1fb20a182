"""Coordinate perturbations: ``J(theta + h e_j) - J(theta)`` from one forward pass.

For a perturbation ``theta + h e_j`` of one weight ``W_l[i, k]`` (or bias ``b_l[i]``), the layers
before ``l`` do not change and layer ``l`` changes in one row only::

    dZ_l[i, s]  = h A_{l-1}[k, s]            (h for a bias)
    dA_l[i, s]  = g_l(Z_l[i, s] + dZ_l[i, s]) - g_l(Z_l[i, s])
    dZ_{l+1}    = W_{l+1}[:, i] dA_l[i, :]   (rank one)
    dZ_{t+1}    = W_{t+1} dA_t,   dA_t = g_t(Z_t + dZ_t) - g_t(Z_t)     (t > l)

so one forward pass at ``theta`` serves every perturbation, and only the *differences* travel
through the later layers. The cost difference is summed from per-example differences
``c_s(theta + h e_j) - c_s(theta)``, each evaluated with a formula that does not subtract two
nearly equal costs (`fastgc._network.differences`), so the result is the true finite
difference with far less rounding error than ``J(theta + h e_j) - J(theta)`` computed from two
totals.

Work is skipped where it is exactly zero: examples whose changed quantity is 0 (a relu unit
inactive on both sides, an input entry equal to 0) and units with ``dA == 0``.

Piecewise-linear shortcut (exact, not a derivative): when every layer strictly between ``l`` and
the output is relu, leaky relu or identity, and no pre-activation of those layers crosses 0 for
example ``s``, then ``dZ_L[:, s] = dA_l[i, s] V[i, s]`` with
``V[i, s] = W_L D_{L-1} W_{L-1} ... D_{l+1} W_{l+1}[:, i]`` (``D_t`` the diagonal of slopes at
``Z_t[:, s]``). This is an identity of the piecewise-linear map, so the difference stays the
exact finite difference. ``V`` and a margin ``T[i, s]`` (the largest ``|dA_l[i, s]|`` for which no
unit in between can cross 0) are the *tables*; an example with ``|dA_l[i, s]| >= T[i, s]`` takes
the general path instead.

Smooth shortcut (exact to rounding): when tanh or sigmoid layers lie between ``l`` and the
output, ``dZ_L[:, s]`` is an analytic function of the scalar ``dA_l[i, s]``; its Taylor
coefficients of degrees 1..5, ``V_q[i, s]``, are built by pushing truncated series through the
layers (linear maps per coefficient, activations by composing their own series at ``Z_t``:
``tanh^(k) = sech^2 P_k(tanh)``, sigmoid from tanh at ``z/2``). The series is used while no
tanh/sigmoid pre-activation in between moves by more than ``1e-4`` (bounded through absolute
values of the chain), so the first omitted degree is below about ``1e-20`` of the first: far
under the rounding of the general path. Kinked units in such chains get half their linear
margin. Larger changes take the general path, where ``g'(Z)`` cached from the forward pass and
Taylor polynomials of ``tanh(d)`` / ``expm1(d)`` for ``|d| < 1e-3`` replace the ``cosh``/``exp``
calls of the stable difference formulas.

The tables depend only on the point, not on the step: `CoordinateTables` builds them once and
keeps them for every later request when they fit in the memory budget; otherwise each request
builds the tables of just the units it perturbs, a budget's worth at a time.
"""

from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from fastgc._engines.jit import choose, jit
from fastgc._network.activations import IDENTITY, TABLE
from fastgc._network.differences import (
    act_diff_g,
    head_one,
    head_vec,
    is_kinked,
    slope,
    smooth_coeffs,
)
from fastgc._network.forward import SERIAL_WORK, decode

# The margin T is shrunk by this factor so that rounding in V (a chain of dot products)
# cannot let a crossing slip through; a crossing "missed" by less than that rounding changes
# the result only at the rounding level anyway.
_MARGIN_SAFETY = 1.0 - 1e-10

# Taylor shortcut for chains with tanh/sigmoid layers: degrees 1.._TAYLOR_K of dZ_L in dA_l,
# used while every smooth pre-activation in between moves by at most _TAYLOR_DELTA (bounded
# through absolute values). The first omitted degree is then below ~_TAYLOR_DELTA^K = 1e-20
# of the first, far under rounding. Kinked units inside such chains get half their linear
# margin: the nonlinear part of their change is a relative O(_TAYLOR_DELTA) at most.
# Read at each table build (not at import), so a test can switch the series off.
_TAYLOR_K = 5
_TAYLOR_DELTA = 1e-4

# Read at each call, so a test can force the threaded kernels.
_SERIAL_WORK = SERIAL_WORK
# About the multiply-adds of one (perturbation, example) pair of the coordinate kernel, the
# unit of _SERIAL_WORK: a table row costs its chain's multiply-adds, far more than a pair (the
# old count of (unit, example) pairs built the tables of 784-256-128-10 on one thread).
_PAIR_MADDS = 50


class Tables(NamedTuple):
    """The shortcut tables of the global units ``g0 <= g < g1``, passed to kernels as one value.

    Attributes
    ----------
    gstart : int64 (L + 2,)
        ``gstart[l] <= g < gstart[l + 1]``: the global units of layer ``l`` (unit
        ``g - gstart[l]``); only layers ``l <= L - 2`` own units.
    kdeg : int64 (L + 1,)
        Degree of layer ``l``'s tables: 1 (piecewise-linear chain), ``_TAYLOR_K`` (smooth
        layers follow), 0 (no tables).
    V : float64 (g1 - g0, m, K, nL)
        ``V[g - g0, s, q, :]``: degree ``q + 1`` coefficient of ``dZ_L[:, s]`` in ``dA_l[i, s]``.
    T : float64 (g1 - g0, m)
        Margins: the tables hold while ``|dA_l[i, s]| < T``.
    g0, g1 : int
        The unit range held.
    """

    gstart: np.ndarray
    kdeg: np.ndarray
    V: np.ndarray
    T: np.ndarray
    g0: int
    g1: int


@jit(inline="always")
def _linear_unit(gg, fc, tab):
    """V[gg, s] and margins T[gg, s] for global unit g = g0 + gg, all examples s.

    Global unit ``g`` is unit ``i = g - gstart[l]`` of layer ``l`` (``gstart[l] <= g <
    gstart[l + 1]``); only layers with the piecewise-linear shortcut own global units.
    """
    dims, acts, zt, zt_off, wt, wt_off = fc.dims, fc.acts, fc.zt, fc.zt_off, fc.wt, fc.wt_off
    gstart, g0, V, T = tab.gstart, tab.g0, tab.V, tab.T
    L = dims.size - 1
    m = V.shape[1]
    nL = dims[L]
    nmax = 0
    for t in range(dims.size):
        nmax = max(nmax, dims[t])
    g = g0 + gg
    layer = 1
    while gstart[layer + 1] <= g:
        layer += 1
    i = g - gstart[layer]
    u = np.empty(nmax)
    w = np.empty(nmax)
    for s in range(m):
        thr = np.inf
        n1 = dims[layer + 1]
        row = wt_off[layer + 1] + i * n1
        for c in range(n1):
            u[c] = wt[row + c]
        for t in range(layer + 1, L):
            nt = dims[t]
            if t > layer + 1:
                # u <- W_t u, accumulated as rows of W_t^T so the inner loop is contiguous
                for c in range(nt):
                    w[c] = 0.0
                nprev = dims[t - 1]
                for j in range(nprev):
                    uj = u[j]
                    if uj != 0.0:
                        base = wt_off[t] + j * nt
                        for c in range(nt):
                            w[c] += wt[base + c] * uj
                for c in range(nt):
                    u[c] = w[c]
            code = acts[t - 1]
            zbase = zt_off[t] + s * nt
            for c in range(nt):
                z = zt[zbase + c]
                if is_kinked(code) and u[c] != 0.0:
                    thr = min(thr, abs(z) / abs(u[c]))
                u[c] *= slope(code, z)
        nprev = dims[L - 1]
        for c in range(nL):
            w[c] = 0.0
        for j in range(nprev):
            uj = u[j]
            if uj != 0.0:
                base = wt_off[L] + j * nL
                for c in range(nL):
                    w[c] += wt[base + c] * uj
        for c in range(nL):
            V[gg, s, 0, c] = w[c]
        T[gg, s] = thr * _MARGIN_SAFETY


@jit
def _taylor_unit(gg, fc, tab, delta):
    """Taylor tables ``V[gg, s, q, :]`` (degree q + 1 of dZ_L in dA_l) and margins ``T[gg, s]``.

    For a unit whose chain to the output holds tanh/sigmoid layers: the series of each
    pre-activation difference in ``dA_l`` (degrees 1..K, K = V.shape[2]) is pushed through the
    layers, linear maps coefficient by coefficient, activations by composing their Taylor
    series at ``Z_t[c, s]``. ``ua`` carries the same chain in absolute values, which bounds
    every unit's change: ``|dZ_t[c]| <= ua[c] |dA_l| (1 + O(delta))``.
    """
    dims, acts, zt, zt_off, wt, wt_off = fc.dims, fc.acts, fc.zt, fc.zt_off, fc.wt, fc.wt_off
    at, gpt = fc.at, fc.gpt
    gstart, g0, V, T = tab.gstart, tab.g0, tab.V, tab.T
    L = dims.size - 1
    m = V.shape[1]
    K = V.shape[2]
    nL = dims[L]
    nmax = 0
    for t in range(dims.size):
        nmax = max(nmax, dims[t])
    g = g0 + gg
    layer = 1
    while gstart[layer + 1] <= g:
        layer += 1
    i = g - gstart[layer]
    p = np.zeros((nmax, K))
    w = np.zeros((nmax, K))
    ua = np.zeros(nmax)
    ub = np.zeros(nmax)
    coef = np.empty(K)
    tmp = np.empty(K)
    r = np.empty(K)
    for s in range(m):
        thr = np.inf
        n1 = dims[layer + 1]
        row = wt_off[layer + 1] + i * n1
        for c in range(n1):
            for q in range(K):
                p[c, q] = 0.0
            p[c, 0] = wt[row + c]
            ua[c] = abs(wt[row + c])
        for t in range(layer + 1, L):
            nt = dims[t]
            if t > layer + 1:
                nprev = dims[t - 1]
                for c in range(nt):
                    ub[c] = 0.0
                    for q in range(K):
                        w[c, q] = 0.0
                for j in range(nprev):
                    uj = ua[j]
                    if uj == 0.0:
                        continue
                    base = wt_off[t] + j * nt
                    for c in range(nt):
                        wc = wt[base + c]
                        ub[c] += abs(wc) * uj
                        for q in range(K):
                            w[c, q] += wc * p[j, q]
                for c in range(nt):
                    ua[c] = ub[c]
                    for q in range(K):
                        p[c, q] = w[c, q]
            code = acts[t - 1]
            zb = zt_off[t] + s * nt
            for c in range(nt):
                if ua[c] == 0.0 or code == IDENTITY:
                    continue
                z = zt[zb + c]
                if is_kinked(code):
                    thr = min(thr, 0.5 * abs(z) / ua[c])
                    sl = slope(code, z)
                    ua[c] *= sl
                    for q in range(K):
                        p[c, q] *= sl
                    continue
                thr = min(thr, delta / ua[c])
                smooth_coeffs(code, at[zb + c], gpt[zb + c], coef, K)
                if t == layer + 1:
                    x = p[c, 0]
                    xp = x
                    for q in range(K):
                        p[c, q] = coef[q] * xp
                        xp *= x
                else:
                    # r <- p (g_j + r) for j = K .. 1, truncated at degree K.
                    for q in range(K):
                        r[q] = 0.0
                    for jj in range(K - 1, -1, -1):
                        tmp[0] = coef[jj]
                        for q in range(1, K):
                            tmp[q] = r[q - 1]
                        for q in range(K):
                            acc = 0.0
                            for a_ in range(q + 1):
                                acc += p[c, a_] * tmp[q - a_]
                            r[q] = acc
                    for q in range(K):
                        p[c, q] = r[q]
                ua[c] *= coef[0]
        nprev = dims[L - 1]
        for c in range(nL):
            for q in range(K):
                w[c, q] = 0.0
        for j in range(nprev):
            base = wt_off[L] + j * nL
            for q in range(K):
                pj = p[j, q]
                if pj != 0.0:
                    for c in range(nL):
                        w[c, q] += wt[base + c] * pj
        for q in range(K):
            for c in range(nL):
                V[gg, s, q, c] = w[c, q]
        T[gg, s] = thr * _MARGIN_SAFETY


# One kernel per kind of table, picked in Python by the layer's degree: a network without
# tanh/sigmoid chains never compiles the Taylor tables, and no dispatch function sits between
# the loop and the unit (numba re-optimises a callee's code at each level that links it, so
# every level of calls costs compile time again). Serial and threaded variants are separate
# kernels so that a small network compiles only the serial ones.
@jit
def _linear_serial(fc, tab, a, b):
    """`_linear_unit` for the table rows a <= gg < b."""
    for gg in range(a, b):
        _linear_unit(gg, fc, tab)


@jit(parallel=True)
def _linear_parallel(fc, tab, a, b):
    """`_linear_serial` in parallel."""
    for gg in prange(a, b):
        _linear_unit(gg, fc, tab)


@jit
def _taylor_serial(fc, tab, delta, a, b):
    """`_taylor_unit` for the table rows a <= gg < b."""
    for gg in range(a, b):
        _taylor_unit(gg, fc, tab, delta)


@jit(parallel=True)
def _taylor_parallel(fc, tab, delta, a, b):
    """`_taylor_serial` in parallel."""
    for gg in prange(a, b):
        _taylor_unit(gg, fc, tab, delta)


@jit(inline="always")
def _one_delta(idx, step, fc, tab, cur, nxt):
    """J(theta + h e_idx) - J(theta), with h the step as rounded into theta."""
    theta, starts, dims, acts, loss, l2 = fc.theta, fc.starts, fc.dims, fc.acts, fc.loss, fc.l2
    arow, arow_off, zrow, zrow_off = fc.arow, fc.arow_off, fc.zrow, fc.zrow_off
    zt, zt_off, at, at_off, yt, sy = fc.zt, fc.zt_off, fc.at, fc.at_off, fc.yt, fc.sy
    wt, wt_off, gprow, gpt = fc.wt, fc.wt_off, fc.gprow, fc.gpt
    gstart, kdeg, V, T, g0, g1 = tab.gstart, tab.kdeg, tab.V, tab.T, tab.g0, tab.g1
    L = dims.size - 1
    m = yt.shape[0]
    nL = dims[L]
    out_act = acts[L - 1]
    layer, i, k = decode(idx, starts, dims)
    w = theta[idx]
    h = (w + step) - w  # the step the perturbed vector really takes
    if h == 0.0:
        return 0.0
    n_l = dims[layer]
    code = acts[layer - 1]
    g = gstart[layer] + i
    use_v = gstart[layer + 1] > gstart[layer] and g0 <= g < g1
    total = 0.0
    for s in range(m):
        x = 1.0 if k < 0 else arow[arow_off[layer - 1] + k * m + s]
        if x == 0.0:
            continue
        dz = h * x
        zL = zt[zt_off[L] + s * nL : zt_off[L] + (s + 1) * nL]
        aL = at[at_off[L] + s * nL : at_off[L] + (s + 1) * nL]
        ys = yt[s]
        if layer == L:
            total += head_one(loss, out_act, zL, aL, ys, i, dz, nL, sy[s])
            continue
        z = zrow[zrow_off[layer] + i * m + s]
        a = at[at_off[layer] + s * n_l + i]
        da = act_diff_g(code, z, a, gprow[zrow_off[layer] + i * m + s], dz)
        if da == 0.0:
            continue
        if layer == L - 1:
            base = wt_off[L] + i * nL
            for c in range(nL):
                cur[c] = wt[base + c] * da
            total += head_vec(loss, out_act, zL, aL, ys, cur, nL, sy[s])
            continue
        if use_v and abs(da) < T[g - g0, s]:
            # Horner in da, vectorised over the logits.
            kk = kdeg[layer]
            vt = V[g - g0, s]
            for c in range(nL):
                cur[c] = vt[kk - 1, c]
            for q in range(kk - 2, -1, -1):
                for c in range(nL):
                    cur[c] = vt[q, c] + da * cur[c]
            for c in range(nL):
                cur[c] *= da
            total += head_vec(loss, out_act, zL, aL, ys, cur, nL, sy[s])
            continue
        # General path: push the differences through every later layer.
        n1 = dims[layer + 1]
        base = wt_off[layer + 1] + i * n1
        for c in range(n1):
            cur[c] = wt[base + c] * da
        for t in range(layer + 1, L):
            nt = dims[t]
            tcode = acts[t - 1]
            zb = zt_off[t] + s * nt
            for c in range(nt):
                cur[c] = act_diff_g(tcode, zt[zb + c], at[zb + c], gpt[zb + c], cur[c])
            nn = dims[t + 1]
            for c in range(nn):
                nxt[c] = 0.0
            for j in range(nt):
                dj = cur[j]
                if dj != 0.0:
                    wb = wt_off[t + 1] + j * nn
                    for c in range(nn):
                        nxt[c] += wt[wb + c] * dj
            for c in range(nn):
                cur[c] = nxt[c]
        total += head_vec(loss, out_act, zL, aL, ys, cur, nL, sy[s])
    total /= m
    if k >= 0 and l2 != 0.0:
        total += l2 / (2.0 * m) * (h * (2.0 * w + h))
    return total


@jit
def _deltas_block(b, nblocks, index, step, fc, tab, out):
    """out[j] = J(theta + step_j e_{index_j}) - J(theta) for j = b, b + nblocks, ..."""
    nmax = 0
    for t in range(fc.dims.size):
        nmax = max(nmax, fc.dims[t])
    cur = np.empty(nmax)
    nxt = np.empty(nmax)
    for j in range(b, index.size, nblocks):
        out[j] = _one_delta(index[j], step[j], fc, tab, cur, nxt)


@jit(parallel=True)
def _deltas_kernel(nblocks, index, step, fc, tab, out):
    """`_deltas_block` over all blocks, in parallel.

    Strided blocks: consecutive perturbations cost alike (same layer), so striding balances
    the threads under prange's static schedule. Each perturbation's arithmetic is the same
    whatever block runs it, so results do not depend on ``nblocks`` or the thread count.
    """
    for b in prange(nblocks):
        _deltas_block(b, nblocks, index, step, fc, tab, out)


@jit
def _unit_keys(index, starts, dims, gstart):
    """Global unit of each perturbation (-1 where it needs no table)."""
    keys = np.empty(index.size, dtype=np.int64)
    for j in range(index.size):
        layer, i, _ = decode(index[j], starts, dims)
        keys[j] = gstart[layer] + i if gstart[layer + 1] > gstart[layer] else -1
    return keys


class CoordinateTables:
    """The coordinate engine of one point: its unit layout and, when they fit, its tables.

    Parameters
    ----------
    fc : fastgc._network.forward.ForwardCache
    activations : sequence of str
        The network's activation names, one per layer.
    budget : int
        Bytes allowed for the tables, ``m (K nL + 1) 8`` per unit. When all units fit, their
        tables are built on the first request and kept; otherwise every request builds the
        tables of the units it perturbs, at most ``budget`` bytes at a time.

    Attributes
    ----------
    n_units : int
        Number of units that own tables (0: no shortcut applies).
    builds : int
        Number of table builds so far (a unit range each).
    """

    def __init__(self, fc, activations, budget):
        dims = fc.dims
        L = dims.size - 1
        # Layers that own table rows: l <= L-2 (the output layer is excluded from the chain;
        # its activation is applied by the loss formulas). kdeg[l]: 1 for a piecewise-linear
        # chain (exact linear shortcut), _TAYLOR_K where tanh/sigmoid layers follow.
        counts = np.zeros(L + 2, dtype=np.int64)
        kdeg = np.zeros(L + 1, dtype=np.int64)
        for layer in range(1, L - 1):
            linear = all(TABLE[a].piecewise_linear for a in activations[layer:-1])
            if linear or _TAYLOR_DELTA > 0.0:
                counts[layer + 1] = dims[layer]
                kdeg[layer] = 1 if linear else _TAYLOR_K
        self._fc = fc
        self._gstart = np.cumsum(counts).astype(np.int64)
        self._kdeg = kdeg
        self._delta = _TAYLOR_DELTA
        self._K = max(1, int(kdeg.max()))
        self.n_units = int(self._gstart[-1])
        per_unit = fc.m * (self._K * int(dims[-1]) + 1) * 8
        self._fits = self.n_units * per_unit <= budget
        self._chunk = max(1, budget // per_unit)
        self._all = None  # every unit's tables, once built (only when they fit)
        self.builds = 0
        # How the kernels ran: "compiled" (numba), "numpy" (their source interpreted: a
        # small request on a machine that never compiled them; the same bits)
        self.paths = set()
        self._madds = int(np.sum(dims[1:] * dims[:-1]))

    def _build(self, g0, g1):
        fc = self._fc
        nL = int(fc.dims[-1])
        tab = Tables(self._gstart, self._kdeg, np.empty((g1 - g0, fc.m, self._K, nL)),
                     np.empty((g1 - g0, fc.m)), g0, g1)  # fmt: skip
        if g1 > g0:
            self.builds += 1
            dims = fc.dims
            L = dims.size - 1
            for layer in range(1, L - 1):
                # this layer's units, as rows of the table
                a = max(g0, int(self._gstart[layer])) - g0
                b = min(g1, int(self._gstart[layer + 1])) - g0
                if b <= a:
                    continue
                # multiply-adds per (unit, example): the chain from layer + 1 to the output
                chain = int(np.sum(dims[layer + 2 :] * dims[layer + 1 : -1])) + int(dims[layer + 1])
                k = int(self._kdeg[layer])
                work = (b - a) * fc.m * k * chain
                serial = work < _SERIAL_WORK * _PAIR_MADDS
                kernel = choose((_taylor_serial if serial else _taylor_parallel) if k > 1 else
                                (_linear_serial if serial else _linear_parallel),
                                work, self.paths)
                if k > 1:
                    kernel(fc, tab, self._delta, a, b)
                else:
                    kernel(fc, tab, a, b)
        return tab

    def deltas(self, index, step):
        """``J(theta + step_j e_{index_j}) - J(theta)`` for validated int64/float64 arrays."""
        out = np.empty(index.size)
        if index.size == 0:
            return out
        G = self.n_units
        if self._fits:
            if self._all is None:
                self._all = self._build(0, G)
            _run(self._fc, self._all, index, step, out, self._madds, self.paths)
            return out
        # Perturbations sorted by unit; one table build per budget's worth of the units they
        # touch. Those that need no table (key -1, first after sorting) run without one.
        keys = _unit_keys(index, self._fc.starts, self._fc.dims, self._gstart)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        lo = int(np.searchsorted(sorted_keys, 0, side="left"))
        if lo:
            _run_subset(self._fc, self._build(0, 0), index, step, order[:lo], out,
                        self._madds, self.paths)
        while lo < index.size:
            g0 = int(sorted_keys[lo])
            g1 = min(G, g0 + self._chunk)
            hi = int(np.searchsorted(sorted_keys, g1, side="left"))
            _run_subset(self._fc, self._build(g0, g1), index, step, order[lo:hi], out,
                        self._madds, self.paths)
            lo = hi
        return out


def _run_subset(fc, tab, index, step, sel, out, madds, paths):
    part = np.empty(sel.size)
    _run(fc, tab, np.ascontiguousarray(index[sel]), np.ascontiguousarray(step[sel]), part,
         madds, paths)
    out[sel] = part


def _run(fc, tab, index, step, out, madds, paths):
    """The deltas of ``index``, ``step`` into ``out``; the path that ran is added to
    ``paths``."""
    if index.size * fc.m < _SERIAL_WORK:
        choose(_deltas_block, index.size * fc.m * madds, paths)(0, 1, index, step, fc, tab, out)
    else:
        # numba.get_num_threads is read here: inside a kernel it would defeat caching.
        _deltas_kernel(min(index.size, 4 * numba.get_num_threads()), index, step, fc, tab, out)
        paths.add("compiled")
