"""Hand-written jax ``custom_vjp`` / ``custom_jvp`` rules of the kinds people write, with bugs.

``make_<op>(bug=None)`` returns a function with a custom rule; ``bug`` names a planted mistake
in the rule. ``reference_<op>`` is the same forward in plain jax ops, differentiated by jax's
own autodiff: the tests' reference for the right derivative (never fastgc). The rules work in
whatever dtype their arguments have (float32, or float64 under ``jax.enable_x64``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _vjp(forward, backward):
    """A ``custom_vjp`` function from ``forward(*args) -> (out, residuals)`` and
    ``backward(residuals, g) -> tuple of gradients``."""
    f = jax.custom_vjp(lambda *args: forward(*args)[0])
    f.defvjp(forward, backward)
    return f


# -- layer norm over the last axis, with gain and bias ------------------------------------------
def _ln_forward(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    rstd = jax.lax.rsqrt(var + 1e-5)
    xhat = (x - mu) * rstd
    return xhat * g + b, (xhat, rstd, g)


def make_layernorm(bug=None):
    def backward(saved, dy):
        xhat, rstd, g = saved
        dxhat = dy * g
        if bug == "dropped term":
            dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True))
        else:
            dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True)
                         - xhat * (dxhat * xhat).mean(-1, keepdims=True))
        if bug == "entry 1e-3":
            dx = dx.at[0, 0].multiply(1 + 1e-3)
        dg = (dy * xhat).sum(0)
        db = dy[0] if bug == "missing reduction" else dy.sum(0)
        return dx, dg, db

    return _vjp(_ln_forward, backward)


def make_layernorm_jvp(bug=None):
    """The same layer norm with a forward-mode rule (``custom_jvp``)."""
    @jax.custom_jvp
    def f(x, g, b):
        return _ln_forward(x, g, b)[0]

    @f.defjvp
    def rule(primals, tangents):
        x, g, b = primals
        dx, dg, db = tangents
        y, (xhat, rstd, _) = _ln_forward(x, g, b)
        dxc = dx - dx.mean(-1, keepdims=True)
        if bug == "dropped term":
            dxhat = rstd * dxc
        else:
            dxhat = rstd * (dxc - xhat * (xhat * dxc).mean(-1, keepdims=True))
        sign = -1 if bug == "wrong sign" else 1
        return y, dxhat * g + xhat * dg * sign + db

    return f


def reference_layernorm(x, g, b):
    return _ln_forward(x, g, b)[0]


# -- softmax attention ---------------------------------------------------------------------------
def _attn_forward(q, k, v):
    scale = q.shape[-1] ** -0.5
    p = jax.nn.softmax(q @ k.T * scale, axis=-1)
    return p @ v, (q, k, v, p, scale)


def make_attention(bug=None):
    def backward(saved, do):
        q, k, v, p, scale = saved
        dv = p.T @ do
        dp = do @ v.T
        ds = p * (dp - (dp * p).sum(-1, keepdims=True)) * scale
        dq, dk = ds @ k, ds.T @ q
        if bug == "factor 2":
            dv = 2 * dv
        return dq, dk, dv

    return _vjp(_attn_forward, backward)


def reference_attention(q, k, v):
    return _attn_forward(q, k, v)[0]


# -- a convolution via conv_general_dilated (NCHW, OIHW, stride 1, valid) ------------------------
def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))


def make_conv(bug=None):
    def forward(x, w):
        return _conv(x, w), (x, w)

    def backward(saved, dout):
        x, w = saved
        kh, kw = w.shape[2:]
        # dx: the full correlation of dout with the flipped kernel, channels swapped
        wf = jnp.flip(w, (2, 3)).transpose(1, 0, 2, 3)
        dx = jax.lax.conv_general_dilated(dout, wf, (1, 1), [(kh - 1, kh - 1), (kw - 1, kw - 1)],
                                          dimension_numbers=("NCHW", "OIHW", "NCHW"))
        # dw[o, i] = sum_n corr(x[n, i], dout[n, o]): batch and channel roles swapped
        dw = jax.lax.conv_general_dilated(x.transpose(1, 0, 2, 3), dout.transpose(1, 0, 2, 3),
                                          (1, 1), "VALID",
                                          dimension_numbers=("NCHW", "OIHW", "NCHW"))
        dw = dw.transpose(1, 0, 2, 3)
        if bug == "wrong sign":
            dw = -dw
        return dx, dw

    return _vjp(forward, backward)


def reference_conv(x, w):
    return _conv(x, w)


# -- an RNN cell: h' = tanh(x Wx + h Wh + b) -----------------------------------------------------
def _rnn_forward(x, h, wx, wh, b):
    hn = jnp.tanh(x @ wx + h @ wh + b)
    return hn, (x, h, wx, wh, hn)


def make_rnn(bug=None):
    def backward(saved, dhn):
        x, h, wx, wh, hn = saved
        da = dhn * (1 - hn * hn)
        dwh = h.T @ da
        if bug == "transposed":
            dwh = dwh.T
        return da @ wx.T, da @ wh.T, x.T @ da, dwh, da.sum(0)

    return _vjp(_rnn_forward, backward)


def reference_rnn(x, h, wx, wh, b):
    return _rnn_forward(x, h, wx, wh, b)[0]


# -- a kinked activation: leaky ReLU with slope 0.1, as custom_vjp and as custom_jvp -------------
def _leaky(x):
    return jnp.where(x > 0, x, 0.1 * x)


def make_leaky(bug=None):
    slope = 0.01 if bug == "wrong slope" else 0.1
    return _vjp(lambda x: (_leaky(x), x),
                lambda x, g: (g * jnp.where(x > 0, 1.0, slope).astype(g.dtype),))


def make_leaky_jvp(bug=None):
    slope = 0.01 if bug == "wrong slope" else 0.1

    @jax.custom_jvp
    def f(x):
        return _leaky(x)

    @f.defjvp
    def rule(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), t * jnp.where(x > 0, 1.0, slope).astype(t.dtype)

    return f


def reference_leaky(x):
    return _leaky(x)


# -- a gather whose backward is a scatter-add ----------------------------------------------------
def make_gather(index, bug=None):
    """``y = x[index]`` with repeated indices; the backward scatter-adds ``dy`` into ``dx``
    (``bug="overwrite"``: keeps one contribution per index, ``.set`` for ``.add``).

    The index is int32: a numpy int64 index constant trips jax 0.10's ``enable_x64`` context
    (a cached int32 offset meets the int64 index), and the float64 reference check would be
    skipped (noted) rather than run."""
    index = np.asarray(index, dtype=np.int32)
    def backward(shape_x, dy):
        zeros = jnp.zeros(shape_x.shape, dy.dtype)
        if bug == "overwrite":
            return (zeros.at[index].set(dy),)
        return (zeros.at[index].add(dy),)

    return _vjp(lambda x: (x[index], jnp.zeros_like(x)), backward)


def reference_gather(index):
    index = np.asarray(index, dtype=np.int32)
    return lambda x: x[index]
