"""Finite differences of an `MLP` cost by structure: the dense-network engine's kernel.

For a perturbation ``theta + h e_j`` of one weight ``W_l[i, k]`` (or bias ``b_l[i]``), the layers
before ``l`` do not change and layer ``l`` changes in one row only::

    dZ_l[i, s]  = h A_{l-1}[k, s]            (h for a bias)
    dA_l[i, s]  = g_l(Z_l[i, s] + dZ_l[i, s]) - g_l(Z_l[i, s])
    dZ_{l+1}    = W_{l+1}[:, i] dA_l[i, :]   (rank one)
    dZ_{t+1}    = W_{t+1} dA_t,   dA_t = g_t(Z_t + dZ_t) - g_t(Z_t)     (t > l)

so one forward pass at ``theta`` serves every perturbation, and only the *differences* travel
through the later layers. The cost difference is summed from per-example differences
``c_s(theta + h e_j) - c_s(theta)``, each evaluated with a formula that does not subtract two
nearly equal costs (``log1p``/``expm1`` forms), so the result is the true finite difference with
far less rounding error than ``J(theta + h e_j) - J(theta)`` computed from two totals.

Work is skipped where it is exactly zero: examples whose changed quantity is 0 (a relu unit
inactive on both sides, an input entry equal to 0) and units with ``dA == 0``.

Piecewise-linear shortcut (exact, not a derivative): when every layer strictly between ``l`` and
the output is relu, leaky relu or identity, and no pre-activation of those layers crosses 0 for
example ``s``, then ``dZ_L[:, s] = dA_l[i, s] V[i, s]`` with
``V[i, s] = W_L D_{L-1} W_{L-1} ... D_{l+1} W_{l+1}[:, i]`` (``D_t`` the diagonal of slopes at
``Z_t[:, s]``). This is an identity of the piecewise-linear map, so the difference stays the
exact finite difference. ``V`` and a margin ``T[i, s]`` (the largest ``|dA_l[i, s]|`` for which no
unit in between can cross 0) are computed once per call; an example with
``|dA_l[i, s]| >= T[i, s]`` takes the general path instead.

Smooth shortcut (exact to rounding): when tanh or sigmoid layers lie between ``l`` and the
output, ``dZ_L[:, s]`` is an analytic function of the scalar ``dA_l[i, s]``; its Taylor
coefficients of degrees 1..5, ``V_q[i, s]``, are built once per call by pushing truncated series
through the layers (linear maps per coefficient, activations by composing their own series at
``Z_t``: ``tanh^(k) = sech^2 P_k(tanh)``, sigmoid from tanh at ``z/2``). The series is used
while no tanh/sigmoid pre-activation in between moves by more than ``1e-4`` (bounded through
absolute values of the chain), so the first omitted degree is below about ``1e-20`` of the
first: far under the rounding of the general path. Kinked units in such chains get half their
linear margin. Larger changes take the general path, where ``g'(Z)`` cached from the forward
pass and Taylor polynomials of ``tanh(d)`` / ``expm1(d)`` for ``|d| < 1e-3`` replace the
``cosh``/``exp`` calls of the stable difference formulas.

This module imports numba; ``fastgc._mlp`` imports it only inside functions.
"""

import numba
import numpy as np
from numba import prange

from fastgc._jit import jit

__all__ = ["complex_step_derivatives", "coordinate_deltas", "direction_deltas", "kink_mask"]

# Integer codes shared with the kernels.
_ACT_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4, "softmax": 5}
_LOSS_CODES = {"bce": 0, "ce": 1, "mse": 2}
_IDENTITY, _RELU, _LEAKY, _TANH, _SIGMOID, _SOFTMAX = 0, 1, 2, 3, 4, 5
_BCE, _CE, _MSE = 0, 1, 2
_LEAKY_SLOPE = 0.01

_DEFAULT_MAX_MEMORY = 256 * 2**20

# The margin T is shrunk by this factor so that rounding in V (a chain of dot products)
# cannot let a crossing slip through; a crossing "missed" by less than that rounding changes
# the result only at the rounding level anyway.
_MARGIN_SAFETY = 1.0 - 1e-10

# Taylor shortcut for chains with tanh/sigmoid layers: degrees 1.._TAYLOR_K of dZ_L in dA_l,
# used while every smooth pre-activation in between moves by at most _TAYLOR_DELTA (bounded
# through absolute values). The first omitted degree is then below ~_TAYLOR_DELTA^K = 1e-20
# of the first, far under rounding. Kinked units inside such chains get half their linear
# margin: the nonlinear part of their change is a relative O(_TAYLOR_DELTA) at most.
_TAYLOR_K = 5
_TAYLOR_DELTA = 1e-4
# Below this |d|, tanh(d) and expm1(d) are taken from their Taylor polynomials.
_SMALL = 1e-3


# ---- scalar helpers --------------------------------------------------------------------


@jit
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@jit
def _softplus(x):
    """log(1 + e^x) without overflow."""
    return max(x, 0.0) + np.log1p(np.exp(-abs(x)))


@jit
def _act_diff(code, z, a, d):
    """g(z + d) - g(z) for a hidden or mse-output activation, with ``a = g(z)`` cached.

    Written so that no two nearly equal values of g are subtracted.
    """
    if d == 0.0:
        return 0.0
    if code == _IDENTITY:
        return d
    zn = z + d
    if code == _RELU:
        if z > 0.0:
            return d if zn > 0.0 else -z
        return zn if zn > 0.0 else 0.0
    if code == _LEAKY:
        if z > 0.0:
            return d if zn > 0.0 else _LEAKY_SLOPE * zn - z
        return zn - _LEAKY_SLOPE * z if zn > 0.0 else _LEAKY_SLOPE * d
    if code == _TANH:
        if abs(d) <= 1.0:
            # tanh(z+d) - tanh(z) = tanh(d) sech^2(z) / (1 + tanh(z) tanh(d)); sech^2 from z
            # itself, since 1 - tanh(z)^2 loses digits when |tanh(z)| is near 1. The
            # denominator is >= 1 - tanh(1) here.
            td = np.tanh(d)
            c = np.cosh(z)
            return td / (c * c) / (1.0 + a * td)
        if max(abs(z), abs(zn)) < 350.0:
            # = sinh(d) / (cosh(z+d) cosh(z)): no cancellation for any sign of z and d.
            return np.sinh(d) / (np.cosh(zn) * np.cosh(z))
        return np.tanh(zn) - a  # both saturated beyond double precision
    # sigmoid: s(z+d) - s(z) = -s(z+d) s(-z) expm1(-d)
    return -_sigmoid(zn) * _sigmoid(-z) * np.expm1(-d)


