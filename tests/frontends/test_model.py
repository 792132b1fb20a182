"""check_model: whole models checked layer by layer.

The layers are plain numpy written here (numpy-course pairs and a stateful object style); the
model's own backward is written here too, as a user would, so that the chain check compares
fastgc's composition with an independent one.
"""

import copy

import numpy as np
import pytest

import fastgc
from fastgc._core.noise import NOISE_NFEV


# -- layers --------------------------------------------------------------------------------------
def affine_forward(x, w, b):
    return x.reshape(len(x), -1) @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return ((dout @ w.T).reshape(x.shape), x.reshape(len(x), -1).T @ dout, dout.sum(axis=0))


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    return dout * (x > 0)


def conv_forward(x, w, b, conv_param):
    """Naive 2-D convolution (stride 1, padding ``pad``)."""
    p = conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    k = w.shape[2]
    ho, wo = xp.shape[2] - k + 1, xp.shape[3] - k + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = np.tensordot(xp[:, :, i:i + k, j:j + k], w,
                                           axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, conv_param)


def conv_backward(dout, cache):
    x, w, conv_param = cache
    p, k = conv_param["pad"], w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            sl = np.s_[:, :, i:i + k, j:j + k]
            dw += np.tensordot(dout[:, :, i, j], xp[sl], axes=([0], [0]))
            dxp[sl] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    return dxp[:, :, p:p + x.shape[2], p:p + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))


def pool_forward(x):
    """2x2 max pooling, stride 2."""
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2)
    return win.max(axis=(3, 5)), x


def pool_backward(dout, x):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2)
    mask = win == win.max(axis=(3, 5), keepdims=True)
    return (mask * dout[:, :, :, None, :, None]).reshape(x.shape)


def softmax_loss(scores, y):
    shifted = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y]).sum() / n
    d = p.copy()
    d[np.arange(n), y] -= 1
    return loss, d / n


# -- a small convolutional model and its own backward --------------------------------------------
@pytest.fixture(scope="module")
def cnn():
    # Seed 17 with conv biases near 0.5: the relu cuts 36% of its inputs, yet no 2x2 window
    # of its output is all zeros, so the pool has no kink at the point (tied maxima are tested
    # on their own in test_tied_max_pool_windows_after_relu).
    rng = np.random.default_rng(17)
    X = rng.normal(size=(2, 2, 6, 6))
    y = np.array([0, 2])
    p = {"w1": rng.normal(size=(3, 2, 3, 3)) * 0.3, "b1": 0.5 + rng.normal(size=3) * 0.1,
         "w2": rng.normal(size=(27, 3)) * 0.3, "b2": rng.normal(size=3) * 0.1}
    return X, y, p


def cnn_layers(p, conv_bwd=conv_backward, relu_bwd=relu_backward, pool_bwd=pool_backward,
               affine_bwd=affine_backward):
    conv_param = {"pad": 1}
    return [(conv_forward, conv_bwd, (p["w1"], p["b1"]), conv_param),
            (relu_forward, relu_bwd),
            (pool_forward, pool_bwd),
            (affine_forward, affine_bwd, (p["w2"], p["b2"]))]


def cnn_backward(X, y, p):
    """The model's own backward, written out as a user would."""
    h1, c1 = conv_forward(X, p["w1"], p["b1"], {"pad": 1})
    a1, c2 = relu_forward(h1)
    q1, c3 = pool_forward(a1)
    s, c4 = affine_forward(q1, p["w2"], p["b2"])
    _, ds = softmax_loss(s, y)
    dq1, dw2, db2 = affine_backward(ds, c4)
    da1 = pool_backward(dq1, c3)
    dh1 = relu_backward(da1, c2)
    dX, dw1, db1 = conv_backward(dh1, c1)
    return [(dw1, db1), None, None, (dw2, db2)], dX


def test_correct_model_passes(cnn):
    X, y, p = cnn
    grads, dX = cnn_backward(X, y, p)
    result = fastgc.check_model(cnn_layers(p), X, y, loss=softmax_loss, grads=grads, dX=dX)
    assert result.passed, result.report()
    assert result.guilty == [] and result.chain_passed is True
    assert [r.name for r in result.layers] == ["0:conv_forward", "1:relu_forward",
                                               "2:pool_forward", "3:affine_forward"]
    assert list(result.layers[0].params.blocks) == ["w", "b"]
    assert list(result.layers[0].input.blocks) == ["x"]
    assert result.layers[1].params is None  # relu has no parameters
    assert set(result.layers[0].chain) == {"w", "b", "X"}
    assert result.loss.passed
    assert "passed" in str(result)


