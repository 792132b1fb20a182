"""fastgc.jax on hand-written custom_vjp / custom_jvp rules: right ones pass in float64 and
float32, planted bugs fail in the right block, check_grads is a drop-in for jax's.

References are jax's own autodiff of the same forward in plain ops (``jax_ops``), never
fastgc; ``jax.test_util.check_grads`` is the reference for the drop-in's pass/fail. float64
runs inside ``jax.enable_x64(True)``, so the process-wide setting other tests see is untouched.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

jax = pytest.importorskip("jax")
fj = pytest.importorskip("fastgc.jax")

import jax.numpy as jnp  # noqa: E402
import jax_ops as ops  # noqa: E402  (after the importorskip)
from jax import test_util as jtu  # noqa: E402

F64, F32 = "float64", "float32"
INDEX = np.random.default_rng(3).integers(0, 10, 40)


def _dtype(dtype):
    """float64 needs x64 on, for this block only."""
    return jax.enable_x64(True) if dtype == F64 else contextlib.nullcontext()


def _inputs(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _leaky_inputs(dtype):
    return [np.linspace(-2, 2, 21).astype(dtype)]  # holds an exact 0: the kink


CASES = {
    # name: (factory, reference, inputs(dtype), block names)
    "layernorm": (ops.make_layernorm, ops.reference_layernorm,
                  lambda d: _inputs([(4, 16), (16,), (16,)], d), ["x", "g", "b"]),
    "attention": (ops.make_attention, ops.reference_attention,
                  lambda d: _inputs([(6, 8), (6, 8), (6, 8)], d), ["q", "k", "v"]),
    "conv": (ops.make_conv, ops.reference_conv,
             lambda d: _inputs([(1, 2, 6, 6), (3, 2, 3, 3)], d), ["x", "w"]),
    "rnn": (ops.make_rnn, ops.reference_rnn,
            lambda d: _inputs([(3, 4), (3, 5), (4, 5), (5, 5), (5,)], d),
            ["x", "h", "wx", "wh", "b"]),
    "leaky": (ops.make_leaky, ops.reference_leaky, _leaky_inputs, ["x"]),
    "gather": (lambda bug=None: ops.make_gather(INDEX, bug), ops.reference_gather(INDEX),
               lambda d: _inputs([(10,)], d), ["x"]),
}

BUGS = [  # (case, bug, block it is in)
    ("layernorm", "entry 1e-3", "x"),
    ("layernorm", "dropped term", "x"),
    ("layernorm", "missing reduction", "b"),
    ("attention", "factor 2", "v"),
    ("conv", "wrong sign", "w"),
    ("rnn", "transposed", "wh"),
    ("leaky", "wrong slope", "x"),
    ("gather", "overwrite", "x"),
]


def _named(f, names):
    """f behind a function whose parameters carry the blocks' names."""
    code = f"lambda {', '.join(names)}: f({', '.join(names)})"
    return eval(code, {"f": f})  # noqa: S307  (a fixed template, names from this file)


def _vjp(f, xs, c):
    """jax's own reverse mode (jitted: one compile instead of one per eager op)."""
    @jax.jit
    def pull(xs, c):
        out, pullback = jax.vjp(f, *xs)
        return pullback(c.astype(out.dtype))

    return [np.asarray(g, dtype=np.float64) for g in pull([jnp.asarray(x) for x in xs],
                                                         jnp.asarray(c))]


