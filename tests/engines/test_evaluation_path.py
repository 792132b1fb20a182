"""The evaluation path of black-box checks: one working copy perturbed in place and restored
exactly, the user's function called on the same argument objects at every point, and the
user's arrays never modified (issue 21)."""

import copy

import numpy as np
import pytest

import fastgc
from fastgc._core.layout import Layout
from fastgc._engines.loop import LoopObjective


def _affine_forward(x, w, b):
    return x @ w + b, (x, w)


def _affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=2)


def test_loop_engine_restores_the_working_copy_bit_for_bit_after_an_error():
    rng = np.random.default_rng(1)
    params = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    layout, theta = Layout.of(params)
    calls = []

    def cost(p):
        calls.append(1)
        if len(calls) == 5 and fail:  # the 4th perturbed point (the 1st call: the base cost)
            raise RuntimeError("boom")
        return float(np.sum(np.sin(p["a"])) + p["b"] @ p["b"])

    fail = True
    engine = LoopObjective(cost, layout, theta)
    index = np.arange(layout.size)
    step = np.full(layout.size, 0.25)  # large: a bad restore would show in every bit
    with pytest.raises(RuntimeError, match="boom") as info:
        engine.at_coordinates(index, step)
    assert "raised by the cost at a[1, 1] + 0.25" in "".join(getattr(info.value, "__notes__", []))
    assert engine._work.tobytes() == theta.tobytes()
    # and the next request starts from theta: the same values as a fresh engine's
    fail = False
    fresh = LoopObjective(cost, layout, theta)
    np.testing.assert_array_equal(engine.at_coordinates(index, step).values,
                                  fresh.at_coordinates(index, step).values)


def test_loop_engine_values_are_the_plain_differences():
    # The reference: J(theta + s e_i) - J(theta) computed by hand, bit for bit.
    rng = np.random.default_rng(2)
    x0 = rng.normal(size=6)

    def cost(x):
        return float(np.sum(x ** 3) - x[0] * x[1])

    engine = LoopObjective(cost, *Layout.of(x0))
    index = np.array([0, 3, 5, 3])
    step = np.array([1e-3, -2e-4, 5e-2, 2e-4])
    expected = []
    for i, s in zip(index, step, strict=True):
        x = x0.copy()
        x[i] += s
        expected.append(cost(x) - cost(x0))
    assert engine.at_coordinates(index, step).values.tolist() == expected


def test_check_layer_calls_forward_on_the_same_read_only_arrays_and_leaves_the_users():
    x, w, b = _inputs()
    before = [a.copy() for a in (x, w, b)]
    seen = []

    def forward(x, w, b):
        seen.append((id(x), id(w), id(b), x.flags.writeable or w.flags.writeable))
        assert w is not before[1]
        return _affine_forward(x, w, b)

    result = fastgc.check_layer(forward, _affine_backward, (x, w, b))
    assert result.passed
    for a, saved in zip((x, w, b), before, strict=True):
        assert a.tobytes() == saved.tobytes()
    # every perturbed point of the check reuses one binding of read-only views (the backward's
    # calls get copies of their own)
    counts = {}
    for key in seen:
        counts[key] = counts.get(key, 0) + 1
    key, count = max(counts.items(), key=lambda kv: kv[1])
    assert count >= 2 * (x.size + w.size + b.size) and not key[3]


def test_check_layer_array_argument_is_read_only_and_the_callers_is_untouched():
    x, w, b = _inputs()
    mask = np.array([1.0, 0.0])
    saved = mask.copy()

    def forward(x, w, b, mask):
        return (x @ w + b) * mask, (x, w, mask)

    def backward(dout, cache):
        x, w, mask = cache
        d = dout * mask
        return d @ w.T, x.T @ d, d.sum(axis=0)

    assert fastgc.check_layer(forward, backward, (x, w, b), mask).passed
    assert mask.tobytes() == saved.tobytes()

    def writes_its_argument(x, w, b, mask):
        mask *= 2.0
        return forward(x, w, b, mask)

    with pytest.raises(ValueError, match="read-only"):
        fastgc.check_layer(writes_its_argument, backward, (x, w, b), mask)
    assert mask.tobytes() == saved.tobytes()


def test_check_layer_dict_argument_is_fresh_for_every_call():
    # A forward that moves statistics in a dict it is given sees the caller's values at
    # every point (a deep copy per call), and the caller's dict does not move.
    x, w, b = _inputs()
    param = {"scale": 1.5, "calls": 0}
    saved = copy.deepcopy(param)
    seen = []

    def forward(x, w, b, param):
        seen.append(param["calls"])
        param["calls"] += 1
        return param["scale"] * (x @ w + b), (x, w, param["scale"])

    def backward(dout, cache):
        x, w, s = cache
        d = s * dout
        return d @ w.T, x.T @ d, d.sum(axis=0)

    assert fastgc.check_layer(forward, backward, (x, w, b), param).passed
    assert set(seen) == {0} and param == saved


