"""Record, or compare with a saved record, what ``fastgc.check`` and the other public checks
return on a fixed set of seeded problems: every number and every line of text, bit for bit.

A refactoring that claims "behaviour unchanged" runs ``--save`` before and ``--compare``
after::

    python bench/identical_results.py --save /tmp/before.pkl
    ... change the code ...
    python bench/identical_results.py --compare /tmp/before.pkl

Timings (``seconds``, and the report line that prints them) are the only fields left out.
Only the public API is used, so the script runs unchanged across internal moves.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import re
import sys

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))

from problems import network_problem  # noqa: E402  (tests/ holds the seeded problems)

_SECONDS = re.compile(r"\d+(\.\d+)?\s*(ms|s|us|µs)\b|(?<=seconds=)[0-9.e+-]+")


def _plain(value):
    """A comparable, picklable form of a result: arrays as bytes, text without timings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"__type__": type(value).__name__}
        for f in dataclasses.fields(value):
            if f.name in ("seconds",) or f.name.startswith("_"):
                continue
            out[f.name] = _plain(getattr(value, f.name))
        out["__str__"] = _SECONDS.sub("<t>", str(value))
        return out
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, float):
        return ("float", value.hex() if np.isfinite(value) else repr(value))
    if isinstance(value, (int, str, bool, type(None))):
        return value
    return _SECONDS.sub("<t>", repr(value))