@pytest.mark.parametrize("name", list(CASES))
def test_the_hand_written_rules_are_right(name):
    # the premise of every test below: each rule equals jax's autodiff of the plain forward
    # (and a planted bug does not)
    make, reference, inputs, names = CASES[name]
    with _dtype(F64):
        xs = inputs(F64)
        c = np.random.default_rng(1).standard_normal(np.shape(reference(*xs)))
        for mine, theirs in zip(_vjp(make(), xs, c), _vjp(reference, xs, c), strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)
        for case, bug, block in BUGS:
            if case == name:
                k = names.index(block)
                wrong = _vjp(make(bug), xs, c)[k]
                assert not np.allclose(wrong, _vjp(reference, xs, c)[k], rtol=1e-5)


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("name", list(CASES))
def test_a_right_rule_passes(name, dtype):
    make, reference, inputs, names = CASES[name]
    with _dtype(dtype):
        xs = inputs(dtype)
        result = fj.check_vjp(_named(make(), names), *xs)
        assert result.passed, result.report(color=False)
        assert list(result.blocks) == names and result.dtype == dtype
        assert result.engine == "jax-vmap"
        # the numeric gradient is jax's autodiff gradient of the plain forward, in float64
        c = np.random.default_rng(0).standard_normal(np.shape(reference(*xs))).astype(dtype)
    with _dtype(F64):
        expected = _vjp(reference, [x.astype(F64) for x in xs], c.astype(F64))
    tol = 1e-6 if dtype == F64 else 1e-2
    for b, want in zip(result.blocks, expected, strict=True):
        got = result.numeric[b].ravel()
        want = want.ravel()
        # a kink at the point (leaky ReLU at 0) has no derivative: judged one-sidedly
        smooth = np.array([f"{b}[{i}]" not in result.kinks for i in range(got.size)])
        assert np.allclose(got[smooth], want[smooth], rtol=tol, atol=tol * np.abs(want).max())
    if name == "leaky":
        assert "x[10]" in result.kinks
    if dtype == F32:
        assert result.reference is not None and result.reference.passed
        assert result.threshold > 1e-6  # float32's resolution, from the measured noise
    assert not jax.config.jax_enable_x64 or dtype == F64


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize(("name", "bug", "block"), BUGS)
def test_a_planted_bug_fails_in_its_block(name, bug, block, dtype):
    make, _, inputs, names = CASES[name]
    # float32 alone must catch every bug it can resolve; a 1e-3 factor needs the float64
    # reference (tested there), so the others run without it
    reference = "auto" if dtype == F64 or bug == "entry 1e-3" else None
    with _dtype(dtype):
        result = fj.check_vjp(_named(make(bug), names), *inputs(dtype),
                              reference_dtype=reference)
    assert not result.passed
    failing = [b for b, r in result.blocks.items() if not r.passed]
    assert failing == [block], result.report(color=False)


def test_factor_and_entry_are_diagnosed():
    with _dtype(F64):
        result = fj.check_vjp(_named(ops.make_attention("factor 2"), ["q", "k", "v"]),
                              *_inputs([(6, 8)] * 3, F64))
        assert "2 x" in result.blocks["v"].diagnosis
        result = fj.check_vjp(_named(ops.make_layernorm("entry 1e-3"), ["x", "g", "b"]),
                              *_inputs([(4, 16), (16,), (16,)], F64))
        assert "x[0, 0]" in result.blocks["x"].diagnosis


def test_float32_bug_below_its_resolution_is_caught_by_the_float64_reference():
    xs = _inputs([(4, 16), (16,), (16,)], F32)
    f = _named(ops.make_layernorm("entry 1e-3"), ["x", "g", "b"])
    result = fj.check_vjp(f, *xs)
    assert not result.passed and not result.reference.passed
    assert "float64 reference" in result.blocks["x"].diagnosis
    assert not jax.config.jax_enable_x64  # the reference ran in a context, not globally
    alone = fj.check_vjp(f, *xs, reference_dtype=None)
    assert alone.reference is None and alone.passed  # below float32's resolution, said so
    assert any("float32 precision" in n for n in alone.notes)