def test_layer_bug_is_blamed_on_that_layer(cnn):
    X, y, p = cnn

    def conv_backward_db_doubled(dout, cache):
        dx, dw, db = conv_backward(dout, cache)
        return dx, dw, 2 * db

    grads, dX = cnn_backward(X, y, p)
    result = fastgc.check_model(cnn_layers(p, conv_bwd=conv_backward_db_doubled), X, y,
                                loss=softmax_loss)
    assert not result.passed
    assert result.guilty == ["0:conv_forward"]
    conv = result["0:conv_forward"]
    assert not conv.params.blocks["b"].passed and conv.params.blocks["w"].passed
    assert "2 x" in conv.params.blocks["b"].diagnosis
    assert all(r.passed for r in result.layers[1:]) and result.loss.passed
    assert "0:conv_forward" in result.verdict


def test_input_gradient_bug_is_blamed_on_that_layer(cnn):
    X, y, p = cnn

    def pool_backward_first_in_window(dout, x):  # routes to the window's corner, not its max
        out = np.zeros_like(x)
        out[:, :, ::2, ::2] = dout
        return out

    result = fastgc.check_model(cnn_layers(p, pool_bwd=pool_backward_first_in_window), X, y,
                                loss=softmax_loss)
    assert result.guilty == ["2:pool_forward"]
    assert not result["2:pool_forward"].input.passed
    assert all(r.passed for r in result.layers if r.index != 2)


def mlp_model(drop_relu=False):
    """affine-relu-affine-relu-affine with its own backward; ``drop_relu`` wires the backward
    wrongly: the second relu's input gradient is dropped (its output gradient goes straight
    to the affine below)."""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])
    ws = [(rng.normal(size=(4, 5)), rng.normal(size=5)), (rng.normal(size=(5, 5)),
          rng.normal(size=5)), (rng.normal(size=(5, 3)), rng.normal(size=3))]
    layers = [(affine_forward, affine_backward, ws[0]), (relu_forward, relu_backward),
              (affine_forward, affine_backward, ws[1]), (relu_forward, relu_backward),
              (affine_forward, affine_backward, ws[2])]
    caches, out = [], X
    for spec in layers:
        out, cache = spec[0](out, *(spec[2] if len(spec) > 2 else ()))
        caches.append(cache)
    dout, grads = softmax_loss(out, y)[1], [None] * 5
    for i in reversed(range(5)):
        if drop_relu and i == 3:
            continue
        back = layers[i][1](dout, caches[i])
        if isinstance(back, tuple):  # (dx, dw, db)
            dout, grads[i] = back[0], back[1:]
        else:
            dout = back
    return layers, X, y, grads, dout


def test_dropped_input_gradient_is_caught_by_the_chain():
    layers, X, y, grads, dX = mlp_model()
    assert fastgc.check_model(layers, X, y, loss=softmax_loss, grads=grads, dX=dX).passed
    layers, X, y, grads, dX = mlp_model(drop_relu=True)
    result = fastgc.check_model(layers, X, y, loss=softmax_loss, grads=grads, dX=dX)
    assert not result.passed
    assert all(r.passed for r in result.layers)  # every layer's own backward is right
    assert result.chain_passed is False
    assert result["4:affine_forward"].chain_passed is True
    assert result["2:affine_forward"].chain_passed is False
    assert result.guilty == ["2:affine_forward"]
    assert ("dropped or altered between layer 4:affine_forward, whose gradients agree, and "
            "layer 2:affine_forward") in result.verdict


def test_wrong_model_input_gradient_is_caught(cnn):
    X, y, p = cnn
    grads, dX = cnn_backward(X, y, p)
    result = fastgc.check_model(cnn_layers(p), X, y, loss=softmax_loss, grads=grads,
                                dX=-dX)
    assert not result.passed and result.guilty == ["0:conv_forward"]
    assert result.layers[0].chain["X"] > 0.5 and result.layers[0].chain["w"] == 0


def test_loss_bug_is_blamed_on_the_loss(cnn):
    X, y, p = cnn

    def bad_loss(scores, y):
        value, d = softmax_loss(scores, y)
        return value, d * len(y)  # forgets the 1/N

    result = fastgc.check_model(cnn_layers(p), X, y, loss=bad_loss)
    assert result.guilty == ["loss"] and all(r.passed for r in result.layers)


