"""The forward pass at the unperturbed point, packed once for every kernel of the engine.

`forward_pass` runs the network's forward pass (`fastgc._network.mlp.MLP.forward_cache`) and
lays its
arrays out as the kernels read them, in one `ForwardCache` value: a namedtuple of flat
float64/int64 buffers with per-layer offsets, which numba passes to a kernel as one argument
(in nopython mode and with ``cache=True``). Layer ``t``'s block of a buffer is
``buf[off[t] : off[t + 1]]``; slots a buffer does not use hold empty blocks, so that index
``t`` is always layer ``t``.
"""

from typing import NamedTuple

import numpy as np

from fastgc._engines.jit import jit
from fastgc._network.activations import code, stable_derivative
from fastgc._network.differences import LOSS_CODES

# Default bytes for a call's workspace (tables, difference arrays).
DEFAULT_MAX_MEMORY = 256 * 2**20

# Below about this many (perturbation, example) pairs, or (unit, example) pairs for the
# tables, one thread finishes before a thread team would have started.
SERIAL_WORK = 20_000


class ForwardCache(NamedTuple):
    """The forward pass at ``theta``, packed for the kernels (all arrays C-contiguous).

    Attributes
    ----------
    theta : float64 (P,)
        The unperturbed flat parameters, in the network's order.
    starts : int64 (2L + 1,)
        Offset of each parameter block (W1, b1, ..., WL, bL) in ``theta``, then ``P``.
    dims : int64 (L + 1,)
        ``[n0, ..., nL]``.
    acts : int64 (L,)
        Activation code of each layer.
    loss : int
        Loss code.
    l2 : float
        L2 penalty.
    m : int
        Number of examples.
    arow, arow_off : A_t for t < L, (n_t, m) row-major: ``A_t[k, s]`` at ``k m + s``.
    zrow, zrow_off : Z_t for t >= 1, row-major (unit-major); also the layout of ``gprow``.
    zt, zt_off : Z_t^T, (m, n_t): example-major; also the layout of ``gpt``.
    at, at_off : A_t^T for t >= 1, example-major.
    gprow, gpt : g'_t(Z_t) (overflow-free forms), laid out as ``zrow`` and ``zt``.
    wt, wt_off : W_t^T, (n_{t-1}, n_t): row ``j`` holds column ``j`` of ``W_t``.
    yt : float64 (m, nL)
        Targets, one example per row.
    sy : float64 (m,)
        ``sum_c Y[c, s]``, the ce loss weight of each example.
    """

    theta: np.ndarray
    starts: np.ndarray
    dims: np.ndarray
    acts: np.ndarray
    loss: int
    l2: float
    m: int
    arow: np.ndarray
    arow_off: np.ndarray
    zrow: np.ndarray
    zrow_off: np.ndarray
    zt: np.ndarray
    zt_off: np.ndarray
    at: np.ndarray
    at_off: np.ndarray
    gprow: np.ndarray
    gpt: np.ndarray
    wt: np.ndarray
    wt_off: np.ndarray
    yt: np.ndarray
    sy: np.ndarray


class Forward(NamedTuple):
    """What `forward_pass` returns: the packed cache and the unpacked arrays it came from.

    Attributes
    ----------
    packed : ForwardCache
        For the numba kernels.
    params : dict
        ``{"W1": ..., ...}``, views into ``packed.theta``.
    Zs, As : list of numpy.ndarray
        As `fastgc._network.mlp.MLP.forward_cache` returns them (for the numpy stages).
    slopes : list of numpy.ndarray
        ``g'_l(Z_l)`` for l = 1..L in overflow-free forms (what ``gprow`` packs).
    """

    packed: ForwardCache
    params: dict
    Zs: list
    As: list
    slopes: list


def pack(blocks):
    """Concatenate raveled ``blocks`` (C order) into one buffer; return it and the offsets."""
    # Python ints and one np.array call: on a small network the packing is call overhead.
    off = [0]
    for b in blocks:
        off.append(off[-1] + b.size)
    return np.concatenate([b.ravel() for b in blocks]), np.array(off, dtype=np.int64)


def forward_pass(net, theta, X, Y):
    """Run the forward pass at ``theta`` and pack it for the kernels.

    Parameters
    ----------
    net : fastgc._network.mlp.MLP
    theta : numpy.ndarray, float64, shape (P,), C-contiguous
        Validated flat parameters (see `fastgc._network.NetworkState`).
    X, Y : numpy.ndarray
        Validated data (`fastgc._network.mlp.MLP.validate_data`).

    Returns
    -------
    Forward
    """
    L = net.n_layers
    params = net.unflatten(theta)
    Zs, As = net.forward_cache(params, X)
    empty = np.empty(0)
    arow, arow_off = pack([As[t] for t in range(L)])
    zrow, zrow_off = pack([empty] + [Zs[t - 1] for t in range(1, L + 1)])
    zt, zt_off = pack([empty] + [Zs[t - 1].T for t in range(1, L + 1)])
    at, at_off = pack([empty] + [As[t].T for t in range(1, L + 1)])
    gps = [stable_derivative(a, Z) for a, Z in zip(net.activations, Zs, strict=True)]
    gprow, _ = pack([empty] + gps)
    gpt, _ = pack([empty] + [g.T for g in gps])
    wt, wt_off = pack([empty] + [params[f"W{t}"].T for t in range(1, L + 1)])
    starts = np.array([b.offset for b in net.layout.blocks] + [net.param_count], dtype=np.int64)
    packed = ForwardCache(
        theta=theta,
        starts=starts,
        dims=np.asarray(net.layer_dims, dtype=np.int64),
        acts=np.array([code(a) for a in net.activations], dtype=np.int64),
        loss=LOSS_CODES[net.loss],
        l2=float(net.l2),
        m=int(X.shape[1]),
        arow=arow, arow_off=arow_off, zrow=zrow, zrow_off=zrow_off, zt=zt, zt_off=zt_off,
        at=at, at_off=at_off, gprow=gprow, gpt=gpt, wt=wt, wt_off=wt_off,
        yt=np.ascontiguousarray(Y.T),
        sy=np.ascontiguousarray(Y.sum(axis=0)),
    )  # fmt: skip
    return Forward(packed, params, Zs, As, gps)


@jit
def decode(idx, starts, dims):
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