def _cases():
    import fastgc

    params, X, Y = network_problem((4, 5, 3, 1), 3, "binary", 1, 2)
    net = fastgc.MLP([4, 5, 3, 1])
    dgrads = net.gradients(params, X, Y)
    grads = {k[1:]: v for k, v in dgrads.items()}
    wrong = {k: v.copy() for k, v in grads.items()}
    wrong["W2"][1, 2] += 1e-4
    wrong["b1"] *= 2

    def cost(p, x, y):
        return net(p, x, y)

    yield "network", lambda: fastgc.check(net, grads, params, X, Y)
    yield "network-bug", lambda: fastgc.check(net, wrong, params, X, Y)
    yield "loop-bug", lambda: fastgc.check(cost, wrong, params, X, Y)
    for method in ("central", "richardson", "complex"):
        yield f"loop-{method}", lambda m=method: fastgc.check(cost, grads, params, X, Y, method=m)
    yield "subset", lambda: fastgc.check(net, wrong, params, X, Y, subset=0.5, seed=3)
    yield "directions", lambda: fastgc.check(net, wrong, params, X, Y, directions=4, seed=3)
    yield "directions-loop", lambda: fastgc.check(cost, wrong, params, X, Y, directions=4, seed=5)

    bparams, bX, bY = network_problem((6, 8, 8, 3), 5, "onehot", 7, 8)
    big = fastgc.MLP([6, 8, 8, 3], ["relu", "tanh", "softmax"], loss="ce")
    bg = {k[1:]: v for k, v in big.gradients(bparams, bX, bY).items()}
    bw = {k: v.copy() for k, v in bg.items()}
    bw["W3"][0, :] += 3e-5
    yield "ce-rows", lambda: fastgc.check(big, bw, bparams, bX, bY)
    yield "ce-directions", lambda: fastgc.check(big, bw, bparams, bX, bY, directions=6, seed=1)

    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    A = A @ A.T
    x0 = rng.standard_normal(5)

    def quad(x):
        return 0.5 * x @ A @ x + np.sum(np.abs(x - 0.3))

    def quad_grad(x):
        return A @ x + np.sign(x - 0.3)

    def smooth(x):
        return np.sum(np.sin(x) ** 2) + x @ A @ x

    def smooth_grad(x):
        return np.sin(2 * x) + 2 * A @ x

    for method in ("complex", "richardson"):
        yield f"smooth-{method}", lambda m=method: fastgc.check(smooth, smooth_grad(x0), x0,
                                                               method=m)
    yield "kinks", lambda: fastgc.check(quad, quad_grad(x0), x0)
    yield "kinks-at-point", lambda: fastgc.check(quad, quad_grad(np.full(5, 0.3)), np.full(5, 0.3))

    def affine_forward(x, w, b):
        return x @ w + b, (x, w, b)

    def affine_backward(dout, cache):
        x, w, _ = cache
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)

    lx, lw, lb = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    yield "layer", lambda: fastgc.check_layer(affine_forward, affine_backward, (lx, lw, lb), seed=0)

    def scaled_forward(x, w, b, param):  # an undifferentiated dict argument
        return param["scale"] * (x @ w + b), (x, w, param["scale"])

    def scaled_backward(dout, cache):
        x, w, scale = cache
        d = scale * dout
        return d @ w.T, x.T @ d, d.sum(axis=0)

    yield "layer-args", lambda: fastgc.check_layer(scaled_forward, scaled_backward,
                                                   (lx, lw, lb), {"scale": 1.5})

    class Dense:
        def __init__(self, w, b):
            self.parameters = {"W": w.copy(), "b": b.copy()}
            self.gradients = {"W": np.zeros_like(w), "b": np.zeros_like(b)}

        def forward(self, X):
            self.X = X
            return np.tanh(X @ self.parameters["W"] + self.parameters["b"])

        def backward(self, dY):
            self.Y = np.tanh(self.X @ self.parameters["W"] + self.parameters["b"])
            d = dY * (1 - self.Y ** 2)
            self.gradients["W"] += self.X.T @ d
            self.gradients["b"] += d.sum(axis=0)
            return d @ self.parameters["W"].T

    yield "module", lambda: fastgc.check_module(Dense(lw, lb), lx)

    def relu_forward(x):
        return np.maximum(x, 0), x

    def relu_backward(dout, x):
        return dout * (x > 0)

    def mse(out, y):
        return 0.5 * np.sum((out - y) ** 2), out - y

    mw1, mb1 = rng.standard_normal((4, 5)), rng.standard_normal(5)
    mw2, mb2 = rng.standard_normal((5, 2)), rng.standard_normal(2)
    my = rng.standard_normal((3, 2))
    layers = [(affine_forward, affine_backward, (mw1, mb1)), (relu_forward, relu_backward),
              (affine_forward, affine_backward, (mw2, mb2))]
    h, c1 = affine_forward(lx, mw1, mb1)
    act, c2 = relu_forward(h)
    out, c3 = affine_forward(act, mw2, mb2)
    da, dw2, db2 = affine_backward(mse(out, my)[1], c3)
    dx, dw1, db1 = affine_backward(relu_backward(da, c2), c1)
    yield "model", lambda: fastgc.check_model(layers, lx, my, loss=mse,
                                              grads=[(dw1, db1), None, (dw2, db2)], dX=dx)
    yield "model-unchained", lambda: fastgc.check_model(
        layers, lx, my, loss=mse, grads=[affine_backward(da, c1)[1:], None, (dw2, db2)])

    def tanh_vjp(v, c):
        return (1 - np.tanh(v) ** 2) * c + 1e-3  # not zero for a zero cotangent

    yield "vjp-offset", lambda: fastgc.check_vjp(np.tanh, tanh_vjp, lx.ravel(), seed=2)
    yield "jvp", lambda: fastgc.check_jvp(np.tanh, lambda v, t: (1 - np.tanh(v) ** 2) * t,
                                          lx.ravel(), seed=2)
    model = [(affine_forward, affine_backward, (mw1, mb1)), (relu_forward, relu_backward),
             Dense(mw2, mb2)]
    yield "model-module", lambda: fastgc.check_model(model, lx, my, loss=mse,
                                                     input_check="full")

    from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod

    r0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])
    yield "rosen", lambda: fastgc.check(rosen, rosen_der(r0), r0)
    yield "hessian", lambda: fastgc.check_hessian(rosen_der, rosen_hess, r0)
    yield "hvp", lambda: fastgc.check_hvp(rosen_der, rosen_hess_prod, r0)
    yield "taylor", lambda: fastgc.taylor_test(rosen, rosen_der, r0, seed=0)

    for engine in ("loop", "network"):
        yield f"gradient_check_n-{engine}", lambda e=engine: fastgc.gradient_check_n(
            params, dgrads, X, Y, engine=e)


def collect():
    out = {}
    for name, run in _cases():
        try:
            out[name] = _plain(run())
        except Exception as exc:  # a case that raises is recorded as what it raised
            out[name] = ("raised", type(exc).__name__, str(exc))
    return out


def _diff(a, b, path=""):
    if type(a) is not type(b):
        yield f"{path}: {a!r:.200} != {b!r:.200}"
    elif isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                yield f"{path}.{k}: only in {'after' if k in b else 'before'}"
            else:
                yield from _diff(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(x, y, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: {a!r:.300} != {b!r:.300}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="FILE")
    group.add_argument("--compare", metavar="FILE")
    ns = parser.parse_args(argv)
    results = collect()
    if ns.save:
        with open(ns.save, "wb") as fh:
            pickle.dump(results, fh)
        print(f"saved {len(results)} results to {ns.save}")
        return 0
    with open(ns.compare, "rb") as fh:
        before = pickle.load(fh)
    differences = list(_diff(before, results))
    for line in differences:
        print(line)
    print(f"{len(results)} results, {len(differences)} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
