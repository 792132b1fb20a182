"""Complex step on the network: ``Im J(theta + i h e_k) / h`` as forward tangents in float64.

The network evaluated in complex arithmetic at ``theta + i h e_k`` keeps the real forward pass
up to ``O(h^2)`` (below any rounding for ``h <= 1e-8``), so relu and leaky relu, which branch on
the real part, take the same branches, and the imaginary parts are ``h`` times the forward-mode
tangents: ``Im Z_l = h x_s`` in the perturbed row, ``Im A = g'(Z) Im Z``,
``Im Z_{t+1} = W_{t+1} Im A_t``, ``Im c_s = (d c_s / d z_L) . Im z_L``, plus
``h (l2 / m) W[k]`` from the penalty. `ComplexTangents` propagates exactly those tangents, in
float64, instead of complex numbers: the same numbers up to ``O(h^2)`` and rounding, at a
fraction of the cost. Layers before the perturbed one are untouched; from it on, the tangent of
the logits is ``t V[i, s, :]`` with ``V = dZ_L / dA_l[i]`` per example, built by chained
products ``W_L D_{L-1} W_{L-1} ... D_{l+1} W_{l+1}`` (``D_t = diag g'(Z_t)``; ``sech^2`` and
``s(z) s(-z)`` in overflow-free forms). No difference of two costs is ever taken, so the result
is a derivative to a few ulps, with no truncation error.
"""

import numba
import numpy as np
from numba import prange

from fastgc._engines.jit import jit
from fastgc._network.forward import SERIAL_WORK, decode, pack

# Read at each call, so a test can force the threaded kernels.
_SERIAL_WORK = SERIAL_WORK


@jit
def _cs_coordinate(idx, s0, s1, fc, hd, vbuf, v_off):
    """sum_s Im c_s(theta + i h e_idx) / h over the examples s0 <= s < s1.

    Forward tangents: t = g'_l(Z_l[i, s]) x_s at the perturbed unit, the logits' tangent
    ``t V[i, s, :]`` (``V = dZ_L / dA_l[i]``, ``W_L[:, i]`` for l = L - 1), then the head's
    derivative ``hd[s] = d c_s / d z_L``.
    """
    starts, dims, m, arow, arow_off = fc.starts, fc.dims, fc.m, fc.arow, fc.arow_off
    gprow, gprow_off, wt, wt_off = fc.gprow, fc.zrow_off, fc.wt, fc.wt_off
    L = dims.size - 1
    nL = dims[L]
    mc = s1 - s0
    layer, i, k = decode(idx, starts, dims)
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
def _cs_range(b, nblocks, index, s0, s1, fc, hd, vbuf, v_off, out):
    """out[j] += `_cs_coordinate` for j = b, b + nblocks, ..."""
    for j in range(b, index.size, nblocks):
        out[j] += _cs_coordinate(index[j], s0, s1, fc, hd, vbuf, v_off)


@jit(parallel=True)
def _cs_kernel(nblocks, index, s0, s1, fc, hd, vbuf, v_off, out):
    """`_cs_range` over all strided blocks, in parallel (results independent of threads)."""
    for b in prange(nblocks):
        _cs_range(b, nblocks, index, s0, s1, fc, hd, vbuf, v_off, out)


class ComplexTangents:
    """The complex-step engine of one point: head derivatives and tangent tables.

    Parameters
    ----------
    net : fastgc._network.mlp.MLP
    forward : fastgc._network.forward.Forward
    Y : numpy.ndarray, float64, shape (nL, m)
    budget : int
        Bytes for the tangent tables, ``8 nL sum_{l <= L-2} n_l`` per example. When all
        examples fit, the tables are built on the first request and kept; otherwise each
        request builds them a chunk of examples at a time.

    Notes
    -----
    The sum over examples is split at chunk boundaries, so the last bits depend on the budget;
    not on threads, on the order of the coordinates, or on how requests are cut.
    """

    def __init__(self, net, forward, Y, budget):
        self._forward = forward
        self._net = net
        fc = forward.packed
        dims = fc.dims
        L = dims.size - 1
        self._hd = np.ascontiguousarray(net.output_delta(forward.Zs, forward.As, Y).T)  # (m, nL)
        per_example = 8 * int(dims[-1]) * max(1, int(sum(dims[1 : L - 1])))
        self._chunk = max(1, min(fc.m, budget // per_example))
        self._kept = None  # (vbuf, v_off) of all examples, when they fit in one chunk
        self.builds = 0

    def _tables(self, s0, s1):
        """V_l[i, s, :] = dZ_L[:, s] / dA_l[i, s] for l <= L - 2, chained from the output."""
        self.builds += 1
        params, slopes = self._forward.params, self._forward.slopes
        dims = self._forward.packed.dims
        L = dims.size - 1
        nL = int(dims[-1])
        empty = np.empty(0)
        tables = [empty] * L
        M = np.broadcast_to(params[f"W{L}"], (s1 - s0, nL, int(dims[L - 1])))
        for li in range(L - 2, 0, -1):
            D = slopes[li][:, s0:s1].T[:, None, :]  # g'_{l+1}(Z_{l+1}), (mc, 1, n_{l+1})
            M = np.matmul(M * D, params[f"W{li + 1}"])  # (mc, nL, n_l)
            tables[li] = M.transpose(2, 0, 1)
        return pack(tables)

    def derivatives(self, index):
        """``sum_s Im c_s(theta + i h e_k) / (h m)`` plus the L2 term, for validated int64
        ``index``: the complex-step derivatives, independent of ``h``."""
        fc = self._forward.packed
        m = fc.m
        out = np.zeros(index.size)
        if index.size == 0:
            return out
        chunk = self._chunk
        threaded = index.size * min(m, chunk) >= _SERIAL_WORK
        nblocks = min(index.size, 4 * numba.get_num_threads())
        for s0 in range(0, m, chunk):
            s1 = min(m, s0 + chunk)
            if chunk >= m:
                if self._kept is None:
                    self._kept = self._tables(s0, s1)
                vbuf, v_off = self._kept
            else:
                vbuf, v_off = self._tables(s0, s1)
            args = (index, s0, s1, fc, self._hd, vbuf, v_off, out)
            if threaded:
                _cs_kernel(nblocks, *args)
            else:
                _cs_range(0, 1, *args)
        out /= m
        l2 = self._net.l2
        if l2 != 0.0:
            block = np.searchsorted(fc.starts, index, side="right") - 1
            weights = block % 2 == 0
            out[weights] += l2 / m * fc.theta[index[weights]]
        return out
