"""Problems with closed-form gradients and Hessians (or Hessian-vector products) for the
second-order front ends' tests. Every reference here is written out by hand; none uses fastgc.
"""

import numpy as np


# ---- a quadratic over two blocks -------------------------------------------------------------
class Quadratic:
    """``J = 1/2 t^T A t + c^T t`` over ``{"x": (3,), "z": (3,), "W": (2, 2)}`` (t flat)."""

    shapes = {"x": (3,), "z": (3,), "W": (2, 2)}

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        n = sum(int(np.prod(s)) for s in self.shapes.values())
        M = rng.standard_normal((n, n))
        self.A = M @ M.T + n * np.eye(n)
        self.c = rng.standard_normal(n)
        self.params = {k: rng.standard_normal(s) for k, s in self.shapes.items()}
        self.slices, offset = {}, 0
        for k, s in self.shapes.items():
            size = int(np.prod(s))
            self.slices[k] = slice(offset, offset + size)
            offset += size

    def flat(self, p):
        return np.concatenate([np.ravel(p[k]) for k in self.shapes])

    def split(self, t):
        return {k: t[self.slices[k]].reshape(s) for k, s in self.shapes.items()}

    def cost(self, p):
        t = self.flat(p)
        return 0.5 * t @ self.A @ t + self.c @ t

    def grad(self, p):
        return self.split(self.A @ self.flat(p) + self.c)

    def hess(self, p):
        return self.A.copy()

    def hvp(self, p, v):
        return self.split(self.A @ self.flat(v))


# ---- logistic regression with an L2 term -----------------------------------------------------
class Logistic:
    """``J = mean(log(1 + exp(-y (X w + b)))) + lam/2 |w|^2`` over ``{"w": (d,), "b": (1,)}``."""

    def __init__(self, n=40, d=4, lam=0.3, seed=1):
        rng = np.random.default_rng(seed)
        self.X = rng.standard_normal((n, d))
        self.y = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
        self.lam = lam
        self.params = {"w": 0.5 * rng.standard_normal(d), "b": np.array([0.2])}

    def _margin(self, p):
        return self.y * (self.X @ p["w"] + p["b"][0])

    def cost(self, p):
        return float(np.mean(np.logaddexp(0.0, -self._margin(p)))
                     + 0.5 * self.lam * p["w"] @ p["w"])

    def grad(self, p):
        s = 1.0 / (1.0 + np.exp(self._margin(p)))  # sigma(-m)
        r = -self.y * s / len(self.y)
        return {"w": self.X.T @ r + self.lam * p["w"], "b": np.array([r.sum()])}

    def hess(self, p, lam=None):
        lam = self.lam if lam is None else lam
        s = 1.0 / (1.0 + np.exp(self._margin(p)))
        D = s * (1 - s) / len(self.y)
        Xb = np.hstack([self.X, np.ones((len(self.y), 1))])
        H = Xb.T @ (D[:, None] * Xb)
        H[:-1, :-1] += lam * np.eye(self.X.shape[1])
        return H

    def hvp(self, p, v, lam=None):
        lam = self.lam if lam is None else lam
        s = 1.0 / (1.0 + np.exp(self._margin(p)))
        D = s * (1 - s) / len(self.y)
        u = D * (self.X @ v["w"] + v["b"][0])
        return {"w": self.X.T @ u + lam * v["w"], "b": np.array([u.sum()])}


# ---- a small tanh network -------------------------------------------------------------------
class TanhNet:
    """``J = 1/(2m) |W2 tanh(W1 X + b1) - Y|^2`` with a hand-written backprop and a
    hand-written Hessian-vector product (Pearlmutter's R-op), and a switch that drops the
    tanh'' term of the R-op (a Gauss-Newton-like bug)."""

    def __init__(self, d=4, h=3, o=2, m=5, seed=2):
        rng = np.random.default_rng(seed)
        self.X = rng.standard_normal((d, m))
        self.Y = rng.standard_normal((o, m))
        self.params = {"W1": rng.standard_normal((h, d)), "b1": 0.1 * rng.standard_normal(h),
                       "W2": rng.standard_normal((o, h))}

    def _forward(self, p):
        A = np.tanh(p["W1"] @ self.X + p["b1"][:, None])
        R = (p["W2"] @ A - self.Y) / self.X.shape[1]
        return A, R

    def cost(self, p):
        A, _ = self._forward(p)
        F = p["W2"] @ A
        return 0.5 * np.sum((F - self.Y) ** 2) / self.X.shape[1]

    def grad(self, p):
        A, R = self._forward(p)
        dZ = (p["W2"].T @ R) * (1 - A ** 2)
        return {"W1": dZ @ self.X.T, "b1": dZ.sum(axis=1), "W2": R @ A.T}

    def hvp(self, p, v, drop_tanh2=False):
        A, R = self._forward(p)
        m = self.X.shape[1]
        dA = p["W2"].T @ R
        RZ = v["W1"] @ self.X + v["b1"][:, None]
        RA = (1 - A ** 2) * RZ
        RR = (v["W2"] @ A + p["W2"] @ RA) / m
        RdA = v["W2"].T @ R + p["W2"].T @ RR
        RdZ = RdA * (1 - A ** 2)
        if not drop_tanh2:
            RdZ = RdZ - 2 * A * RA * dA
        return {"W1": RdZ @ self.X.T, "b1": RdZ.sum(axis=1), "W2": RR @ A.T + R @ RA.T}


def flatten(p, keys):
    return np.concatenate([np.ravel(p[k]) for k in keys])


def nested_fd_hessian(cost, params, h=1e-4):
    """The Hessian of ``cost`` by second central differences of the cost (4 evaluations per
    entry), over the flattened params (dict order)."""
    keys = list(params)
    shapes = {k: np.shape(params[k]) for k in keys}
    t0 = flatten(params, keys)

    def J(t):
        out, offset = {}, 0
        for k in keys:
            size = int(np.prod(shapes[k]))
            out[k] = t[offset:offset + size].reshape(shapes[k])
            offset += size
        return cost(out)

    n = len(t0)
    H = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.zeros(n), np.zeros(n)
            ei[i], ej[j] = h, h
            H[i, j] = H[j, i] = (J(t0 + ei + ej) - J(t0 + ei - ej) - J(t0 - ei + ej)
                                 + J(t0 - ei - ej)) / (4 * h * h)
    return H