@jit
def _bce_diff(z, y, d):
    """c(z + d) - c(z) for c(z) = softplus(z) - y z (bce on a sigmoid's logit)."""
    if d == 0.0:
        return 0.0
    if abs(d) > 30.0:
        # Not a small difference: the direct form is accurate and cannot overflow.
        return _softplus(z + d) - _softplus(z) - y * d
    if z >= 0.0:
        # c = softplus(-z) + (1 - y) z keeps the log1p argument small for large z.
        return np.log1p(_sigmoid(-z) * np.expm1(-d)) + (1.0 - y) * d
    return np.log1p(_sigmoid(z) * np.expm1(d)) - y * d


@jit
def _expm1_small(d):
    """expm1 for |d| < 1e-3 by its Taylor series; the omitted term is < 2e-22 |d|."""
    return d * (
        1.0 + d * (0.5 + d * (1.0 / 6.0 + d * (1.0 / 24.0 + d * (1.0 / 120.0 + d / 720.0))))
    )


@jit
def _tanh_small(d):
    """tanh for |d| < 1e-3 by its Taylor series; the omitted term is < 3e-26 |d|."""
    d2 = d * d
    return d * (1.0 + d2 * (-1.0 / 3.0 + d2 * (2.0 / 15.0 - d2 * (17.0 / 315.0))))


@jit
def _act_diff_g(code, z, a, gp, d):
    """`_act_diff` with ``gp = g'(z)`` cached (overflow-free forms): no exp/cosh for small d.

    tanh: ``tanh(d) g'(z) / (1 + tanh(z) tanh(d))``; sigmoid, with ``e = expm1(-d)``:
    ``s(z + d) - s(z) = -g'(z) e / (1 + s(-z) e)``. Both are identities; for ``|d| < 1e-3``
    the denominators are within 1e-3 of 1, so ``1 - a`` for ``s(-z)`` costs nothing.
    """
    if abs(d) < _SMALL:
        if code == _TANH:
            td = _tanh_small(d)
            return td * gp / (1.0 + a * td)
        if code == _SIGMOID:
            em = _expm1_small(-d)
            return -gp * em / (1.0 + (1.0 - a) * em)
    return _act_diff(code, z, a, d)


@jit
def _smooth_coeffs(code, a, gp, out, K):
    """out[j] = g^(j+1)(z) / (j+1)! for tanh or sigmoid, j < K <= 5; ``a = g(z)``, ``gp = g'(z)``.

    tanh: ``g^(k) = sech^2(z) P_k(tanh z)``, ``P_1 = 1``, ``P_{k+1} = (1 - t^2) P_k' - 2 t P_k``;
    sigmoid: ``s(z) = (1 + tanh(z/2)) / 2``, so its coefficients are tanh's at ``z/2`` over
    ``2^(k+1)``, with ``tanh(z/2) = 2 s(z) - 1`` and ``sech^2(z/2) = 4 s'(z)``.
    """
    if code == _TANH:
        t = a
        s2 = gp
        scale = 1.0
        half = 1.0
    else:
        t = 2.0 * a - 1.0
        s2 = 4.0 * gp
        scale = 0.25
        half = 0.5
    t2 = t * t
    c = (
        s2,
        -t * s2,
        s2 * (t2 - 1.0 / 3.0),
        s2 * t * (2.0 / 3.0 - t2),
        s2 * (2.0 / 15.0 + t2 * (t2 - 1.0)),
    )
    f = scale
    for j in range(K):
        out[j] = c[j] * f
        f *= half


@jit
def _ce_diff(z, p, y, d, n, sy):
    """(sum y) lse(z + d) - y.(z + d) - [(sum y) lse(z) - y.z] for softmax + ce.

    ``z``, ``p`` (= softmax(z)), ``y`` and ``d`` are length-``n`` views; ``sy = sum(y)``.
    """
    dmax = 0.0
    yd = 0.0
    for c in range(n):
        dmax = max(dmax, abs(d[c]))
        yd += y[c] * d[c]
    if dmax == 0.0:
        return 0.0
    if dmax <= 700.0:
        # lse(z + d) - lse(z) = log1p(t), t = sum_c p_c expm1(d_c): no cancellation while
        # 1 + t is not small (t near -1 needs large negative steps on the dominant logits).
        t = 0.0
        if dmax < 1e-3:
            for c in range(n):
                t += p[c] * _expm1_small(d[c])
        else:
            for c in range(n):
                t += p[c] * np.expm1(d[c])
        if t > -0.5:
            return sy * np.log1p(t) - yd
    # Steps that overflow expm1 or empty the dominant classes: the difference is not small,
    # so two stable log-sum-exps suffice.
    m0 = -np.inf
    m1 = -np.inf
    for c in range(n):
        m0 = max(m0, z[c])
        m1 = max(m1, z[c] + d[c])
    s0 = 0.0
    s1 = 0.0
    for c in range(n):
        s0 += np.exp(z[c] - m0)
        s1 += np.exp(z[c] + d[c] - m1)
    return sy * ((m1 - m0) + (np.log(s1) - np.log(s0))) - yd


@jit
def _head_vec(loss, act, z, a, y, d, n, sy):
    """Per-example cost difference when the output logits change by the vector ``d``."""
    if loss == _CE:
        return _ce_diff(z, a, y, d, n, sy)
    total = 0.0
    if loss == _BCE:
        for c in range(n):
            if d[c] != 0.0:
                total += _bce_diff(z[c], y[c], d[c])
        return total
    for c in range(n):
        if d[c] != 0.0:
            da = _act_diff(act, z[c], a[c], d[c])
            total += da * (a[c] - y[c] + 0.5 * da)
    return total


@jit
def _head_one(loss, act, z, a, y, i, d, n, sy):
    """Per-example cost difference when only output logit ``i`` changes, by ``d``."""
    if loss == _BCE:
        return _bce_diff(z[i], y[i], d)
    if loss == _MSE:
        da = _act_diff(act, z[i], a[i], d)
        return da * (a[i] - y[i] + 0.5 * da)
    if d <= 700.0:
        t = a[i] * (_expm1_small(d) if abs(d) < 1e-3 else np.expm1(d))
        if t > -0.5:  # as in _ce_diff
            return sy * np.log1p(t) - y[i] * d
    dv = np.zeros(n)
    dv[i] = d
    return _ce_diff(z, a, y, dv, n, sy)


