"""Layer front ends on layers written as numpy code writes them.

Functional forward/backward pairs with caches (affine, ReLU, naive conv, max-pool, batchnorm,
softmax loss, an RNN step), stateful layer objects with accumulating gradients and running
statistics, and a network with ``(weights, biases)`` lists. Each correct backward passes; each
deliberately broken one fails in the block it breaks while the others pass; state is left as it
was. The backward passes are the textbook derivations, the reference being finite differences
only through fastgc; where numbers are asserted they are closed forms.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastgc


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---- functional layers (forward returns (out, cache); backward(dout, cache)) ------------------
def affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b, (x, w)


def affine_backward(dout, cache, bug=None):
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    if bug == "db":
        db = dout.mean(axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, x, bug=None):
    return dout * (x >= 0) if bug else dout * (x > 0)


def conv_forward(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = 1 + (h + 2 * pad - hh) // stride, 1 + (wd + 2 * pad - ww) // stride
    out = np.zeros((n, f, ho, wo), dtype=np.result_type(x, w))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + hh, j * stride:j * stride + ww]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, conv_param)


def conv_backward(dout, cache, bug=None):
    x, w, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            sl = (slice(None), slice(None), slice(i * stride, i * stride + hh),
                  slice(j * stride, j * stride + ww))
            dw += np.tensordot(dout[:, :, i, j], xp[sl], axes=([0], [0]))
            wk = w[:, :, ::-1, ::-1] if bug == "flip" else w
            dxp[sl] += np.tensordot(dout[:, :, i, j], wk, axes=([1], [0]))
    return dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]], dw, db


def maxpool_forward(x, pool_param):
    p, s = pool_param["size"], pool_param["stride"]
    n, c, h, w = x.shape
    out = np.zeros((n, c, 1 + (h - p) // s, 1 + (w - p) // s))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * s:i * s + p, j * s:j * s + p].max(axis=(2, 3))
    return out, (x, pool_param)


def maxpool_backward(dout, cache, bug=None):
    x, pool_param = cache
    p, s = pool_param["size"], pool_param["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + p, j * s:j * s + p]
            mask = win == win.max(axis=(2, 3), keepdims=True)
            scale = 1.0 / p ** 2 if bug else 1.0
            dx[:, :, i * s:i * s + p, j * s:j * s + p] += (
                (mask if not bug else np.ones_like(mask)) * dout[:, :, i, j][:, :, None, None]
                * scale)
    return (dx,)


def batchnorm_forward(x, gamma, beta, bn_param):
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    mean, var = x.mean(axis=0), x.var(axis=0)
    xhat = (x - mean) / np.sqrt(var + eps)
    # the running statistics move on every training-mode forward, in the caller's dict
    bn_param["running_mean"] = momentum * bn_param.get("running_mean", 0) + (1 - momentum) * mean
    bn_param["calls"] = bn_param.get("calls", 0) + 1
    return gamma * xhat + beta, (xhat, gamma, var, eps)


def batchnorm_backward(dout, cache, bug=None):
    xhat, gamma, var, eps = cache
    m = dout.shape[0]
    dbeta, dgamma = dout.sum(axis=0), (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    if bug == "no_mean_terms":  # the classic: forgets that mean and var depend on x
        return dxhat / np.sqrt(var + eps), dgamma, dbeta
    dx = (m * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / (
        m * np.sqrt(var + eps))
    return dx, dgamma, dbeta


def softmax_loss_forward(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean(), (np.exp(logp), y)


def softmax_loss_backward(dloss, cache, bug=None):
    p, y = cache
    dx = p.copy()
    dx[np.arange(len(y)), y] -= 1
    return dloss * dx / (1 if bug else len(y))


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return h, (x, prev_h, Wx, Wh, h)


def rnn_step_backward(dh, cache, bug=None):
    x, prev_h, Wx, Wh, h = cache
    dz = dh * (1 - h ** 2)
    dWh = prev_h.T @ dz if bug != "Wh" else prev_h.T @ dh
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, dWh, dz.sum(axis=0)


def _conv_inputs():
    r = _rng(3)
    return (r.normal(size=(2, 2, 5, 5)), r.normal(size=(3, 2, 3, 3)), r.normal(size=3))


CASES = {
    # name: (forward, backward, inputs, args, bug, the block the bug breaks)
    "affine": (affine_forward, affine_backward,
               (_rng(1).normal(size=(4, 2, 3)), _rng(2).normal(size=(6, 5)),
                _rng(3).normal(size=5)), (), "db", "b"),
    "conv": (conv_forward, conv_backward, _conv_inputs(), ({"stride": 1, "pad": 1},),
             "flip", "x"),
    "batchnorm": (batchnorm_forward, batchnorm_backward,
                  (_rng(4).normal(size=(6, 3)), _rng(5).normal(size=3),
                   _rng(6).normal(size=3)), ({"momentum": 0.9},), "no_mean_terms", "x"),
    "rnn_step": (rnn_step_forward, rnn_step_backward,
                 (_rng(7).normal(size=(3, 4)), _rng(8).normal(size=(3, 5)),
                  0.5 * _rng(9).normal(size=(4, 5)), 0.5 * _rng(10).normal(size=(5, 5)),
                  _rng(11).normal(size=5)), (), "Wh", "Wh"),
}


def _backward(backward, bug):
    return lambda dout, cache: backward(dout, cache, bug=bug)


@pytest.mark.parametrize("name", list(CASES))
def test_correct_layer_passes_and_broken_one_fails_in_its_block(name):
    forward, backward, inputs, args, bug, broken = CASES[name]
    args_before = copy.deepcopy(args)
    ok = fastgc.check_layer(forward, backward, inputs, *args)
    assert ok.passed, ok.report(color=False)
    bad = fastgc.check_layer(forward, _backward(backward, bug), inputs, *args)
    assert not bad.passed
    assert [n for n, b in bad.blocks.items() if not b.passed] == [broken]
    # args are deep-copied for each forward: the caller's bn_param has not moved
    assert repr(args) == repr(args_before)


def test_blocks_are_named_from_forwards_parameters():
    forward, backward, inputs, args, _, _ = CASES["rnn_step"]
    result = fastgc.check_layer(forward, backward, inputs, *args)
    assert list(result.blocks) == ["x", "prev_h", "Wx", "Wh", "b"]


def test_relu_kinks_and_a_subgradient_bug():
    x = np.array([[-1.0, 0.5, 2.0], [0.3, -0.2, -3.0]])
    assert fastgc.check_layer(relu_forward, relu_backward, (x,)).passed
    # away from 0 the subgradient choice at the kink (x >= 0 vs x > 0) does not matter
    assert fastgc.check_layer(relu_forward, _backward(relu_backward, True), (x,)).passed
    # a single input may be passed bare, and the block is named from forward's signature
    result = fastgc.check_layer(relu_forward, relu_backward, x)
    assert list(result.blocks) == ["x"]


def test_maxpool_broken_spreads_the_gradient():
    x = _rng(12).normal(size=(2, 2, 4, 4))
    pool = {"size": 2, "stride": 2}
    assert fastgc.check_layer(maxpool_forward, maxpool_backward, (x,), pool).passed
    bad = fastgc.check_layer(maxpool_forward, _backward(maxpool_backward, True), (x,), pool)
    assert not bad.passed and not bad.blocks["x"].passed


def test_softmax_loss_labels_pass_through_and_scale_bug_is_a_factor():
    x, y = _rng(13).normal(size=(4, 5)), np.array([0, 3, 1, 4])
    assert fastgc.check_layer(softmax_loss_forward, softmax_loss_backward, (x,), y).passed
    bad = fastgc.check_layer(softmax_loss_forward, _backward(softmax_loss_backward, True),
                             (x,), y)
    assert bad.blocks["x"].diagnosis == "dx is 4 x the numeric gradient"  # missing 1/N, N=4


def test_dict_inputs_are_keywords_and_args_fill_the_rest():
    x, w, b = CASES["conv"][2]
    result = fastgc.check_layer(conv_forward, conv_backward, {"x": x, "w": w, "b": b},
                                {"stride": 2, "pad": 1})
    assert result.passed and list(result.blocks) == ["x", "w", "b"]


def test_exclude_an_input_and_cotangent_given():
    forward, backward, inputs, args, bug, _ = CASES["affine"]
    dout = np.ones((4, 5))
    result = fastgc.check_layer(forward, _backward(backward, bug), inputs, cotangent=dout,
                                exclude="b")
    assert result.passed and list(result.blocks) == ["x", "w"]
    assert "excluded (not checked): b" in result.notes


def test_backward_with_the_wrong_number_of_gradients():
    forward, backward, inputs, _, _, _ = CASES["affine"]
    with pytest.raises(ValueError, match=r"backward returned 2 gradients but inputs has 3 "
                                         r"\(x, w, b\)"):
        fastgc.check_layer(forward, lambda d, c: backward(d, c)[:2], inputs)


def test_forward_returning_three_items():
    with pytest.raises(TypeError, match=r"forward must return out or \(out, cache\), not a "
                                        r"tuple of 3"):
        fastgc.check_layer(lambda x: (x, x, x), lambda d, c: d, (np.ones(2),))


# ---- check_vjp / check_jvp --------------------------------------------------------------------
def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_vjp_default_cotangent_is_not_ones():
    # s * c (the diagonal only) agrees with the true VJP when c = 1 (both are s - s sum(s) + ...
    # no: the true VJP with c = 1 is 0 and s * 1 = s != 0). A subtler bug that keeps sums:
    # s * (c - mean(c)) is exact for c = 1 (both zero) and wrong for a Gaussian c.
    x = np.array([0.3, -1.2, 2.0, 0.1])
    true = lambda x, c: _softmax(x) * (c - _softmax(x) @ c)  # noqa: E731
    bug = lambda x, c: _softmax(x) * (c - c.mean())  # noqa: E731
    assert fastgc.check_vjp(_softmax, true, x).passed
    assert fastgc.check_vjp(_softmax, bug, x, cotangent=np.ones(4)).passed  # ones: unseen
    assert not fastgc.check_vjp(_softmax, bug, x).passed


def test_vjp_closed_form_numeric_gradient():
    # f(x) = (x0 x1, x1^2), c = (1, 2): c^T J = (x1, x0 + 4 x1)
    f = lambda x: np.array([x[0] * x[1], x[1] ** 2])  # noqa: E731
    vjp = lambda x, c: np.array([c[0] * x[1], c[0] * x[0] + 2 * c[1] * x[1]])  # noqa: E731
    x = np.array([3.0, -2.0])
    result = fastgc.check_vjp(f, vjp, x, cotangent=np.array([1.0, 2.0]), method="complex")
    np.testing.assert_allclose(result.numeric, [-2.0, 3.0 - 8.0], rtol=1e-14)


def test_vjp_nondeterministic_and_nonzero_at_zero_are_named():
    x = np.array([0.5, 1.5])
    f = lambda x: x ** 2  # noqa: E731
    rng = _rng(14)
    noisy = lambda x, c: 2 * x * c * (1 + 1e-3 * rng.standard_normal())  # noqa: E731
    result = fastgc.check_vjp(f, noisy, x)
    assert not result.passed
    assert result.blocks["params"].diagnosis.startswith("nondeterministic")
    affine = lambda x, c: 2 * x * c + 1e-3  # noqa: E731
    result = fastgc.check_vjp(f, affine, x)
    assert result.blocks["params"].diagnosis.startswith("not zero for a zero cotangent")


def test_vjp_tuple_outputs_and_nested_inputs():
    inputs = {"a": [np.array([1.0, 2.0])], "s": np.array(0.5)}
    f = lambda p: (p["a"][0] * p["s"], np.sum(p["a"][0]) ** 2)  # noqa: E731

    def vjp(p, c):
        a, s = p["a"][0], p["s"]
        return {"a": [c[0] * s + 2 * c[1] * np.sum(a)], "s": np.sum(c[0] * a)}

    result = fastgc.check_vjp(f, vjp, inputs)
    assert result.passed and list(result.blocks) == ["a[0]", "s"]
    assert isinstance(result.numeric["a"], list)


def test_jvp_blocks_are_outputs_and_a_wrong_output_is_named():
    f = lambda x: (np.sin(x), x[:2] * x[1:])  # noqa: E731
    jvp = lambda x, t: (np.cos(x) * t, t[:2] * x[1:] + x[:2] * t[1:])  # noqa: E731
    x = np.array([0.2, -0.7, 1.1])
    result = fastgc.check_jvp(f, jvp, x)
    assert result.passed and list(result.blocks) == ["[0]", "[1]"]
    bad = lambda x, t: (np.cos(x) * t, t[:2] * x[1:])  # noqa: E731
    result = fastgc.check_jvp(f, bad, x)
    assert [n for n, b in result.blocks.items() if not b.passed] == ["[1]"]


def test_jvp_closed_form_along_a_given_tangent():
    f = lambda x: x ** 3  # noqa: E731
    x, t = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    result = fastgc.check_jvp(f, lambda x, t: 3 * x ** 2 * t, x, tangent=t, method="complex")
    np.testing.assert_allclose(result.numeric["out"], [1.5, -12.0], rtol=1e-14)
    assert list(result.blocks) == ["out"]


# ---- stateful layer objects -------------------------------------------------------------------
class Dense:
    """A numpy-library dense layer: parameters/gradients dicts, gradients that accumulate,
    inputs kept in a list on every forward."""

    def __init__(self, n_in, n_out, seed=0, bug=None):
        r = _rng(seed)
        self.parameters = {"W": r.normal(size=(n_in, n_out)), "b": r.normal(size=n_out)}
        self.gradients = {"W": np.zeros((n_in, n_out)), "b": np.zeros(n_out)}
        self.inputs = []
        self.bug = bug

    def forward(self, X):
        self.inputs.append(X)
        return X @ self.parameters["W"] + self.parameters["b"]

    def backward(self, dY):
        X = self.inputs[-1]
        self.gradients["W"] += X.T @ dY
        self.gradients["b"] += dY.sum(axis=0) * (2 if self.bug == "b" else 1)
        W = self.parameters["W"]
        return dY @ (W if self.bug == "X" and W.shape[0] == W.shape[1] else W.T)


class BatchNorm:
    """Running statistics in its parameter dict (non-trainable), moved by a training forward."""

    def __init__(self, n, bug=None):
        r = _rng(20)
        self.parameters = {"gamma": 1 + 0.1 * r.normal(size=n), "beta": r.normal(size=n),
                           "running_mean": np.zeros(n), "running_var": np.ones(n)}
        self.gradients = {"gamma": np.zeros(n), "beta": np.zeros(n)}
        self.bug = bug

    def forward(self, X, training=True):
        p = self.parameters
        if training:
            mean, var = X.mean(axis=0), X.var(axis=0)
            p["running_mean"] *= 0.9  # in place: a read-only copy would refuse this
            p["running_mean"] += 0.1 * mean
            p["running_var"] = 0.9 * p["running_var"] + 0.1 * var
        self.cache = batchnorm_forward(X, p["gamma"], p["beta"], {})[1]
        return p["gamma"] * self.cache[0] + p["beta"]

    def backward(self, dY):
        dx, dgamma, dbeta = batchnorm_backward(dY, self.cache, bug=self.bug)
        self.gradients["gamma"] += dgamma
        self.gradients["beta"] += dbeta
        return dx


def _state(layer):
    return copy.deepcopy(layer.__dict__)


def _same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _same_state(a[k], b[k])
        elif isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        elif isinstance(a[k], list):
            assert len(a[k]) == len(b[k])
        else:
            assert a[k] == b[k]


def test_module_passes_and_leaves_the_layer_as_it_was():
    layer = Dense(3, 3)
    layer.forward(np.ones((1, 3)))  # some history: an input in the list
    layer.backward(np.ones((1, 3)))  # and accumulated gradients
    before, objects = _state(layer), dict(layer.__dict__)
    X = _rng(21).normal(size=(4, 3))
    result = fastgc.check_module(layer, X)
    assert result.passed and list(result.blocks) == ["X", "W", "b"]
    _same_state(layer.__dict__, before)
    assert all(layer.__dict__[k] is v for k, v in objects.items())  # the same objects


@pytest.mark.parametrize("bug, broken", [("b", "b"), ("X", "X")])
def test_module_bug_fails_in_its_block(bug, broken):
    layer = Dense(3, 3, bug=bug)
    X = _rng(22).normal(size=(4, 3))
    result = fastgc.check_module(layer, X)
    assert [n for n, b in result.blocks.items() if not b.passed] == [broken]


def test_module_running_statistics_excluded_and_restored():
    layer = BatchNorm(3)
    X = _rng(23).normal(size=(5, 3))
    before = _state(layer)
    with pytest.raises(ValueError, match=r"forward replaced or changed parameter "
                                         r"'running_mean': a non-trainable entry \(running "
                                         r"statistics: pass exclude=\['running_mean'\]\)"):
        fastgc.check_module(layer, X)
    _same_state(layer.__dict__, before)
    result = fastgc.check_module(layer, X, exclude=["running_mean", "running_var"])
    assert result.passed and list(result.blocks) == ["X", "gamma", "beta"]
    np.testing.assert_array_equal(layer.parameters["running_mean"], 0.0)
    _same_state(layer.__dict__, before)
    bad = fastgc.check_module(BatchNorm(3, bug="no_mean_terms"), X,
                              exclude=lambda name: name.startswith("running"))
    assert [n for n, b in bad.blocks.items() if not b.passed] == ["X"]


def test_module_lazy_initialisation_is_refused():
    class Lazy(Dense):
        def forward(self, X):
            self.parameters["W"] = np.zeros_like(self.parameters["W"])  # re-initialised
            return super().forward(X)

    with pytest.raises(ValueError, match=r"layer.forward replaced or changed parameter 'W'"):
        fastgc.check_module(Lazy(2, 2), np.ones((1, 2)))


# ---- nested parameters: the textbook network's (weights, biases) -------------------------------
def _textbook(sizes=(4, 5, 3), seed=30):
    r = _rng(seed)
    weights = [r.normal(size=(y, x)) for x, y in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [r.normal(size=(y, 1)) for y in sizes[1:]]
    return weights, biases


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def textbook_cost(params, x, y):
    weights, biases = params
    a = x
    for w, b in zip(weights, biases, strict=True):
        a = _sigmoid(w @ a + b)
    return 0.5 * float(np.sum((a - y) ** 2))


def textbook_backprop(params, x, y, bug=None):
    weights, biases = params
    acts, zs, a = [x], [], x
    for w, b in zip(weights, biases, strict=True):
        zs.append(w @ a + b)
        a = _sigmoid(zs[-1])
        acts.append(a)
    delta = (acts[-1] - y) * _sigmoid(zs[-1]) * (1 - _sigmoid(zs[-1]))
    nabla_w, nabla_b = [delta @ acts[-2].T], [delta.sum(axis=1, keepdims=True)]
    for layer in range(2, len(weights) + 1):
        s = _sigmoid(zs[-layer])
        delta = (weights[-layer + 1].T @ delta) * s * (1 - s if bug != "sp" else 1)
        nabla_w.insert(0, delta @ acts[-layer - 1].T)
        nabla_b.insert(0, delta.sum(axis=1, keepdims=True))
    return nabla_w, nabla_b


def test_textbook_network_tuple_of_lists():
    params = _textbook()
    x, y = _rng(31).normal(size=(4, 6)), _rng(32).uniform(size=(3, 6))
    result = fastgc.check(textbook_cost, textbook_backprop(params, x, y), params, x, y)
    assert result.passed and list(result.blocks) == ["[0][0]", "[0][1]", "[1][0]", "[1][1]"]
    assert type(result.numeric) is tuple and type(result.numeric[0]) is list
    bad = fastgc.check(textbook_cost, textbook_backprop(params, x, y, bug="sp"), params, x, y)
    assert [n for n, b in bad.blocks.items() if not b.passed] == ["[0][0]", "[1][0]"]
    assert bad.worst(1)[0].name.startswith(("[0][0][", "[1][0]["))


def test_nested_dict_names_and_d_keys_at_every_level():
    r = _rng(33)
    params = {"layers": [{"W": r.normal(size=(2, 2)), "b": r.normal(size=2)} for _ in range(2)]}
    cost = lambda p: float(sum(np.sum(l["W"] ** 2) + np.sum(l["b"]) for l in p["layers"]))  # noqa: E731,E741
    grad = {"layers": [{"dW": 2 * l["W"], "db": np.ones(2)} for l in params["layers"]]}  # noqa: E741
    result = fastgc.assert_gradients_close(cost, grad, params)
    assert list(result.blocks) == ["layers[0]['W']", "layers[0]['b']", "layers[1]['W']",
                                   "layers[1]['b']"]


@pytest.mark.parametrize("grad, error, match", [
    (([np.ones((5, 4)), np.ones((3, 5))], [np.ones((5, 1))]), ValueError,
     r"grad\[1\] has 1 items but params\[1\] has 2"),
    (([np.ones((4, 5)), np.ones((3, 5))], [np.ones((5, 1)), np.ones((3, 1))]), ValueError,
     r"grad\[0\]\[0\] has shape \(4, 5\) but parameter '\[0\]\[0\]' has shape \(5, 4\)"),
    ((np.ones(3), [np.ones((5, 1)), np.ones((3, 1))]), TypeError,
     r"grad\[0\] must be a list/tuple like params\[0\], not ndarray"),
], ids=["length", "shape", "structure"])
def test_nested_mismatches_name_the_path(grad, error, match):
    params = _textbook()
    with pytest.raises(error, match=match):
        fastgc.check(lambda p: 0.0, grad, params)


def test_exclude_name_that_matches_nothing():
    with pytest.raises(ValueError, match=r"exclude names 'runing_mean', which matches no "
                                         r"entry of params"):
        fastgc.check(lambda p: 0.0, {"W": np.ones(1)}, {"W": np.ones(1), "m": np.ones(1)},
                     exclude="runing_mean")


def test_public_error_and_warning_names():
    from fastgc._errors import CostError, Float32Warning

    assert fastgc.CostError is CostError and fastgc.Float32Warning is Float32Warning
    with pytest.raises(fastgc.CostError):
        fastgc.check(lambda p: np.nan, np.ones(1), np.ones(1))


def test_layout_tree_round_trip_and_excluded_entries():
    from fastgc._core.layout import Layout

    params = {"bn": {"gamma": np.ones(2), "running_mean": np.full(2, 3.0)}, "w": [np.ones(3)]}
    layout, flat = Layout.of(params, exclude="running_mean")
    assert layout.kind == "tree" and layout.excluded == ("bn['running_mean']",)
    assert [b.name for b in layout.blocks] == ["bn['gamma']", "w[0]"]
    back = layout.unflatten(flat)
    assert type(back["w"]) is list and len(layout.leaves(back)) == 2
    np.testing.assert_array_equal(back["bn"]["running_mean"], 3.0)
    assert not back["bn"]["running_mean"].flags.writeable  # re-inserted read-only
    filled = layout.assemble(layout.leaves(back), fill=np.nan)
    assert np.isnan(filled["bn"]["running_mean"]).all()
    assert layout.coordinate_name(2) == "w[0][0]"


# ---- bad input: one clear error per rule, and the docs' bad-input table lists each ---------------
_W = ([np.ones((5, 4)), np.ones((3, 5))], [np.ones((5, 1)), np.ones((3, 1))])
BAD = [
    ("check", "nested gradient of the wrong shape", lambda: fastgc.check(
        lambda p: 0.0, ([np.ones((4, 5)), np.ones((3, 5))], _W[1]), _W),
     ValueError, r"grad\[0\]\[0\] has shape \(4, 5\) but parameter '\[0\]\[0\]' has shape"),
    ("check", "nested gradient list too short", lambda: fastgc.check(
        lambda p: 0.0, (_W[0], _W[1][:1]), _W),
     ValueError, r"grad\[1\] has 1 items but params\[1\] has 2"),
    ("check", "exclude names no entry", lambda: fastgc.check(
        lambda p: 0.0, {"W": np.ones(1)}, {"W": np.ones(1), "m": np.ones(1)},
        exclude="runing_mean"),
     ValueError, "exclude names 'runing_mean', which matches no entry of params"),
    ("check", "exclude leaves nothing", lambda: fastgc.check(
        lambda p: 0.0, {}, {"m": np.ones(1)}, exclude="m"),
     ValueError, "exclude leaves nothing of params to check"),
    ("check_vjp", "cotangent of the wrong shape", lambda: fastgc.check_vjp(
        np.sin, lambda x, c: c, np.ones(2), cotangent=np.ones(3)),
     ValueError, r"cotangent has shape \(3,\) but f\(inputs\) has shape \(2,\)"),
    ("check_vjp", "f returns integers", lambda: fastgc.check_vjp(
        lambda x: np.arange(2), lambda x, c: c, np.ones(2)),
     TypeError, r"f\(inputs\) has dtype int64"),
    ("check_jvp", "tangent of the wrong shape", lambda: fastgc.check_jvp(
        np.sin, lambda x, t: t, np.ones(2), tangent=np.ones(3)),
     ValueError, r"tangent has shape \(3,\) but inputs has shape \(2,\)"),
    ("check_layer", "forward returns three items", lambda: fastgc.check_layer(
        lambda x: (x, x, x), lambda d, c: d, (np.ones(2),)),
     TypeError, r"forward must return out or \(out, cache\), not a tuple of 3 items"),
    ("check_layer", "backward returns too few gradients", lambda: fastgc.check_layer(
        lambda x, w: (x * w, (x, w)), lambda d, c: d, (np.ones(2), np.ones(2))),
     ValueError, r"backward returned one ndarray but inputs has 2 \(x, w\)"),
    ("check_module", "parameters not a dict", lambda: fastgc.check_module(
        type("L", (), {"parameters": [1], "forward": lambda s, x: x,
                       "backward": lambda s, d: d})(), np.ones(2)),
     TypeError, "layer.parameters must be a dict of arrays, not list"),
    ("check_module", "forward moves a parameter", lambda: fastgc.check_module(
        BatchNorm(2), np.ones((3, 2))),
     ValueError, "layer.forward replaced or changed parameter 'running_mean'"),
]


@pytest.mark.parametrize("front, what, call, error, pattern", BAD,
                         ids=[f"{c[0]}: {c[1]}" for c in BAD])
def test_bad_input_gets_a_clear_error(front, what, call, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        call()
    assert len(str(info.value).splitlines()) == 1


def test_docs_table_lists_every_layer_case():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    section = (root / "docs" / "reference" / "bad-input.md").read_text()
    for front, what, *_ in BAD:
        assert f"| {front} | {what} |" in section, (front, what)


def test_layers_tutorial_examples_run(capsys):
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    page = (root / "docs" / "tutorials" / "numpy-layers.md").read_text()
    code = "\n".join(re.findall(r"```\{code-cell\} ipython3\n(.*?)```", page, re.S))
    # "fastgc.check...(...).passed   # True" lines become assertions
    code, n = re.subn(r"^(fastgc\.check.*\.passed)\s+# True$", r"assert \1", code, flags=re.M)
    assert n == 3
    exec(compile(code, "numpy-layers.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.count("fastgc check passed") == 2