JVP_CASES = {  # name: (factory, inputs(dtype), names, [(bug, block)])
    "layernorm": (ops.make_layernorm_jvp, lambda d: _inputs([(4, 16), (16,), (16,)], d),
                  ["x", "g", "b"], [("dropped term", "x"), ("wrong sign", "g")]),
    "leaky": (ops.make_leaky_jvp, _leaky_inputs, ["x"], [("wrong slope", "x")]),
}


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("name", list(JVP_CASES))
def test_check_jvp_checks_the_forward_rule(name, dtype):
    make, inputs, names, bugs = JVP_CASES[name]
    with _dtype(dtype):
        xs = inputs(dtype)
        result = fj.check_jvp(_named(make(), names), *xs, reference_dtype=None)
        assert result.passed, result.report(color=False)
        assert result.dtype == dtype and "forward mode" in result.notes[-1]
        for bug, block in bugs:
            wrong = fj.check_jvp(_named(make(bug), names), *xs, reference_dtype=None)
            assert [b for b, r in wrong.blocks.items() if not r.passed] == [block]
    if dtype == F64:  # the premise: the jvp rules are right (jax's autodiff of the forward)
        with _dtype(F64):
            t = [np.ones_like(x) for x in xs]
            plain = {"layernorm": ops.reference_layernorm, "leaky": ops.reference_leaky}[name]
            mine = jax.jvp(make(), xs, t)[1]
            np.testing.assert_allclose(mine, jax.jvp(plain, xs, t)[1], rtol=1e-10,
                                       atol=1e-12)


def test_pytree_arguments_are_named_by_path():
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((4, 5)), "layers": [rng.standard_normal(5)]}

    def model(params, x, n):
        h = jnp.tanh(x @ params["w"]) + params["layers"][0]
        return {"out": h * n, "count": jnp.arange(3)}  # an int output: not projected

    with _dtype(F64):
        result = fj.check_vjp(model, params, rng.standard_normal((2, 4)), 3)
    assert result.passed
    assert list(result.blocks) == ["params.layers.0", "params.w", "x"]
    assert params["w"].dtype == np.float64  # the user's arrays are untouched
    with _dtype(F64):
        result = fj.check_vjp(model, params, rng.standard_normal((2, 4)), 3, exclude="x")
    assert list(result.blocks) == ["params.layers.0", "params.w"]


def test_vmap_where_it_works_one_call_per_point_where_it_does_not(monkeypatch):
    xs = _inputs([(4, 16), (16,), (16,)], F64)
    f = _named(ops.make_layernorm(), ["x", "g", "b"])
    with _dtype(F64):
        batched = fj.check_vjp(f, *xs)
        looped = fj.check_vjp(f, *xs, batching="loop")
    assert (batched.engine, batched.batched) == ("jax-vmap", True)
    assert (looped.engine, looped.batched) == ("jax-loop", False)
    # the same numbers either way: a batched call rounds its own way, ~1e-14 in the cost,
    # which over a step of ~6e-6 is ~1e-9 in a difference quotient
    for b in batched.blocks:
        assert np.allclose(batched.numeric[b], looped.numeric[b], rtol=1e-7, atol=1e-9)

    # a large problem's points are formed on the device from indices and steps instead of
    # sent as displacements: the same points, the same numbers
    monkeypatch.setattr(fj, "_DENSE_ENTRIES", 0)
    with _dtype(F64):
        on_device = fj.check_vjp(f, *xs)
    for b in batched.blocks:
        assert np.allclose(batched.numeric[b], on_device.numeric[b], rtol=1e-7, atol=1e-9)
    assert on_device.passed

    def data_dependent(x):  # Python control flow on a value: neither jit nor vmap traces it
        return jnp.sin(x) if x.sum() > 0 else jnp.cos(x)

    x = np.linspace(0.1, 1.0, 6)
    with _dtype(F64):
        result = fj.check_vjp(data_dependent, x)
        assert result.passed and result.engine == "jax-loop"
        assert any("jax.vmap cannot evaluate" in n for n in result.notes)
        with pytest.raises(ValueError, match="batching='vmap'"):
            fj.check_vjp(data_dependent, x, batching="vmap")