@jit
def _decode(idx, starts, dims):
    """Flat index -> (layer l >= 1, unit i, input k); k = -1 for a bias."""
    b = 0
    while starts[b + 1] <= idx:
        b += 1
    layer = b // 2 + 1
    local = idx - starts[b]
    if b % 2 == 1:
        return layer, local, -1
    n_in = dims[layer - 1]
    return layer, local // n_in, local % n_in


@jit
def _is_kinked(code):
    return code == _RELU or code == _LEAKY


@jit
def _slope(code, z):
    """Slope of a piecewise-linear activation on z's side of 0."""
    if code == _IDENTITY or z > 0.0:
        return 1.0
    if code == _RELU:
        return 0.0
    return _LEAKY_SLOPE


# ---- kernels ---------------------------------------------------------------------------


@jit
def _linear_unit(gg, g0, dims, acts, gstart, zt, zt_off, wt, wt_off, V, T):
    """V[gg, s] and margins T[gg, s] for global unit g = g0 + gg, all examples s.

    Global unit ``g`` is unit ``i = g - gstart[l]`` of layer ``l`` (``gstart[l] <= g <
    gstart[l + 1]``); only layers with the piecewise-linear shortcut own global units.
    """
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
                if _is_kinked(code) and u[c] != 0.0:
                    thr = min(thr, abs(z) / abs(u[c]))
                u[c] *= _slope(code, z)
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
def _taylor_unit(gg, g0, dims, acts, gstart, zt, zt_off, at, gpt, wt, wt_off, delta, V, T):
    """Taylor tables ``V[gg, s, q, :]`` (degree q + 1 of dZ_L in dA_l) and margins ``T[gg, s]``.

    For a unit whose chain to the output holds tanh/sigmoid layers: the series of each
    pre-activation difference in ``dA_l`` (degrees 1..K, K = V.shape[2]) is pushed through the
    layers, linear maps coefficient by coefficient, activations by composing their Taylor
    series at ``Z_t[c, s]``. ``ua`` carries the same chain in absolute values, which bounds
    every unit's change: ``|dZ_t[c]| <= ua[c] |dA_l| (1 + O(delta))``.
    """
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
                if ua[c] == 0.0 or code == _IDENTITY:
                    continue
                z = zt[zb + c]
                if _is_kinked(code):
                    thr = min(thr, 0.5 * abs(z) / ua[c])
                    sl = _slope(code, z)
                    ua[c] *= sl
                    for q in range(K):
                        p[c, q] *= sl
                    continue
                thr = min(thr, delta / ua[c])
                _smooth_coeffs(code, at[zb + c], gpt[zb + c], coef, K)
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


@jit
def _table_unit(gg, g0, dims, acts, gstart, kdeg, zt, zt_off, at, gpt, wt, wt_off, delta, V, T):
    """`_linear_unit` or `_taylor_unit`, by the degree its layer needs."""
    g = g0 + gg
    layer = 1
    while gstart[layer + 1] <= g:
        layer += 1
    if kdeg[layer] > 1:
        _taylor_unit(gg, g0, dims, acts, gstart, zt, zt_off, at, gpt, wt, wt_off, delta, V, T)
    else:
        _linear_unit(gg, g0, dims, acts, gstart, zt, zt_off, wt, wt_off, V, T)


@jit(parallel=True)
def _linear_kernel(g0, g1, dims, acts, gstart, kdeg, zt, zt_off, at, gpt, wt, wt_off, delta, V,
                   T):  # fmt: skip
    """`_table_unit` for the global units g0 <= g < g1, in parallel."""
    for gg in prange(g1 - g0):
        _table_unit(gg, g0, dims, acts, gstart, kdeg, zt, zt_off, at, gpt, wt, wt_off, delta, V,
                    T)  # fmt: skip


@jit
def _linear_serial(g0, g1, dims, acts, gstart, kdeg, zt, zt_off, at, gpt, wt, wt_off, delta, V,
                   T):  # fmt: skip
    """`_linear_kernel` without threads, for small problems where waking threads costs more."""
    for gg in range(g1 - g0):
        _table_unit(gg, g0, dims, acts, gstart, kdeg, zt, zt_off, at, gpt, wt, wt_off, delta, V,
                    T)  # fmt: skip


@jit
def _one_delta(
    idx, step, theta, starts, dims, acts, loss, l2, arow, arow_off, zrow, zrow_off,
    zt, zt_off, at, at_off, yt, sy, wt, wt_off, gstart, gprow, gpt, kdeg, V, T, g0, g1, cur, nxt,
):  # fmt: skip
    """J(theta + h e_idx) - J(theta), with h the step as rounded into theta."""
    L = dims.size - 1
    m = yt.shape[0]
    nL = dims[L]
    out_act = acts[L - 1]
    layer, i, k = _decode(idx, starts, dims)
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
            total += _head_one(loss, out_act, zL, aL, ys, i, dz, nL, sy[s])
            continue
        z = zrow[zrow_off[layer] + i * m + s]
        a = at[at_off[layer] + s * n_l + i]
        da = _act_diff_g(code, z, a, gprow[zrow_off[layer] + i * m + s], dz)
        if da == 0.0:
            continue
        if layer == L - 1:
            base = wt_off[L] + i * nL
            for c in range(nL):
                cur[c] = wt[base + c] * da
            total += _head_vec(loss, out_act, zL, aL, ys, cur, nL, sy[s])
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
            total += _head_vec(loss, out_act, zL, aL, ys, cur, nL, sy[s])
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
                cur[c] = _act_diff_g(tcode, zt[zb + c], at[zb + c], gpt[zb + c], cur[c])
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
        total += _head_vec(loss, out_act, zL, aL, ys, cur, nL, sy[s])
    total /= m
    if k >= 0 and l2 != 0.0:
        total += l2 / (2.0 * m) * (h * (2.0 * w + h))
    return total


