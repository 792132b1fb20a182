"""fastgc.torch on hand-written autograd.Functions: right ones pass in float64 and float32,
planted bugs fail in the right block, nondeterminism is named, modules are left as they were.

References are torch's own autograd of the same forward in plain ops (``torch_ops``), never
fastgc; torch.autograd.gradcheck is the reference for the drop-in's pass/fail.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastgc.torch")

import torch.nn.functional as F  # noqa: E402
import torch_ops as ops  # noqa: E402  (after the importorskip)
from torch.autograd.gradcheck import GradcheckError  # noqa: E402

F64, F32 = torch.float64, torch.float32


def _inputs(shapes, dtype, seed=0, grad=True):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=F64).to(dtype).requires_grad_(grad)
            for s in shapes]


def _leaky_inputs(dtype):
    x = torch.linspace(-2, 2, 21, dtype=F64)  # holds an exact 0: a kink at the point
    return [x.to(dtype).requires_grad_(True)]


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
}

BUGS = [  # (case, bug, block it is in)
    ("layernorm", "entry 1e-3", "x"),
    ("layernorm", "dropped term", "x"),
    ("layernorm", "missing reduction", "b"),
    ("attention", "factor 2", "v"),
    ("conv", "wrong sign", "w"),
    ("rnn", "transposed", "wh"),
    ("leaky", "wrong slope", "x"),
]


def _autograd(fn, inputs, cotangent):
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    return torch.autograd.grad(fn(*leaves), leaves, cotangent)


@pytest.mark.parametrize("name", list(CASES))
def test_the_hand_written_backwards_are_right(name):
    # the premise of every test below: each op's backward equals torch's autograd of the same
    # forward in plain ops (and a planted bug does not)
    make, reference, inputs, _ = CASES[name]
    xs = inputs(F64)
    c = torch.randn(reference(*xs).shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    for mine, theirs in zip(_autograd(make().apply, xs, c), _autograd(reference, xs, c),
                            strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    for case, bug, block in BUGS:
        if case == name:
            k = CASES[name][3].index(block)
            wrong = _autograd(make(bug).apply, xs, c)[k]
            assert not torch.allclose(wrong, _autograd(reference, xs, c)[k], rtol=1e-5)


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_right_backward_passes(name, dtype):
    make, reference, inputs, names = CASES[name]
    xs = inputs(dtype)
    result = ft.check(make().apply, *xs)
    assert result.passed, result.report(color=False)
    assert list(result.blocks) == [f"input{i}" for i in range(len(names))]
    assert result.dtype == str(dtype).removeprefix("torch.")
    # the numeric gradient is torch's autograd gradient of the plain forward
    c = [torch.as_tensor(np.random.default_rng(0).standard_normal(tuple(reference(*xs).shape)))
         .to(dtype)]
    expected = _autograd(reference, [x.double() for x in xs], c[0].double())
    tol = 1e-6 if dtype == F64 else 1e-2
    for b, want in zip(result.blocks, expected, strict=True):
        got, want = result.numeric[b].ravel(), want.numpy().ravel()
        # a kink at the point (leaky ReLU at 0) has no derivative: judged one-sidedly instead
        smooth = [f"{b}[{i}]" not in result.kinks and f"{b}[{', '.join(map(str, ix))}]"
                  not in result.kinks
                  for i, ix in enumerate(np.ndindex(result.numeric[b].shape))]
        assert np.allclose(got[smooth], want[smooth], rtol=tol, atol=tol * np.abs(want).max())
    if name == "leaky":
        assert "input0[10]" in result.kinks
    if dtype == F32:
        assert result.reference is not None and result.reference.passed
        assert result.threshold > 1e-6  # its own dtype's resolution, from the measured noise


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "bug", "block"), BUGS)
def test_a_planted_bug_fails_in_its_block(name, bug, block, dtype):
    make, _, inputs, names = CASES[name]
    result = ft.check(make(bug).apply, *inputs(dtype))
    assert not result.passed
    failing = [b for b, r in result.blocks.items() if not r.passed]
    assert failing == [f"input{names.index(block)}"], result.report(color=False)


def test_blocks_are_named_after_the_functions_arguments():
    fn = ops.make_rnn().apply

    def rnn(x, h, wx, wh, b):
        return fn(x, h, wx, wh, b)

    xs = _inputs([(3, 4), (3, 5), (4, 5), (5, 5), (5,)], F64)
    xs[0].requires_grad_(False)  # passed through, not checked
    result = ft.check(rnn, *xs)
    assert list(result.blocks) == ["h", "wx", "wh", "b"]
    bad = ops.make_rnn("transposed").apply
    result = ft.check(lambda x, h, wx, wh, b: bad(x, h, wx, wh, b), *xs)
    assert [b for b, r in result.blocks.items() if not r.passed] == ["wh"]


def test_factor_and_entry_are_diagnosed():
    xs = _inputs([(6, 8)] * 3, F64)
    result = ft.check(ops.make_attention("factor 2").apply, *xs)
    assert "2 x" in result.blocks["input2"].diagnosis
    result = ft.check(ops.make_layernorm("entry 1e-3").apply,
                      *_inputs([(4, 16), (16,), (16,)], F64))
    assert "input0[0, 0]" in result.blocks["input0"].diagnosis


def test_float32_bug_below_its_resolution_is_caught_by_the_float64_reference():
    xs = _inputs([(4, 16), (16,), (16,)], F32)
    result = ft.check(ops.make_layernorm("entry 1e-3").apply, *xs)
    assert not result.passed and not result.reference.passed
    assert "float64 reference" in result.blocks["input0"].diagnosis
    # without the reference, the float32 check alone cannot resolve it (and says what it can)
    alone = ft.check(ops.make_layernorm("entry 1e-3").apply, *xs, reference_dtype=None)
    assert alone.reference is None
    assert any("float32" in n for n in alone.notes)


def test_vmap_where_it_works_one_call_per_point_where_it_does_not():
    xs = _inputs([(4, 16), (16,), (16,)], F64)
    batched = ft.check(ops.make_layernorm().apply, *xs)
    looped = ft.check(ops.make_layernorm(old_style=True).apply, *xs)
    assert (batched.engine, batched.batched) == ("torch-vmap", True)
    assert (looped.engine, looped.batched) == ("torch-loop", False)
    assert any("setup_context" in n for n in looped.notes)
    # the same numbers either way (a batched call rounds its own way: within 1e-9)
    for b in batched.blocks:
        assert np.allclose(batched.numeric[b], looped.numeric[b], rtol=1e-9, atol=1e-12)
    forced = ft.check(ops.make_layernorm().apply, *xs, batching="loop")
    assert forced.engine == "torch-loop"
    with pytest.raises(ValueError, match="batching='vmap'"):
        ft.check(ops.make_layernorm(old_style=True).apply, *xs, batching="vmap")


def test_a_batched_call_that_disagrees_with_single_calls_falls_back():
    # data-dependent code that vmap runs without complaint but evaluates differently:
    # the batch's mean stands in for the point's own
    calls = []

    def fn(x):
        calls.append(x.shape)
        return torch.sin(x) * x.sum()

    (x,) = _inputs([(5,)], F64)
    result = ft.check(fn, x)
    assert result.passed and result.engine == "torch-vmap"  # vmap is right here

    def leaky_global(x):  # reads a Python float from the tensor: vmap refuses .item()
        return x * float(x.detach().abs().max())

    result = ft.check(leaky_global, x)
    assert result.engine == "torch-loop"


def test_nondeterministic_backward_is_reported_as_such():
    index = torch.as_tensor(np.random.default_rng(3).integers(0, 10, 60))
    (x,) = _inputs([(10,)], F32)
    op = ops.make_gather(index, shuffle=np.random.default_rng(4))
    result = ft.check(op.apply, x, reference_dtype=None)
    assert not result.passed and result.nondeterminism > 0
    assert "nondeterministic" in result.blocks["input0"].diagnosis
    tolerant = ft.check(op.apply, x, reference_dtype=None, nondet_tol=1e-4)
    assert tolerant.passed and 0 < tolerant.nondeterminism <= 1e-4
    assert any("nondeterministic within" in n for n in tolerant.notes)
    # a deterministic scatter-add passes; one that overwrites instead of adding fails
    assert ft.check(ops.make_gather(index).apply, x).passed
    wrong = ft.check(ops.make_gather(index, bug="overwrite").apply, x)
    assert not wrong.passed and not wrong.blocks["input0"].passed


def test_user_tensors_are_not_modified():
    xs = _inputs([(4, 16), (16,), (16,)], F32)
    before = [x.detach().clone() for x in xs]
    ft.check(ops.make_layernorm().apply, *xs)
    for x, b in zip(xs, before, strict=True):
        assert torch.equal(x, b) and x.grad is None and x.dtype == F32


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6),
                               torch.nn.Dropout(0.3), torch.nn.Tanh(),
                               torch.nn.Linear(6, 2)).double()


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_module_state_is_left_as_it_was(train):
    net = _net().train(train)
    x = torch.randn(5, 4, dtype=F64, requires_grad=True)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    result = ft.check_module(net, x)
    assert result.passed, result.report(color=False)
    assert list(result.blocks) == ["input", "0.weight", "0.bias", "1.weight", "1.bias",
                                   "4.weight", "4.bias"]
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())
    assert all(m.training == train for m in net.modules())
    assert x.grad is None and all(p.grad is None for p in net.parameters())


def test_check_module_with_a_loss_and_a_planted_bug():
    class Norm(torch.nn.Module):
        def __init__(self, bug=None):
            super().__init__()
            self.g = torch.nn.Parameter(torch.linspace(0.5, 1.5, 16, dtype=F64))
            self.b = torch.nn.Parameter(torch.linspace(-1, 1, 16, dtype=F64))
            self.op = ops.make_layernorm(bug)

        def forward(self, x):
            return self.op.apply(x, self.g, self.b)

    x = _inputs([(4, 16)], F64, grad=False)[0]
    loss = lambda y: (y.sin() ** 2).sum()  # noqa: E731
    assert ft.check_module(Norm(), x, loss=loss).passed
    result = ft.check_module(Norm("missing reduction"), x, loss=loss)
    assert [b for b, r in result.blocks.items() if not r.passed] == ["b"]
    assert ft.check_module(Norm(), x, directions=2).passed


def test_directions_and_subset_options_carry_over():
    xs = _inputs([(4, 16), (16,), (16,)], F64)
    good, bad = ops.make_layernorm().apply, ops.make_layernorm("entry 1e-3").apply
    assert ft.check(good, *xs, directions=2).mode == "directions"
    found = ft.check(bad, *xs, directions=2)
    assert not found.passed and not found.blocks["input0"].passed
    assert ft.check(good, *xs, subset=10).mode == "subset"
    assert ft.check(good, *xs, exclude="input1").notes[-1].startswith("excluded")


def test_bad_input_is_named():
    x = torch.randn(3, dtype=F64)
    with pytest.raises(ValueError, match="no input requires grad"):
        ft.check(torch.sin, x)
    with pytest.raises(TypeError, match="fn must be callable"):
        ft.check(3, x)
    with pytest.raises(ValueError, match="batching must be"):
        ft.check(torch.sin, x.requires_grad_(), batching="fast")
    with pytest.raises(ValueError, match="cotangent has shape|cotangent\\[0\\] has shape"):
        ft.check(torch.sin, x, cotangent=torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="exclude names 'y'"):
        ft.check(torch.sin, x, exclude="y")
    with pytest.raises(ValueError, match="nondet_tol"):
        ft.check(torch.sin, x, nondet_tol=-1)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ft.check_module(torch.sin, x)


# -- the gradcheck drop-in ------------------------------------------------------------------------
def _ln(bug=None, dtype=F64):
    return ops.make_layernorm(bug).apply, tuple(_inputs([(4, 16), (16,), (16,)], dtype))


def _torch_verdict(func, inputs, **kw):
    try:
        return torch.autograd.gradcheck(func, inputs, **kw)
    except GradcheckError:
        return False


GRADCHECK_CASES = {  # name: (func, inputs, keywords); torch is right on these
    "sin": (torch.sin, (torch.rand(5, dtype=F64, requires_grad=True),), {}),
    "layernorm": (*_ln(), {}),
    "layernorm fast": (*_ln(), {"fast_mode": True}),
    "factor 2": (ops.make_attention("factor 2").apply, tuple(_inputs([(6, 8)] * 3, F64)), {}),
    "factor 2 fast": (ops.make_attention("factor 2").apply, tuple(_inputs([(6, 8)] * 3, F64)),
                      {"fast_mode": True}),
    "wrong sign": (ops.make_conv("wrong sign").apply,
                   tuple(_inputs([(1, 2, 6, 6), (3, 2, 3, 3)], F64)), {"atol": 1e-4}),
    "dropped term": (*_ln("dropped term"), {"eps": 1e-6, "rtol": 1e-3}),
    "one tensor": (torch.tanh, torch.rand(3, 2, dtype=F64, requires_grad=True), {}),
    # the shapes of call torch's own test suites use: several inputs, a non-tensor argument,
    # an input without grad, several outputs (one of them integer), delegated extra checks
    "linear": (F.linear, tuple(_inputs([(3, 4), (5, 4), (5,)], F64)), {}),
    "int argument": (lambda x, n: x ** n, (_inputs([(3, 4)], F64)[0], 3), {}),
    "input without grad": (lambda x, y: x * y, (_inputs([(3, 4)], F64)[0],
                                                torch.ones(3, 4, dtype=F64)), {}),
    "two outputs": (lambda x: (x.sin(), x.cos().sum(0), torch.arange(3)),
                    (_inputs([(3, 4)], F64)[0],), {}),
    "forward ad delegated": (torch.sin, (_inputs([(3, 4)], F64)[0],),
                             {"check_forward_ad": True}),
    "batched grad delegated": (torch.tanh, (_inputs([(3, 4)], F64)[0],),
                               {"check_batched_grad": True}),
    "wrong old-style fast": (ops.make_rnn("transposed", old_style=True).apply,
                             tuple(_inputs([(3, 4), (3, 5), (4, 5), (5, 5), (5,)], F64)),
                             {"fast_mode": True}),
}


@pytest.mark.parametrize("name", list(GRADCHECK_CASES))
def test_gradcheck_agrees_with_torch_where_torch_is_right(name):
    func, inputs, kw = GRADCHECK_CASES[name]
    expected = _torch_verdict(func, inputs, **kw)
    if expected:
        assert ft.gradcheck(func, inputs, **kw) is True
    else:
        with pytest.raises(GradcheckError, match="fastgc"):
            ft.gradcheck(func, inputs, **kw)
        assert ft.gradcheck(func, inputs, raise_exception=False, **kw) is False


def test_gradcheck_where_torch_is_wrong():
    # torch misses a 1e-3 error on one entry (rtol=1e-3) ...
    func, inputs = _ln("entry 1e-3")
    assert torch.autograd.gradcheck(func, inputs)
    with pytest.raises(GradcheckError, match=r"input0\[0, 0\]"):
        ft.gradcheck(func, inputs)
    # ... and fails a right float32 op, which fastgc passes
    func, inputs = _ln(dtype=F32)
    with pytest.warns(UserWarning):
        assert _torch_verdict(func, inputs) is False
    assert ft.gradcheck(func, inputs) is True


def test_gradcheck_nondeterminism_follows_nondet_tol():
    index = torch.as_tensor(np.random.default_rng(3).integers(0, 10, 60))
    op = ops.make_gather(index, shuffle=np.random.default_rng(5))
    x = (torch.randn(10, dtype=F64, generator=torch.Generator().manual_seed(2))
         .requires_grad_(True))
    # torch sees it with a random output gradient (fast mode); its slow mode's one-hot ones
    # have one contribution per entry, whose order cannot matter
    assert _torch_verdict(op.apply, (x,), fast_mode=True) is False  # "not reentrant"
    for fast in (False, True):
        assert ft.gradcheck(op.apply, (x,), raise_exception=False, fast_mode=fast) is False
        assert torch.autograd.gradcheck(op.apply, (x,), nondet_tol=1e-10, fast_mode=fast)
        assert ft.gradcheck(op.apply, (x,), nondet_tol=1e-10, fast_mode=fast)


def test_examples_run():
    import doctest

    result = doctest.testmod(ft, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_import_fastgc_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, fastgc; fastgc.check; fastgc.check_vjp; "
            "print('torch' in sys.modules, 'jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
    import fastgc

    assert fastgc.torch is ft