def test_check_grads_is_a_drop_in():
    # jax's own check_grads is the reference where it is right ...
    with _dtype(F64):
        xs = tuple(_inputs([(4, 4)] * 3, F64))
        for bug in (None, "factor 2"):
            f = ops.make_attention(bug)
            try:
                jtu.check_grads(f, xs, order=1, modes=("rev",))
                theirs = True
            except AssertionError:
                theirs = False
            assert theirs is (bug is None)
            if theirs:
                assert fj.check_grads(f, xs, order=1, modes=("rev",)) is None
            else:
                with pytest.raises(AssertionError, match="VJP"):
                    fj.check_grads(f, xs, order=1, modes=("rev",))
        # order 2 on jax's own derivatives: the VJP of the VJP passes
        fj.check_grads(jnp.tanh, (np.linspace(-1, 1, 5),), order=2, modes=("rev",))
    # ... and where it is wrong: in float32 (jax's default) its one random direction misses
    # a 1e-3 error on one entry; fastgc's float64 reference check finds it
    xs = tuple(_inputs([(4, 16), (16,), (16,)], F32))
    f = ops.make_layernorm("entry 1e-3")
    jtu.check_grads(f, xs, order=1, modes=("rev",))
    with pytest.raises(AssertionError, match=r"x|input0"):
        fj.check_grads(f, xs, order=1, modes=("rev",))
    # a wrong custom_jvp rule is a fwd failure
    with pytest.raises(AssertionError, match="JVP"):
        fj.check_grads(ops.make_leaky_jvp("wrong slope"), (np.linspace(-2, 2, 21),), order=1,
                       modes=("fwd",))


def test_bad_input_is_named():
    x = np.linspace(0, 1, 3)
    with pytest.raises(TypeError, match="f must be callable"):
        fj.check_vjp(3, x)
    with pytest.raises(ValueError, match="no floating-point argument"):
        fj.check_vjp(jnp.sin, np.arange(3))
    with pytest.raises(ValueError, match="batching must be"):
        fj.check_vjp(jnp.sin, x, batching="fast")
    with pytest.raises(ValueError, match=r"cotangent\[0\] has shape"):
        fj.check_vjp(jnp.sin, x, cotangent=np.ones(4))
    with pytest.raises(ValueError, match="exclude names 'y'"):
        fj.check_vjp(jnp.sin, x, exclude="y")
    with pytest.raises(ValueError, match="nondet_tol"):
        fj.check_vjp(jnp.sin, x, nondet_tol=-1)
    with pytest.raises(ValueError, match="order must be"):
        fj.check_grads(jnp.sin, (x,), order=0)
    with pytest.raises(ValueError, match="modes must"):
        fj.check_grads(jnp.sin, (x,), order=1, modes="rev")


def test_examples_run():
    import doctest

    result = doctest.testmod(fj, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_import_fastgc_does_not_import_jax():
    import subprocess
    import sys

    code = ("import sys, fastgc; fastgc.check; fastgc.check_vjp; a = 'jax' in sys.modules; "
            "import fastgc.jax; print(a, 'jax' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True", "False"]
    import fastgc

    assert fastgc.jax is fj


def test_a_second_check_of_the_same_op_reuses_its_compiled_functions():
    # the cache is keyed by what the traced code depends on: a Python leaf that changes
    # (the power here) must not reuse the first check's functions
    def power(x, n):
        return x ** n

    x = np.linspace(0.5, 1.5, 5)
    with _dtype(F64):
        for n in (2, 3, 3):
            result = fj.check_vjp(power, x, n, cotangent=np.ones(5))
            assert result.passed
            np.testing.assert_allclose(result.numeric["x"], n * x ** (n - 1), rtol=1e-6)
    assert all(not isinstance(v, jax.Array) for kit in fj._KITS.values()
               for v in vars(kit).values())