@jit
def _deltas_block(
    b, nblocks, index, step, theta, starts, dims, acts, loss, l2, arow, arow_off, zrow,
    zrow_off, zt, zt_off, at, at_off, yt, sy, wt, wt_off, gstart, gprow, gpt, kdeg, V, T, g0, g1,
    out,
):  # fmt: skip
    """out[j] = J(theta + step_j e_{index_j}) - J(theta) for j = b, b + nblocks, ..."""
    nmax = 0
    for t in range(dims.size):
        nmax = max(nmax, dims[t])
    cur = np.empty(nmax)
    nxt = np.empty(nmax)
    for j in range(b, index.size, nblocks):
        out[j] = _one_delta(
            index[j], step[j], theta, starts, dims, acts, loss, l2, arow, arow_off,
            zrow, zrow_off, zt, zt_off, at, at_off, yt, sy, wt, wt_off, gstart, gprow, gpt,
            kdeg, V, T, g0, g1, cur, nxt,
        )  # fmt: skip


@jit(parallel=True)
def _deltas_kernel(
    nblocks, index, step, theta, starts, dims, acts, loss, l2, arow, arow_off, zrow,
    zrow_off, zt, zt_off, at, at_off, yt, sy, wt, wt_off, gstart, gprow, gpt, kdeg, V, T, g0, g1,
    out,
):  # fmt: skip
    """`_deltas_block` over all blocks, in parallel.

    Strided blocks: consecutive perturbations cost alike (same layer), so striding balances
    the threads under prange's static schedule. Each perturbation's arithmetic is the same
    whatever block runs it, so results do not depend on ``nblocks`` or the thread count.
    """
    for b in prange(nblocks):
        _deltas_block(
            b, nblocks, index, step, theta, starts, dims, acts, loss, l2, arow, arow_off,
            zrow, zrow_off, zt, zt_off, at, at_off, yt, sy, wt, wt_off, gstart, gprow, gpt, kdeg,
            V, T, g0, g1, out,
        )  # fmt: skip


@jit
def _unit_keys(index, starts, dims, gstart):
    """Global unit of each perturbation (-1 where it needs no V)."""
    keys = np.empty(index.size, dtype=np.int64)
    for j in range(index.size):
        layer, i, _ = _decode(index[j], starts, dims)
        keys[j] = gstart[layer] + i if gstart[layer + 1] > gstart[layer] else -1
    return keys


@jit(parallel=True)
def _kink_kernel(index, step, theta, starts, dims, acts, arow, arow_off, zt, zt_off, at, wt,
                 wt_off, m, out):  # fmt: skip
    """out[j]: does theta + step_j e_{index_j} move a relu/leaky pre-activation across 0?

    The general difference path of `_one_delta` with a sign test at every kinked unit.
    """
    n = index.size
    L = dims.size - 1
    nmax = 0
    for t in range(dims.size):
        nmax = max(nmax, dims[t])
    for j in prange(n):
        cur = np.empty(nmax)
        nxt = np.empty(nmax)
        layer, i, k = _decode(index[j], starts, dims)
        w = theta[index[j]]
        h = (w + step[j]) - w
        crossed = False
        for s in range(m):
            x = 1.0 if k < 0 else arow[arow_off[layer - 1] + k * m + s]
            for c in range(dims[layer]):
                cur[c] = 0.0
            cur[i] = h * x
            for t in range(layer, L + 1):
                nt = dims[t]
                code = acts[t - 1]
                zb = zt_off[t] + s * nt
                for c in range(nt):
                    z = zt[zb + c]
                    if _is_kinked(code) and (z > 0.0) != (z + cur[c] > 0.0):
                        crossed = True
                    cur[c] = _act_diff(code, z, at[zb + c], cur[c])
                if crossed or t == L:
                    break
                nn = dims[t + 1]
                for c in range(nn):
                    nxt[c] = 0.0
                for q in range(nt):
                    dq = cur[q]
                    if dq != 0.0:
                        wb = wt_off[t + 1] + q * nn
                        for c in range(nn):
                            nxt[c] += wt[wb + c] * dq
                for c in range(nn):
                    cur[c] = nxt[c]
            if crossed:
                break
        out[j] = crossed


# ---- Python wrappers -------------------------------------------------------------------


class _Packed:
    """The forward pass at theta, packed into flat float64 buffers for the kernels."""

    def __init__(self, net, theta, X, Y):
        dims = np.asarray(net.layer_dims, dtype=np.int64)
        L = dims.size - 1
        m = X.shape[1]
        params = net.unflatten(theta)
        Zs, As = net._forward(params, X)
        self.dims = dims
        self.m = m
        self.acts = np.array([_ACT_CODES[a] for a in net.activations], dtype=np.int64)
        self.loss = _LOSS_CODES[net.loss]
        self.l2 = float(net.l2)
        sizes = [0] + [shape[0] * shape[1] for _, shape in net.param_shapes()]
        self.starts = np.cumsum(sizes).astype(np.int64)

        def pack(blocks):
            off = np.zeros(len(blocks) + 1, dtype=np.int64)
            off[1:] = np.cumsum([b.size for b in blocks])
            return np.ascontiguousarray(np.concatenate([b.ravel() for b in blocks])), off

        # index t of each offset array is layer t; unused slots hold empty blocks.
        empty = np.empty(0)
        self.arow, self.arow_off = pack([As[t] for t in range(L)])
        self.zrow, self.zrow_off = pack([empty] + [Zs[t - 1] for t in range(1, L + 1)])
        self.zt, self.zt_off = pack([empty] + [Zs[t - 1].T for t in range(1, L + 1)])
        self.at, self.at_off = pack([empty] + [As[t].T for t in range(1, L + 1)])
        # g'(Z) in overflow-free forms, laid out as zrow and zt.
        gps = [_slopes(a, Z, A) for a, Z, A in zip(net.activations, Zs, As[1:], strict=True)]
        self.gprow, _ = pack([empty] + gps)
        self.gpt, _ = pack([empty] + [g.T for g in gps])
        self.wt, self.wt_off = pack([empty] + [params[f"W{t}"].T for t in range(1, L + 1)])
        self.yt = np.ascontiguousarray(Y.T)
        self.sy = np.ascontiguousarray(Y.sum(axis=0))  # the ce loss weight of each example
        # Layers that own V rows: l <= L-2 (the output layer excluded from the chain; its
        # activation is applied by the loss formulas). kdeg[l]: 1 for a piecewise-linear
        # chain (exact linear shortcut), _TAYLOR_K where tanh/sigmoid layers follow.
        counts = np.zeros(L + 2, dtype=np.int64)
        self.kdeg = np.zeros(L + 1, dtype=np.int64)
        for layer in range(1, L - 1):
            linear = all(a in ("relu", "leaky_relu", "identity") for a in net.activations[layer:-1])
            if linear or _TAYLOR_DELTA > 0.0:
                counts[layer + 1] = dims[layer]
                self.kdeg[layer] = 1 if linear else _TAYLOR_K
        self.gstart = np.cumsum(counts).astype(np.int64)  # gstart[l]..gstart[l+1]: layer l
        self.n_units = int(self.gstart[-1])
        self.K = max(1, int(self.kdeg.max()))


