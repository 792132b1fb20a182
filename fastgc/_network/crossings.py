"""Kinks: which coordinate perturbations move a relu/leaky-relu pre-activation across 0.

A finite difference over a step that crosses a kink mixes two slopes; the checker judges such
coordinates by the one-sided rule instead (`fastgc._core.kinks`). The test propagates the step's
differences exactly as the general path of `fastgc._network.coordinates` does, with a sign
test at every kinked unit it reaches.
"""

import numpy as np
from numba import prange

from fastgc._engines.jit import jit
from fastgc._network.differences import act_diff, is_kinked
from fastgc._network.forward import decode


@jit(parallel=True)
def kink_kernel(index, step, fc, out):
    """out[j]: does theta + step_j e_{index_j} move a relu/leaky pre-activation across 0?

    The general difference path of the coordinate kernel with a sign test at every kinked unit.
    """
    theta, starts, dims, acts, m = fc.theta, fc.starts, fc.dims, fc.acts, fc.m
    arow, arow_off, zt, zt_off, at, wt, wt_off = (fc.arow, fc.arow_off, fc.zt, fc.zt_off, fc.at,
                                                  fc.wt, fc.wt_off)  # fmt: skip
    n = index.size
    L = dims.size - 1
    nmax = 0
    for t in range(dims.size):
        nmax = max(nmax, dims[t])
    for j in prange(n):
        cur = np.empty(nmax)
        nxt = np.empty(nmax)
        layer, i, k = decode(index[j], starts, dims)
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
                    if is_kinked(code) and (z > 0.0) != (z + cur[c] > 0.0):
                        crossed = True
                    cur[c] = act_diff(code, z, at[zb + c], cur[c])
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