def test_check_layer_results_equal_the_check_of_the_hand_written_cost():
    # check_layer is check() of <c, forward(x)> with c drawn as documented: the same bits.
    x, w, b = _inputs(3)
    c = np.random.default_rng(0).standard_normal((3, 2))
    result = fastgc.check_layer(_affine_forward, _affine_backward, (x, w, b), cotangent=c)

    def cost(p):
        return 0.0 + np.sum(c * (p["x"] @ p["w"] + p["b"]))

    dx, dw, db = _affine_backward(c, (x, w))
    direct = fastgc.check(cost, {"x": dx, "w": dw, "b": db}, {"x": x, "w": w, "b": b})
    for k in ("x", "w", "b"):
        assert result.numeric[k].tobytes() == direct.numeric[k].tobytes()


def test_a_transposed_weight_reaches_the_cost_in_its_own_memory_order():
    # The cost gets views laid out as the user's arrays (a transposed weight stays
    # F-ordered, so its matrix products run as fast as on the user's own array), and each
    # coordinate is still the entry it names: the gradient of sum(M * w) is M, not M.T.
    rng = np.random.default_rng(4)
    w = np.ascontiguousarray(rng.normal(size=(3, 5))).T  # (5, 3), F order
    M = rng.normal(size=(5, 3))
    v = rng.normal(size=4)
    seen = []

    def cost(p):
        seen.append((p["w"].flags.f_contiguous, p["w"].flags.c_contiguous))
        return float(np.sum(M * p["w"]) + np.sum(np.sin(p["v"])))

    before = w.copy(order="A")
    for method in ("central", "complex"):
        if method == "complex":
            def cost(p):  # noqa: F811  (complex-safe: no float())
                seen.append((p["w"].flags.f_contiguous, p["w"].flags.c_contiguous))
                return np.sum(M * p["w"]) + np.sum(np.sin(p["v"]))
        result = fastgc.check(cost, {"w": M, "v": np.cos(v)}, {"w": w, "v": v},
                              engine="loop", method=method)
        assert result.passed, result.report()
        # linear in w: only rounding, eps |J| / h ~ 1e-10; a transposed mapping is off by O(1)
        np.testing.assert_allclose(result.numeric["w"], M, rtol=0, atol=1e-8)
    d = fastgc.check(cost, {"w": M, "v": np.cos(v)}, {"w": w, "v": v}, engine="loop",
                     directions=3)
    assert d.passed, d.report()
    assert set(seen) == {(True, False)}
    assert w.tobytes(order="A") == before.tobytes(order="A") and w.flags.f_contiguous


class _Dense:
    """A stateful layer: inputs appended to a list, gradients accumulated."""

    def __init__(self, buffer=False):
        rng = np.random.default_rng(5)
        self.parameters = {"W": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}
        self.gradients = {"W": np.zeros((4, 3)), "b": np.zeros(3)}
        self.inputs = []
        self.buffer = np.zeros((2, 3)) if buffer else None

    def forward(self, X):
        self.inputs.append(X)
        out = np.tanh(X @ self.parameters["W"] + self.parameters["b"])
        if self.buffer is not None:
            self.buffer[...] = out  # in place into its own state
        return out

    def backward(self, dY):
        X = self.inputs[-1]
        d = dY * (1 - np.tanh(X @ self.parameters["W"] + self.parameters["b"]) ** 2)
        self.gradients["W"] += X.T @ d
        self.gradients["b"] += d.sum(axis=0)
        return d @ self.parameters["W"].T


def _module_check(layer):
    X = np.random.default_rng(6).normal(size=(2, 4))
    return fastgc.check_module(layer, X)


def test_check_module_evaluations_share_arrays_but_not_containers():
    # The engine's points run on one set of read-only parameter views, each with a fresh
    # inputs list (what a forward appends to never reaches the next point).
    log = []

    class Recording(_Dense):
        def forward(self, X):
            log.append((id(self.parameters["W"]), len(self.inputs),
                        self.parameters["W"].flags.writeable))
            return super().forward(X)

    assert _module_check(Recording()).passed
    ids = [w for w, _, _ in log]
    shared = max(set(ids), key=ids.count)
    assert ids.count(shared) >= 2 * (8 + 12 + 3)  # every perturbed point
    assert all(n == 0 and not writeable for w, n, writeable in log if w == shared)


def test_check_module_results_agree_across_the_lean_and_the_full_path():
    # A forward writing into an array of its state in place cannot run on shared read-only
    # arrays: the check falls back to a full copy per call, and computes the same bits.
    lean, full = _module_check(_Dense()), _module_check(_Dense(buffer=True))
    assert lean.passed and full.passed
    for k in ("X", "W", "b"):
        assert lean.numeric[k].tobytes() == full.numeric[k].tobytes()
    layer = _Dense(buffer=True)
    before = copy.deepcopy(layer.__dict__)
    _module_check(layer)
    assert layer.buffer.tobytes() == before["buffer"].tobytes() and layer.inputs == []