def _check_inputs(net, theta, X, Y, index, step):
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if theta.shape != (net.param_count,):
        raise ValueError(f"theta must have shape ({net.param_count},), got {theta.shape}")
    X, Y = net._check_data(X, Y)
    index = np.ascontiguousarray(index, dtype=np.int64)
    step = np.ascontiguousarray(step, dtype=np.float64)
    if index.ndim != 1 or step.shape != index.shape:
        raise ValueError(
            f"index and step must be 1-d of equal length, got {index.shape} and {step.shape}"
        )
    if index.size and (index.min() < 0 or index.max() >= net.param_count):
        raise ValueError(f"index entries must lie in [0, {net.param_count})")
    return theta, X, Y, index, step


def coordinate_deltas(net, theta, X, Y, index, step, max_memory=None):
    """Cost differences ``J(theta + step_j e_{index_j}) - J(theta)`` of an `MLP`.

    Parameters
    ----------
    net : fastgc._mlp.MLP
        The network; ``J`` is its cost (loss plus L2 penalty).
    theta : array_like, shape (P,)
        Flat parameters in ``net``'s order (``W1, b1, W2, ...``).
    X, Y : array_like
        Data, as for ``net(params, X, Y)``.
    index : array_like of int, shape (n,)
        Perturbed coordinates.
    step : array_like of float, shape (n,)
        Signed steps. The step applied is ``(theta[index] + step) - theta[index]`` in float64,
        exactly what perturbing a copy of ``theta`` in place would apply.
    max_memory : int, optional
        Bytes allowed for the per-call workspace of the shortcuts (default 256 MiB),
        ``m * (K nL + 1) * 8`` bytes per hidden unit (``K = 1``, or 5 where tanh/sigmoid layers
        follow a layer below ``L - 1``); larger needs are processed in
        chunks of units (at least one unit per chunk). The forward-pass cache (``O(m sum n_l)``)
        and the weights' transposed copy come on top.

    Returns
    -------
    numpy.ndarray, float64, shape (n,)

    Notes
    -----
    One forward pass at ``theta``; then, for each perturbation, only the differences of the
    layers from the perturbed one on are propagated (see the module docstring), and the cost
    difference is summed from per-example differences evaluated without cancellation.
    Results do not depend on the thread count, the order of ``index`` or ``max_memory``.
    """
    theta, X, Y, index, step = _check_inputs(net, theta, X, Y, index, step)
    budget = _DEFAULT_MAX_MEMORY if max_memory is None else int(max_memory)
    pk = _Packed(net, theta, X, Y)
    out = np.empty(index.size)
    if index.size == 0:
        return out
    nL = int(pk.dims[-1])
    per_unit = pk.m * (pk.K * nL + 1) * 8
    G = pk.n_units
    if G * per_unit <= budget:
        _run_chunk(pk, theta, index, step, 0, G, out)
        return out
    # Chunk by global unit: perturbations sorted by unit, one V table per unit range.
    chunk = max(1, budget // per_unit)
    keys = _unit_keys(index, pk.starts, pk.dims, pk.gstart)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    lo = 0
    for g0 in range(0, G, chunk):
        g1 = min(G, g0 + chunk)
        hi = int(np.searchsorted(sorted_keys, g1, side="left"))
        if hi > lo:
            sel = order[lo:hi]
            part = np.empty(sel.size)
            _run_chunk(pk, theta, index[sel], step[sel], g0, g1, part)
            out[sel] = part
        lo = hi
    return out


# Below about this many (perturbation, example) pairs, or (unit, example) pairs for the V
# tables, one thread finishes before a thread team would have started.
_SERIAL_WORK = 20_000


def _run_chunk(pk, theta, index, step, g0, g1, out):
    """V tables for global units g0..g1, then the deltas of the given perturbations."""
    nL = int(pk.dims[-1])
    V = np.empty((g1 - g0, pk.m, pk.K, nL))
    T = np.empty((g1 - g0, pk.m))
    if g1 > g0:
        lin = _linear_serial if (g1 - g0) * pk.m * pk.K < _SERIAL_WORK else _linear_kernel
        lin(g0, g1, pk.dims, pk.acts, pk.gstart, pk.kdeg, pk.zt, pk.zt_off, pk.at, pk.gpt, pk.wt,
            pk.wt_off, _TAYLOR_DELTA, V, T)  # fmt: skip
    args = (
        np.ascontiguousarray(index), np.ascontiguousarray(step), theta, pk.starts, pk.dims,
        pk.acts, pk.loss, pk.l2, pk.arow, pk.arow_off, pk.zrow, pk.zrow_off, pk.zt, pk.zt_off,
        pk.at, pk.at_off, pk.yt, pk.sy, pk.wt, pk.wt_off, pk.gstart, pk.gprow, pk.gpt, pk.kdeg,
        V, T, g0, g1, out,
    )  # fmt: skip
    if index.size * pk.m < _SERIAL_WORK:
        _deltas_block(0, 1, *args)
    else:
        # numba.get_num_threads is read here: inside a kernel it would defeat caching.
        _deltas_kernel(min(index.size, 4 * numba.get_num_threads()), *args)


def kink_mask(net, theta, X, index, step):
    """Which perturbations move a relu/leaky-relu pre-activation across 0.

    Parameters
    ----------
    net : fastgc._mlp.MLP
    theta : array_like, shape (P,)
    X : array_like, shape (n0, m)
    index : array_like of int, shape (n,)
    step : array_like of float, shape (n,)

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
        True where, for some example and some relu/leaky-relu layer at or after the perturbed
        one, ``(z > 0) != (z + dz > 0)``: the cost is not differentiable within the step.
    """
    X = np.asarray(X, dtype=np.float64)
    m = X.shape[1] if X.ndim == 2 else 0
    Y = np.zeros((net.layer_dims[-1], m))
    theta, X, Y, index, step = _check_inputs(net, theta, X, Y, index, step)
    pk = _Packed(net, theta, X, Y)
    out = np.zeros(index.size, dtype=np.bool_)
    if index.size:
        _kink_kernel(
            index, step, theta, pk.starts, pk.dims, pk.acts, pk.arow, pk.arow_off, pk.zt,
            pk.zt_off, pk.at, pk.wt, pk.wt_off, pk.m, out,
        )  # fmt: skip
    return out


# ---- differences along directions ------------------------------------------------------
#
# A direction perturbs whole blocks, so the difference of every layer from the lowest
# perturbed one on is dense; numpy's matrix products carry it, batched over the directions
# of a chunk (columns j*m .. (j+1)*m - 1 of each difference array belong to direction j).
# The elementwise steps reuse the stable scalar formulas above.


@jit
def _act_diff_range(code, z, a, d, m, out, q0, q1):
    """out[i, c] = g(z[i, s] + d[i, c]) - g(z[i, s]), s = c mod m, for flat q0 <= q < q1."""
    km = d.shape[1]
    for q in range(q0, q1):
        i = q // km
        c = q - i * km
        s = c % m
        out[i, c] = _act_diff(code, z[i, s], a[i, s], d[i, c])


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
        out[c] = _head_vec(loss, act, zt[s], at[s], yt[s], dt[c], nL, sy[s])


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


def _check_directions(net, theta, X, Y, directions, step):
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if theta.shape != (net.param_count,):
        raise ValueError(f"theta must have shape ({net.param_count},), got {theta.shape}")
    X, Y = net._check_data(X, Y)
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
    slot = np.empty(net.param_count, dtype=np.int64)  # repeat test in O(size), no sort
    for j, pair in enumerate(directions):
        try:
            indices, values = pair
        except (TypeError, ValueError):
            raise TypeError(f"directions[{j}] must be an (indices, values) pair") from None
        indices = np.asarray(indices)
        if indices.size and indices.dtype.kind not in "iu":
            raise TypeError(f"directions[{j}]: indices must be integers, got {indices.dtype}")
        indices = indices.astype(np.int64)
        values = np.asarray(values, dtype=np.float64)
        if indices.ndim != 1 or values.shape != indices.shape:
            raise ValueError(
                f"directions[{j}]: indices and values must be 1-d of equal length, got "
                f"{indices.shape} and {values.shape}"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= net.param_count):
            raise ValueError(f"directions[{j}]: indices must lie in [0, {net.param_count})")
        positions = np.arange(indices.size)
        slot[indices] = positions  # a repeated index keeps only its last position
        if not np.array_equal(slot[indices], positions):
            raise ValueError(f"directions[{j}]: indices must not repeat")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"directions[{j}]: values must be finite")
        pairs.append((indices, values))
    return theta, X, Y, pairs, step