def test_a_perturbation_costs_one_layers_forward(cnn):
    X, y, p = cnn
    calls = {"conv": 0, "affine": 0}

    def counted(name, f):
        def forward(*a):
            calls[name] += 1
            return f(*a)
        return forward

    layers = cnn_layers(p)
    layers[0] = (counted("conv", conv_forward),) + layers[0][1:]
    layers[3] = (counted("affine", affine_forward),) + layers[3][1:]
    result = fastgc.check_model(layers, X, y, loss=softmax_loss)
    assert result.passed, result.report()
    # Each layer's forward runs for its own parameters and input entries only (both smaller
    # than input_subset here, so checked whole): the dense layer's parameters cost the conv
    # nothing, and the reverse.
    p_conv, p_affine = p["w1"].size + p["b1"].size, p["w2"].size + p["b2"].size
    # recorded pass, base points, vjp calls; and each of the layer's two checks (parameters,
    # input) measures the cost's noise: NOISE_NFEV evaluations, twice that when the table
    # needs its finer second pass
    extra = 12 + 2 * 2 * NOISE_NFEV
    assert 2 * (p_conv + X.size) <= calls["conv"] <= 2 * (p_conv + X.size) + extra
    n_pooled = 2 * 27
    assert 2 * (p_affine + n_pooled) <= calls["affine"] <= 2 * (p_affine + n_pooled) + extra


def test_full_input_check_finds_a_single_entry(cnn):
    X, y, p = cnn

    def relu_backward_one_entry(dout, x):
        d = dout * (x > 0)
        d[1, 2, 3, 4] += 1.0
        return d

    result = fastgc.check_model(cnn_layers(p, relu_bwd=relu_backward_one_entry), X, y,
                                loss=softmax_loss, input_check="full")
    assert result.guilty == ["1:relu_forward"]
    assert result["1:relu_forward"].input.mode == "full"
    assert result["1:relu_forward"].input.worst(1)[0].name == "x[1, 2, 3, 4]"


def test_without_loss_a_gaussian_cotangent_starts_the_chain(cnn):
    X, _, p = cnn
    result = fastgc.check_model(cnn_layers(p), X)
    assert result.passed and result.loss is None and result.chain_passed is None
    assert "not compared" in result.verdict


def test_tied_max_pool_windows_after_relu():
    # Windows of all zeros (the relu cut all four): J(x + h e_i) - J(x) = c h, J(x - h e_i) =
    # J(x), so the analytic c lies between the one-sided slopes 0 and c: a kink at the point,
    # judged by the one-sided rule, passes.
    x = np.zeros((1, 1, 2, 2))
    assert fastgc.check_layer(pool_forward, pool_backward_argmax, (x,)).passed


def pool_backward_argmax(dout, x):
    """Routes each window's gradient to its first maximum (a valid one-sided choice)."""
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    win = win.reshape(n, c, h // 2, w // 2, 4)
    first = np.argmax(win, axis=-1)[..., None] == np.arange(4)
    out = (first * dout[..., None]).reshape(n, c, h // 2, w // 2, 2, 2)
    return out.transpose(0, 1, 2, 4, 3, 5).reshape(x.shape)


# -- stateful objects -------------------------------------------------------------------------
class Dense:
    def __init__(self, n_in, n_out, rng):
        self.parameters = {"W": rng.normal(size=(n_in, n_out)), "b": rng.normal(size=n_out)}
        self.gradients = {"W": np.zeros((n_in, n_out)), "b": np.zeros(n_out)}
        self.seen = []

    def forward(self, X):
        self.seen.append(X)  # state that grows on every forward
        self.X = X
        return X @ self.parameters["W"] + self.parameters["b"]

    def backward(self, dY):
        self.gradients["W"] += self.X.T @ dY  # gradients accumulate
        self.gradients["b"] += dY.sum(axis=0)
        return dY @ self.parameters["W"].T


class Norm:
    """Batch normalisation with a running mean (not trainable)."""

    def __init__(self, n):
        self.parameters = {"gamma": np.linspace(0.5, 1.5, n), "beta": np.zeros(n),
                           "running_mean": np.zeros(n)}
        self.gradients = {"gamma": np.zeros(n), "beta": np.zeros(n)}

    def forward(self, X):
        mean, var = X.mean(axis=0), X.var(axis=0)
        self.parameters["running_mean"] *= 0.9
        self.parameters["running_mean"] += 0.1 * mean
        self.std = np.sqrt(var + 1e-5)
        self.xhat = (X - mean) / self.std
        return self.parameters["gamma"] * self.xhat + self.parameters["beta"]

    def backward(self, dY):
        self.gradients["gamma"] += (dY * self.xhat).sum(axis=0)
        self.gradients["beta"] += dY.sum(axis=0)
        dxhat = dY * self.parameters["gamma"]
        m = len(dY)
        return (m * dxhat - dxhat.sum(axis=0)
                - self.xhat * (dxhat * self.xhat).sum(axis=0)) / (m * self.std)


class Tanh:
    parameters = {}
    gradients = {}

    def forward(self, X):
        self.Y = np.tanh(X)
        return self.Y

    def backward(self, dY):
        return dY * (1 - self.Y ** 2)


def object_model():
    rng = np.random.default_rng(3)
    layers = [Dense(4, 5, rng), Norm(5), Tanh(), Dense(5, 3, rng)]
    return layers, rng.normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])


