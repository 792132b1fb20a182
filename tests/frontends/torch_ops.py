"""Hand-written torch autograd.Functions of the kinds people write, each with planted bugs.

``make_<op>(bug=None)`` returns a Function class; ``bug`` names a planted mistake in its
backward. ``reference_<op>`` is the same forward in plain torch ops, differentiated by
torch's autograd: the tests' reference for what the right gradient is (never fastgc).
Functions use the ``setup_context`` style with ``generate_vmap_rule`` (vmap-able) unless
``old_style=True`` (``forward(ctx, ...)``, which ``torch.func.vmap`` refuses).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _function(name, forward, backward, old_style=False):
    """A Function class from ``forward(*inputs) -> (out, saved)`` and
    ``backward(saved, grad_out) -> grads``."""
    if old_style:
        def fwd(ctx, *inputs):
            out, saved = forward(*inputs)
            ctx.saved = saved
            return out

        def bwd(ctx, g):
            return backward(ctx.saved, g)

        return type(name, (torch.autograd.Function,),
                    {"forward": staticmethod(fwd), "backward": staticmethod(bwd)})

    def fwd(*inputs):
        return forward(*inputs)[0]

    def setup(ctx, inputs, output):
        ctx.saved = forward(*inputs)[1]

    def bwd(ctx, g):
        return backward(ctx.saved, g)

    return type(name, (torch.autograd.Function,),
                {"forward": staticmethod(fwd), "setup_context": staticmethod(setup),
                 "backward": staticmethod(bwd), "generate_vmap_rule": True})


# -- layer norm over the last axis, with gain and bias ------------------------------------------
def make_layernorm(bug=None, old_style=False):
    eps = 1e-5

    def forward(x, g, b):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        rstd = (var + eps).rsqrt()
        xhat = (x - mu) * rstd
        return xhat * g + b, (xhat, rstd, g)

    def backward(saved, dy):
        xhat, rstd, g = saved
        n = xhat.shape[-1]
        dxhat = dy * g
        dx = rstd * (dxhat - dxhat.mean(-1, keepdim=True)
                     - xhat * (dxhat * xhat).mean(-1, keepdim=True))
        if bug == "dropped term":
            dx = rstd * (dxhat - dxhat.mean(-1, keepdim=True))
        if bug == "entry 1e-3":
            dx = dx.clone()
            dx[..., 0, 0] = dx[..., 0, 0] * (1 + 1e-3)
        dg = (dy * xhat).sum(-2)
        db = dy.sum(-2)
        if bug == "missing reduction":
            db = dy[..., 0, :]
        del n
        return dx, dg, db

    return _function("LayerNorm", forward, backward, old_style)


def reference_layernorm(x, g, b):
    return F.layer_norm(x, (x.shape[-1],), g, b, eps=1e-5)


# -- softmax attention ---------------------------------------------------------------------------
def make_attention(bug=None, old_style=False):
    def forward(q, k, v):
        scale = q.shape[-1] ** -0.5
        p = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)
        return p @ v, (q, k, v, p, scale)

    def backward(saved, do):
        q, k, v, p, scale = saved
        dv = p.transpose(-1, -2) @ do
        dp = do @ v.transpose(-1, -2)
        ds = p * (dp - (dp * p).sum(-1, keepdim=True)) * scale
        dq = ds @ k
        dk = ds.transpose(-1, -2) @ q
        if bug == "factor 2":
            dv = 2 * dv
        if bug == "entry 1e-3":
            dq = dq.clone()
            dq[..., 0, 0] = dq[..., 0, 0] * (1 + 1e-3)
        return dq, dk, dv

    return _function("Attention", forward, backward, old_style)


def reference_attention(q, k, v):
    scale = q.shape[-1] ** -0.5
    return torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v


# -- a convolution via unfold --------------------------------------------------------------------
def make_conv(bug=None, old_style=False):
    def forward(x, w):
        n, _, h, wd = x.shape
        co, _, kh, kw = w.shape
        cols = F.unfold(x, (kh, kw))  # (n, ci kh kw, L)
        out = w.reshape(co, -1) @ cols
        return out.reshape(n, co, h - kh + 1, wd - kw + 1), (x.shape, w, cols)

    def backward(saved, dout):
        shape, w, cols = saved
        co, _, kh, kw = w.shape
        d = dout.reshape(dout.shape[0], co, -1)
        dw = (d @ cols.transpose(-1, -2)).sum(0).reshape(w.shape)
        if bug == "wrong sign":
            dw = -dw
        dcols = w.reshape(co, -1).t() @ d
        dx = F.fold(dcols, shape[-2:], (kh, kw))
        return dx, dw

    return _function("Conv", forward, backward, old_style)


def reference_conv(x, w):
    return F.conv2d(x, w)


# -- an RNN cell: h' = tanh(x Wx + h Wh + b) -----------------------------------------------------
def make_rnn(bug=None, old_style=False):
    def forward(x, h, wx, wh, b):
        hn = torch.tanh(x @ wx + h @ wh + b)
        return hn, (x, h, wx, wh, hn)

    def backward(saved, dhn):
        x, h, wx, wh, hn = saved
        da = dhn * (1 - hn * hn)
        dx, dh = da @ wx.t(), da @ wh.t()
        dwx, dwh, db = x.t() @ da, h.t() @ da, da.sum(0)
        if bug == "transposed":
            dwh = dwh.t()
        return dx, dh, dwx, dwh, db

    return _function("RNNCell", forward, backward, old_style)


def reference_rnn(x, h, wx, wh, b):
    return torch.tanh(x @ wx + h @ wh + b)


# -- a kinked activation: leaky ReLU with slope 0.1 ----------------------------------------------
def make_leaky(bug=None, old_style=False):
    slope = 0.1

    def forward(x):
        return torch.where(x > 0, x, slope * x), (x,)

    def backward(saved, g):
        (x,) = saved
        wrong = 0.01 if bug == "wrong slope" else slope
        return g * torch.where(x > 0, torch.ones_like(x), torch.full_like(x, wrong))

    return _function("Leaky", forward, backward, old_style)


def reference_leaky(x):
    return F.leaky_relu(x, 0.1)


# -- a gather whose backward is a scatter-add (atomics on a GPU) ---------------------------------
def make_gather(index, bug=None, old_style=False, shuffle=None):
    """``y = x[index]`` (repeated indices); the backward scatter-adds ``dy`` into ``dx``.

    ``shuffle`` (a numpy Generator) adds the contributions in a fresh random order on every
    call, in the inputs' dtype: the bits of ``dx`` then change from run to run, as with
    atomics on a GPU. ``bug="overwrite"`` keeps only one contribution per index.
    """
    def forward(x):
        return x[index], (x.shape, x.dtype)

    def backward(saved, dy):
        shape, dtype = saved
        dx = torch.zeros(shape, dtype=dtype)
        if bug == "overwrite":
            dx[index] = dy
            return dx
        order = (np.arange(len(index)) if shuffle is None
                 else shuffle.permutation(len(index)))
        for i in order:  # one contribution at a time, in this order
            dx[index[i]] = dx[index[i]] + dy[i]
        return dx

    return _function("Gather", forward, backward, old_style)