class _Direction:
    """One direction's applied perturbation, split by parameter block."""

    def __init__(self, theta, indices, values, step, starts):
        moved = theta[indices] + step * values  # the perturbed vector, as an engine builds it
        delta = moved - theta[indices]
        keep = delta != 0.0
        indices, delta = indices[keep], delta[keep]
        block = np.searchsorted(starts, indices, side="right") - 1
        self.pieces = {}  # block number -> (local indices, applied steps)
        for b in np.flatnonzero(np.bincount(block, minlength=starts.size - 1)):
            sel = block == b
            self.pieces[int(b)] = (indices[sel] - starts[b], delta[sel])
        self.first_layer = min(self.pieces) // 2 + 1 if self.pieces else 0


def _weight_step(piece, shape):
    """dW as a dense matrix, or as a sparse one when it has few entries."""
    local, delta = piece
    size = shape[0] * shape[1]
    if local.size * 8 >= size:
        dW = np.zeros(size)
        dW[local] = delta
        return dW.reshape(shape)
    from scipy.sparse import csr_matrix

    return csr_matrix((delta, (local // shape[1], local % shape[1])), shape=shape)


def _row_squares(piece, shape):
    local, delta = piece
    return np.bincount(local // shape[1], weights=delta * delta, minlength=shape[0])


_EPS = np.finfo(np.float64).eps
# Safety factor of the noise estimate over its rounding model (see `direction_deltas`).
_NOISE_FACTOR = 4.0


def direction_deltas(net, theta, X, Y, directions, step, noise_out=None, max_memory=None):
    """Cost differences ``J(theta + step_j v_j) - J(theta)`` of an `MLP` along sparse directions.

    Parameters
    ----------
    net : fastgc._mlp.MLP
    theta : array_like, shape (P,)
        Flat parameters in ``net``'s order (``W1, b1, W2, ...``).
    X, Y : array_like
        Data, as for ``net(params, X, Y)``.
    directions : sequence of (indices, values) pairs
        Direction ``j`` is ``v_j[indices] = values``, zero elsewhere; ``indices`` are
        coordinates in ``net``'s flat order, without repeats. A direction may span several
        blocks and layers.
    step : array_like of float, shape (n,)
        Signed step of each direction. The perturbation applied is
        ``(theta[indices] + step_j * values) - theta[indices]`` in float64: exactly what
        building the perturbed vector would apply.
    noise_out : ndarray of float64, shape (n,), optional
        If given, filled with an estimate of the absolute rounding error of each difference
        (see Notes).
    max_memory : int, optional
        Bytes for the difference arrays of one batch of directions (default 256 MiB), about
        ``6 * m * max(n_l) * 8`` per direction; at least one direction per batch.

    Returns
    -------
    numpy.ndarray, float64, shape (n,)

    Raises
    ------
    ValueError, TypeError
        On shapes, indices or values that do not fit the network.

    Notes
    -----
    One forward pass at ``theta``; then, per direction, only differences travel, from the
    lowest perturbed layer ``l0`` on (``dA_{l0-1} = 0``)::

        dZ_l = W_l dA_{l-1} + dW_l (A_{l-1} + dA_{l-1}) + db_l
        dA_l = g_l(Z_l + dZ_l) - g_l(Z_l)          (stable forms, as in `coordinate_deltas`)

    and the cost difference is the mean of the per-example loss differences at the output
    (stable forms) plus ``(l2 / 2m) sum(dW (2 W + dW))``. Nothing subtracts two totals, so the
    error is a few ulps of the *difference*, not of ``J``.

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
    theta, X, Y, pairs, step = _check_directions(net, theta, X, Y, directions, step)
    n = len(pairs)
    out = np.zeros(n)
    noise = np.zeros(n)
    if noise_out is not None and (
        not isinstance(noise_out, np.ndarray)
        or noise_out.shape != (n,)
        or noise_out.dtype != np.float64
    ):
        raise ValueError(f"noise_out must be a float64 array of shape ({n},)")
    if n == 0:
        return out
    budget = _DEFAULT_MAX_MEMORY if max_memory is None else int(max_memory)
    L = net.n_layers
    dims = net.layer_dims
    m = X.shape[1]
    params = net.unflatten(theta)
    Zs, As = net._forward(params, X)
    deltas = [d * d for d in net._backward(params, Zs, As, Y)]  # squared, for the noise
    acts = [_ACT_CODES[a] for a in net.activations]
    loss = _LOSS_CODES[net.loss]
    sizes = [0] + [shape[0] * shape[1] for _, shape in net.param_shapes()]
    starts = np.cumsum(sizes)
    ZT = np.ascontiguousarray(Zs[-1].T)
    AT = np.ascontiguousarray(As[-1].T)
    YT = np.ascontiguousarray(Y.T)
    sy = np.ascontiguousarray(Y.sum(axis=0))
    # Output-formula weights of the noise model, per (unit, example).
    head_w = 1.0 + sy * As[-1] + 2.0 * np.abs(Y) + np.abs(As[-1] - Y)
    # U_l[s] = sum_i delta_l[i, s]^2 ||W_l[i, :]||^2.
    U = [None] + [np.sum(params[f"W{li}"] ** 2, axis=1) @ deltas[li - 1] for li in range(1, L + 1)]
    dirs = [_Direction(theta, idx, val, step[j], starts) for j, (idx, val) in enumerate(pairs)]
    per_direction = 6 * m * max(dims) * 8
    kmax = max(1, budget // per_direction)
    order = sorted((d.first_layer, j) for j, d in enumerate(dirs) if d.first_layer > 0)
    groups = {}
    for l0, j in order:
        groups.setdefault(l0, []).append(j)
    for l0, members in groups.items():
        for c0 in range(0, len(members), kmax):
            chunk = members[c0 : c0 + kmax]
            _directions_chunk(net, params, Zs, As, deltas, U, head_w, acts, loss, ZT, AT, YT,
                              sy, dirs, chunk, l0, out, noise)  # fmt: skip
    if noise_out is not None:
        noise_out[:] = noise
    return out


def _directions_chunk(net, params, Zs, As, deltas, U, head_w, acts, loss, ZT, AT, YT, sy, dirs,
                      chunk, l0, out, noise):  # fmt: skip
    """Differences of the directions ``chunk`` (all with lowest perturbed layer ``l0``)."""
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
            dZ = W @ dA
            col_ss = np.sum(dA * dA, axis=0).reshape(k, m)
            noise_ss += width * (col_ss @ U[li])
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
                    local, dw = wpiece
                    terms = dw * (2.0 * W.ravel()[local] + dw)
                    l2_diff[jj] += np.sum(terms)
                    l2_noise[jj] += np.sqrt(np.log2(terms.size) + 1.0) * np.linalg.norm(terms)
            bpiece = pieces.get(2 * li - 1)
            if bpiece is not None:
                local, db = bpiece
                dZ[local, cols] += db[:, None]
                noise_ss[jj] += np.sum((db * db) @ delta[local])
        if li < L:
            dA = _act_diff_cols(acts[li - 1], Zs[li - 1], As[li], dZ, m)
    DT = np.ascontiguousarray(dZ.T)  # (k m, nL)
    dc = _head_cols(loss, acts[-1], ZT, AT, YT, sy, DT, m).reshape(k, m)
    aD = np.abs(DT).reshape(k, m, -1)
    head = np.einsum("jsc,sc->j", aD, head_w.T) + np.einsum("jsc,jsc->j", aD, aD)
    loss_diff = dc.sum(axis=1) / m
    scale = l2 / (2.0 * m)
    idx = np.asarray(chunk)
    out[idx] = loss_diff + scale * l2_diff
    noise[idx] = (
        _NOISE_FACTOR
        * _EPS
        * ((np.abs(dc).sum(axis=1) + np.sqrt(noise_ss) + head) / m + scale * l2_noise)
    )


# ---- complex step ----------------------------------------------------------------------


@jit
def _cs_coordinate(idx, s0, s1, starts, dims, m, arow, arow_off, gprow, gprow_off, hd, wt,
                   wt_off, vbuf, v_off):  # fmt: skip
    """sum_s Im c_s(theta + i h e_idx) / h over the examples s0 <= s < s1.

    Forward tangents: t = g'_l(Z_l[i, s]) x_s at the perturbed unit, the logits' tangent
    ``t V[i, s, :]`` (``V = dZ_L / dA_l[i]``, ``W_L[:, i]`` for l = L - 1), then the head's
    derivative ``hd[s] = d c_s / d z_L``.
    """
    L = dims.size - 1
    nL = dims[L]
    mc = s1 - s0
    layer, i, k = _decode(idx, starts, dims)
    total = 0.0
    for s in range(s0, s1):
        x = 1.0 if k < 0 else arow[arow_off[layer - 1] + k * m + s]
        if x == 0.0:
            continue
        if layer == L:
            total += hd[s, i] * x
            continue
        t = gprow[gprow_off[layer] + i * m + s] * x
        if t == 0.0:
            continue
        acc = 0.0
        if layer == L - 1:
            base = wt_off[L] + i * nL
            for c in range(nL):
                acc += hd[s, c] * wt[base + c]
        else:
            base = v_off[layer] + (i * mc + (s - s0)) * nL
            for c in range(nL):
                acc += hd[s, c] * vbuf[base + c]
        total += acc * t
    return total


@jit
def _cs_range(b, nblocks, index, s0, s1, starts, dims, m, arow, arow_off, gprow, gprow_off, hd,
              wt, wt_off, vbuf, v_off, out):  # fmt: skip
    """out[j] += `_cs_coordinate` for j = b, b + nblocks, ..."""
    for j in range(b, index.size, nblocks):
        out[j] += _cs_coordinate(index[j], s0, s1, starts, dims, m, arow, arow_off, gprow,
                                 gprow_off, hd, wt, wt_off, vbuf, v_off)  # fmt: skip


@jit(parallel=True)
def _cs_kernel(nblocks, index, s0, s1, starts, dims, m, arow, arow_off, gprow, gprow_off, hd,
               wt, wt_off, vbuf, v_off, out):  # fmt: skip
    """`_cs_range` over all strided blocks, in parallel (results independent of threads)."""
    for b in prange(nblocks):
        _cs_range(b, nblocks, index, s0, s1, starts, dims, m, arow, arow_off, gprow, gprow_off,
                  hd, wt, wt_off, vbuf, v_off, out)  # fmt: skip


def _slopes(name, Z, A):
    """``g'(Z)`` as the complex step sees it: branches on the real part, smooth forms stable."""
    if name == "relu":
        return (Z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(Z > 0, 1.0, _LEAKY_SLOPE)
    if name == "tanh":
        e = np.exp(-2.0 * np.abs(Z))  # sech^2 z = 4 e / (1 + e)^2, e = exp(-2|z|): no overflow
        return 4.0 * e / ((1.0 + e) * (1.0 + e))
    if name == "sigmoid":
        e = np.exp(-np.abs(Z))  # s(z) s(-z) = e / (1 + e)^2, e = exp(-|z|)
        return e / ((1.0 + e) * (1.0 + e))
    return np.ones_like(Z)


def complex_step_derivatives(net, theta, X, Y, index, h=1e-20, max_memory=None):
    """Complex-step derivatives ``Im J(theta + i h e_k) / h`` of an `MLP`, for ``k`` in ``index``.

    Parameters
    ----------
    net : fastgc._mlp.MLP
    theta : array_like, shape (P,)
        Flat parameters in ``net``'s order.
    X, Y : array_like
        Data, as for ``net(params, X, Y)``.
    index : array_like of int, shape (n,)
        Coordinates (repeats allowed).
    h : float, optional
        The imaginary step, ``0 < h <= 1e-8`` (default 1e-20).
    max_memory : int, optional
        Bytes for the tangent tables (default 256 MiB), ``8 nL sum_{l <= L-2} n_l`` per
        example; more examples are processed in chunks (at least one example per chunk).

    Returns
    -------
    numpy.ndarray, float64, shape (n,)

    Notes
    -----
    The network evaluated in complex arithmetic at ``theta + i h e_k`` keeps the real forward
    pass up to ``O(h^2)`` (below any rounding for ``h <= 1e-8``), so relu and leaky relu, which
    branch on the real part, take the same branches, and the imaginary parts are ``h`` times
    the forward-mode tangents: ``Im Z_l = h x_s`` in the perturbed row, ``Im A = g'(Z) Im Z``,
    ``Im Z_{t+1} = W_{t+1} Im A_t``, ``Im c_s = (d c_s / d z_L) . Im z_L``, plus
    ``h (l2 / m) W[k]`` from the penalty. This function propagates exactly those tangents, in
    float64, instead of complex numbers: the same numbers up to ``O(h^2)`` and rounding, at a
    fraction of the cost. Layers before the perturbed one are untouched; from it on, the
    tangent of the logits is ``t V[i, s, :]`` with ``V = dZ_L / dA_l[i]`` per example, built
    once per call by chained products ``W_L D_{L-1} W_{L-1} ... D_{l+1} W_{l+1}``
    (``D_t = diag g'(Z_t)``; ``sech^2`` and ``s(z) s(-z)`` in overflow-free forms). No
    difference of two costs is ever taken, so the result is a derivative to a few ulps,
    with no truncation error. The sum over examples is split at chunk boundaries, so the
    last bits depend on ``max_memory``; not on threads or the order of ``index``.
    """
    theta, X, Y, index, _ = _check_inputs(net, theta, X, Y, index, np.zeros(np.size(index)))
    h = float(h)
    if not 0.0 < h <= 1e-8:
        raise ValueError(f"h must satisfy 0 < h <= 1e-8 (the O(h^2) terms are dropped), got {h}")
    budget = _DEFAULT_MAX_MEMORY if max_memory is None else int(max_memory)
    out = np.zeros(index.size)
    if index.size == 0:
        return out
    L = net.n_layers
    dims = np.asarray(net.layer_dims, dtype=np.int64)
    nL = int(dims[-1])
    m = X.shape[1]
    params = net.unflatten(theta)
    Zs, As = net._forward(params, X)
    hd = np.ascontiguousarray(net._output_delta(Zs, As, Y).T)  # (m, nL)
    slopes = [_slopes(a, Z, A) for a, Z, A in zip(net.activations, Zs, As[1:], strict=True)]
    sizes = [0] + [shape[0] * shape[1] for _, shape in net.param_shapes()]
    starts = np.cumsum(sizes).astype(np.int64)
    empty = np.empty(0)

    def pack(blocks):
        off = np.zeros(len(blocks) + 1, dtype=np.int64)
        off[1:] = np.cumsum([b.size for b in blocks])
        return np.ascontiguousarray(np.concatenate([b.ravel() for b in blocks])), off

    arow, arow_off = pack([As[t] for t in range(L)])
    gprow, gprow_off = pack([empty] + slopes)
    wt, wt_off = pack([empty] + [params[f"W{t}"].T for t in range(1, L + 1)])
    per_example = 8 * nL * max(1, int(sum(dims[1 : L - 1])))
    chunk = max(1, min(m, budget // per_example))
    threaded = index.size * min(m, chunk) >= _SERIAL_WORK
    nblocks = min(index.size, 4 * numba.get_num_threads())
    for s0 in range(0, m, chunk):
        s1 = min(m, s0 + chunk)
        # V_l[i, s, :] = dZ_L[:, s] / dA_l[i, s] for l <= L - 2, chained from the output.
        tables = [empty] * L
        M = np.broadcast_to(params[f"W{L}"], (s1 - s0, nL, int(dims[L - 1])))
        for li in range(L - 2, 0, -1):
            D = slopes[li][:, s0:s1].T[:, None, :]  # g'_{l+1}(Z_{l+1}), (mc, 1, n_{l+1})
            M = np.matmul(M * D, params[f"W{li + 1}"])  # (mc, nL, n_l)
            tables[li] = M.transpose(2, 0, 1)
        vbuf, v_off = pack(tables)
        args = (index, s0, s1, starts, dims, m, arow, arow_off, gprow, gprow_off, hd, wt,
                wt_off, vbuf, v_off, out)  # fmt: skip
        if threaded:
            _cs_kernel(nblocks, *args)
        else:
            _cs_range(0, 1, *args)
    out /= m
    if net.l2 != 0.0:
        block = np.searchsorted(starts, index, side="right") - 1
        weights = block % 2 == 0
        out[weights] += net.l2 / m * theta[index[weights]]
    return out
