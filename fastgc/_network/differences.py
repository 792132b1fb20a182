"""Scalar numba forms of the activations and losses: differences without cancellation.

Every function here computes a *difference* ``f(z + d) - f(z)`` (an activation's or an
example's loss) in a form that never subtracts two nearly equal values of ``f``, from values
cached by the forward pass; the kernels of `fastgc._network` build on them. Activations are
named by the integer codes of `fastgc._network.activations` (its table is the one list of
activations; this module holds their scalar numba forms), losses by `LOSS_CODES`.
"""

import numpy as np

from fastgc._engines.jit import jit
from fastgc._network.activations import IDENTITY, LEAKY, LEAKY_SLOPE, RELU, SIGMOID, TANH

LOSS_CODES = {"bce": 0, "ce": 1, "mse": 2}
BCE, CE, MSE = 0, 1, 2

# Below this |d|, tanh(d) and expm1(d) are taken from their Taylor polynomials.
SMALL = 1e-3


@jit
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@jit
def softplus(x):
    """log(1 + e^x) without overflow."""
    return max(x, 0.0) + np.log1p(np.exp(-abs(x)))


@jit
def act_diff(code, z, a, d):
    """g(z + d) - g(z) for a hidden or mse-output activation, with ``a = g(z)`` cached.

    Written so that no two nearly equal values of g are subtracted.
    """
    if d == 0.0:
        return 0.0
    if code == IDENTITY:
        return d
    zn = z + d
    if code == RELU:
        if z > 0.0:
            return d if zn > 0.0 else -z
        return zn if zn > 0.0 else 0.0
    if code == LEAKY:
        if z > 0.0:
            return d if zn > 0.0 else LEAKY_SLOPE * zn - z
        return zn - LEAKY_SLOPE * z if zn > 0.0 else LEAKY_SLOPE * d
    if code == TANH:
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
    return -sigmoid(zn) * sigmoid(-z) * np.expm1(-d)


@jit
def bce_diff(z, y, d):
    """c(z + d) - c(z) for c(z) = softplus(z) - y z (bce on a sigmoid's logit)."""
    if d == 0.0:
        return 0.0
    if abs(d) > 30.0:
        # Not a small difference: the direct form is accurate and cannot overflow.
        return softplus(z + d) - softplus(z) - y * d
    if z >= 0.0:
        # c = softplus(-z) + (1 - y) z keeps the log1p argument small for large z.
        return np.log1p(sigmoid(-z) * np.expm1(-d)) + (1.0 - y) * d
    return np.log1p(sigmoid(z) * np.expm1(d)) - y * d


@jit
def expm1_small(d):
    """expm1 for |d| < 1e-3 by its Taylor series; the omitted term is < 2e-22 |d|."""
    return d * (
        1.0 + d * (0.5 + d * (1.0 / 6.0 + d * (1.0 / 24.0 + d * (1.0 / 120.0 + d / 720.0))))
    )


@jit
def tanh_small(d):
    """tanh for |d| < 1e-3 by its Taylor series; the omitted term is < 3e-26 |d|."""
    d2 = d * d
    return d * (1.0 + d2 * (-1.0 / 3.0 + d2 * (2.0 / 15.0 - d2 * (17.0 / 315.0))))


@jit
def act_diff_g(code, z, a, gp, d):
    """`act_diff` with ``gp = g'(z)`` cached (overflow-free forms): no exp/cosh for small d.

    tanh: ``tanh(d) g'(z) / (1 + tanh(z) tanh(d))``; sigmoid, with ``e = expm1(-d)``:
    ``s(z + d) - s(z) = -g'(z) e / (1 + s(-z) e)``. Both are identities; for ``|d| < 1e-3``
    the denominators are within 1e-3 of 1, so ``1 - a`` for ``s(-z)`` costs nothing.
    """
    if abs(d) < SMALL:
        if code == TANH:
            td = tanh_small(d)
            return td * gp / (1.0 + a * td)
        if code == SIGMOID:
            em = expm1_small(-d)
            return -gp * em / (1.0 + (1.0 - a) * em)
    return act_diff(code, z, a, d)


@jit
def smooth_coeffs(code, a, gp, out, K):
    """out[j] = g^(j+1)(z) / (j+1)! for tanh or sigmoid, j < K <= 5; ``a = g(z)``, ``gp = g'(z)``.

    tanh: ``g^(k) = sech^2(z) P_k(tanh z)``, ``P_1 = 1``, ``P_{k+1} = (1 - t^2) P_k' - 2 t P_k``;
    sigmoid: ``s(z) = (1 + tanh(z/2)) / 2``, so its coefficients are tanh's at ``z/2`` over
    ``2^(k+1)``, with ``tanh(z/2) = 2 s(z) - 1`` and ``sech^2(z/2) = 4 s'(z)``.
    """
    if code == TANH:
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
def ce_diff(z, p, y, d, n, sy):
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
                t += p[c] * expm1_small(d[c])
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
def head_vec(loss, act, z, a, y, d, n, sy):
    """Per-example cost difference when the output logits change by the vector ``d``."""
    if loss == CE:
        return ce_diff(z, a, y, d, n, sy)
    total = 0.0
    if loss == BCE:
        for c in range(n):
            if d[c] != 0.0:
                total += bce_diff(z[c], y[c], d[c])
        return total
    for c in range(n):
        if d[c] != 0.0:
            da = act_diff(act, z[c], a[c], d[c])
            total += da * (a[c] - y[c] + 0.5 * da)
    return total


@jit(inline="always")
def head_one(loss, act, z, a, y, i, d, n, sy):
    """Per-example cost difference when only output logit ``i`` changes, by ``d``."""
    if loss == BCE:
        return bce_diff(z[i], y[i], d)
    if loss == MSE:
        da = act_diff(act, z[i], a[i], d)
        return da * (a[i] - y[i] + 0.5 * da)
    if d <= 700.0:
        t = a[i] * (expm1_small(d) if abs(d) < 1e-3 else np.expm1(d))
        if t > -0.5:  # as in ce_diff
            return sy * np.log1p(t) - y[i] * d
    dv = np.zeros(n)
    dv[i] = d
    return ce_diff(z, a, y, dv, n, sy)




@jit
def is_kinked(code):
    return code == RELU or code == LEAKY


@jit
def slope(code, z):
    """Slope of a piecewise-linear activation on z's side of 0."""
    if code == IDENTITY or z > 0.0:
        return 1.0
    if code == RELU:
        return 0.0
    return LEAKY_SLOPE

