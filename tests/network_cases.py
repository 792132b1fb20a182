"""Shared by the network-kernel tests: the small networks they run on, and the activations in
extended precision for their references."""

import numpy as np
from problems import LABELS, network_problem

from fastgc._network.mlp import MLP

LD = np.longdouble

HIDDEN = ("relu", "leaky_relu", "tanh", "sigmoid", "identity")
HEADS = [("bce", "sigmoid"), ("ce", "softmax")] + [
    ("mse", out) for out in ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
]
WIDTHS = [3, 4, 5, 4, 3]


def make_case(depth, loss, out, hidden, l2, m, seed):
    n_out = 1 if loss == "bce" else 3
    dims = WIDTHS[:depth] + [n_out]
    net = MLP(dims, [hidden] * (depth - 1) + [out], loss=loss, l2=l2)
    params, X, Y = network_problem(dims, m, LABELS[loss], seed, seed + 100)
    theta = net.flatten(params)
    X[0, 0] = 0.0  # an exactly zero input: its weights' perturbations change nothing
    return net, theta, X, Y


def act_ld(name, Z):
    if name == "relu":
        return np.maximum(LD(0), Z)
    if name == "leaky_relu":
        return np.where(Z > 0, Z, LD("0.01") * Z)
    if name == "tanh":
        return np.tanh(Z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-Z))
    return Z


def case_id(case):
    depth, loss, out, hidden, l2, m = case
    return f"L{depth}-{hidden}-{out}-{loss}-l2={l2}-m={m}"


def cost_ld(net, theta, X, Y):
    """The cost in extended precision, losses in their stable forms (logits for bce/ce)."""
    theta = theta.astype(LD)
    m = X.shape[1]
    A = X.astype(LD)
    Y = Y.astype(LD)
    start, penalty = 0, LD(0)
    for li, name in enumerate(net.activations, start=1):
        n_out, n_in = net.layer_dims[li], net.layer_dims[li - 1]
        W = theta[start : start + n_out * n_in].reshape(n_out, n_in)
        start += n_out * n_in
        b = theta[start : start + n_out].reshape(n_out, 1)
        start += n_out
        penalty += np.sum(W * W)
        Z = np.matmul(W, A) + b
        A = act_ld(name, Z) if name != "softmax" else None
    if net.loss == "bce":
        loss = np.sum(np.logaddexp(LD(0), Z) - Y * Z)
    elif net.loss == "ce":
        zmax = Z.max(axis=0)
        lse = zmax + np.log(np.exp(Z - zmax).sum(axis=0))
        loss = np.sum(Y.sum(axis=0) * lse) - np.sum(Y * Z)
    else:
        loss = np.sum((A - Y) ** 2) / 2
    return loss / m + LD(net.l2) / (2 * m) * penalty