def test_object_model_passes_and_keeps_its_state():
    layers, X, y = object_model()
    for layer in layers:  # gradients left over from an earlier backward (they accumulate)
        for g in layer.gradients.values():
            g += 1.0
    before = [copy.deepcopy(layer.__dict__) for layer in layers]
    ids = [{k: id(v) for k, v in layer.__dict__.items()} for layer in layers]
    out = X  # the model's own forward and backward, on copies, as a user would
    model = copy.deepcopy(layers)
    for layer in model:
        for g in layer.gradients.values():
            g[...] = 0.0
    for layer in model:
        out = layer.forward(out)
    dout = softmax_loss(out, y)[1]
    for layer in reversed(model):
        dout = layer.backward(dout)
    result = fastgc.check_model(layers, X, y, loss=softmax_loss, exclude="running_mean",
                                grads=[m.gradients for m in model], dX=dout)
    assert result.passed, result.report()
    assert list(result.layers[1].params.blocks) == ["gamma", "beta"]
    for layer, old, old_ids in zip(layers, before, ids, strict=True):
        assert {k: id(v) for k, v in layer.__dict__.items()} == old_ids
        for k, v in old.items():
            np.testing.assert_equal(layer.__dict__[k], v)


def test_object_model_bug_is_blamed_on_that_object():
    layers, X, y = object_model()

    def backward(dY):  # Norm's backward without the mean-centring terms
        Norm.backward(layers[1], dY)
        return dY * layers[1].parameters["gamma"] / layers[1].std

    layers[1].backward = backward
    result = fastgc.check_model(layers, X, y, loss=softmax_loss, exclude="running_mean")
    assert result.guilty == ["1:Norm"], result.report()
    assert not result["1:Norm"].input.passed and result["1:Norm"].params.passed


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("layers, match", [
    ("conv", "layers must be a list"),
    ([], "layers is empty"),
    ([(relu_forward,)], r"layers\[0\] must be \(forward, backward\)"),
    ([42], r"layers\[0\] must be a \(forward, backward, params, args\) tuple"),
    ([(affine_forward, affine_backward, 3.0)], r"layers\[0\]'s params must be"),
], ids=["not-a-list", "empty", "short-tuple", "not-a-layer", "bad-params"])
def test_bad_layers(layers, match):
    with pytest.raises((TypeError, ValueError), match=match):
        fastgc.check_model(layers, np.ones((2, 3)))


def test_bad_options(cnn):
    X, y, p = cnn
    layers = cnn_layers(p)
    with pytest.raises(ValueError, match="input_check must be one of"):
        fastgc.check_model(layers, X, y, loss=softmax_loss, input_check="some")
    with pytest.raises(ValueError, match="grads must hold one entry per layer"):
        fastgc.check_model(layers, X, y, loss=softmax_loss, grads=[None])
    with pytest.raises(ValueError, match="grads for layer 3:affine_forward must give 2"):
        fastgc.check_model(layers, X, y, loss=softmax_loss,
                           grads=[None, None, None, (p["w2"],)])
    with pytest.raises(ValueError, match="dX has shape"):
        fastgc.check_model(layers, X, y, loss=softmax_loss, dX=np.ones(3))
    with pytest.raises(TypeError, match="loss must be callable"):
        fastgc.check_model(layers, X, y, loss="softmax")
    shared = Tanh()
    with pytest.raises(ValueError, match="the same layer object twice"):
        fastgc.check_model([shared, shared], np.ones((2, 3)))


def test_a_layer_bug_explains_the_chain_break_below_it():
    # The model's gradients come from a correct backward, fastgc's chain runs through a wrong
    # relu: the chain breaks below the relu, and the blame stays on the relu alone.
    layers, X, y, grads, dX = mlp_model()
    layers[3] = (relu_forward, lambda dout, x: dout * (x > 0.5))
    result = fastgc.check_model(layers, X, y, loss=softmax_loss, grads=grads, dX=dX)
    assert result.chain_passed is False and not result["3:relu_forward"].passed
    assert result.guilty == ["3:relu_forward"]


def test_model_tutorial_example_runs(capsys):
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    page = (root / "docs" / "tutorials" / "model.md").read_text()
    code = "\n".join(re.findall(r"```\{code-cell\} ipython3\n(.*?)```", page, re.S))
    scope = {}
    exec(compile(code, "model.md", "exec"), scope)
    assert scope["result"].guilty == ["0:affine_forward"]
    assert "check_model FAILED" in capsys.readouterr().out
