"""The network engine's two paths: numba kernels, or their source interpreted (the numpy
path: no JIT, for small checks on a machine that has not compiled them). Which one runs is
pinned here, and both must give the same bits (issue 21)."""

import math
import types

import numpy as np
import pytest
from problems import network_problem

import fastgc
from fastgc._engines import jit

CASES = [((4, 5, 3, 1), "relu", "bce", "binary"),
         ((5, 7, 6, 2), ["tanh", "sigmoid", "sigmoid"], "bce", "binary"),
         ((3, 4, 4, 4, 2), ["relu", "leaky_relu", "tanh", "softmax"], "ce", "onehot")]


def _fake_kernel(tmp_path, cached, compiled=False):
    index = tmp_path / "kernel.nbi"
    if cached:
        index.write_bytes(b"")
    cache = types.SimpleNamespace(_cache_file=types.SimpleNamespace(_index_path=str(index)))
    return types.SimpleNamespace(signatures=["sig"] if compiled else [], _cache=cache)


def test_the_choice_of_path(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTGC_JIT", raising=False)
    small, large = 10, jit.INTERPRET_WORK
    cold = _fake_kernel(tmp_path, cached=False)
    assert not jit.compiled_path(cold, small)  # nothing compiled anywhere: interpret
    assert jit.compiled_path(cold, large)  # worth a compile
    assert jit.compiled_path(_fake_kernel(tmp_path, cached=False, compiled=True), small)
    assert jit.compiled_path(_fake_kernel(tmp_path, cached=True), small)  # a cache load
    monkeypatch.setenv("FASTGC_JIT", "always")
    assert jit.compiled_path(cold, small)
    monkeypatch.setenv("FASTGC_JIT", "never")
    assert not jit.compiled_path(cold, large)
    monkeypatch.setenv("FASTGC_JIT", "sometimes")
    with pytest.raises(ValueError, match="FASTGC_JIT must be"):
        jit.compiled_path(cold, small)


def _check(monkeypatch, mode, arch, acts, loss, kind, **options):
    monkeypatch.setenv("FASTGC_JIT", mode)
    params, X, Y = network_problem(arch, 5, kind, 1, 2)
    net = fastgc.MLP(list(arch), acts, loss)
    grads = {k[1:]: v for k, v in net.gradients(params, X, Y).items()}
    grads[f"W{len(arch) - 1}"][0, 0] += 1e-4  # a bug, so that the verdict has work to do
    return fastgc.check(net, grads, params, X, Y, **options)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[0])))
def test_both_paths_give_the_same_bits(monkeypatch, case):
    numpy_path = _check(monkeypatch, "never", *case)
    compiled = _check(monkeypatch, "always", *case)
    assert numpy_path.path == "numpy" and compiled.path == "compiled"
    assert "(numpy, no JIT)" in numpy_path.report()
    assert "numpy" not in compiled.report().splitlines()[1]
    assert not numpy_path.passed and not compiled.passed
    for k in numpy_path.numeric:
        assert numpy_path.numeric[k].tobytes() == compiled.numeric[k].tobytes()
    assert numpy_path.kinks == compiled.kinks and numpy_path.nfev == compiled.nfev
    assert numpy_path.difference == compiled.difference


def test_a_large_request_compiles(monkeypatch):
    monkeypatch.setenv("FASTGC_JIT", "auto")
    monkeypatch.setattr(jit, "INTERPRET_WORK", 0)
    assert _check(monkeypatch, "auto", *CASES[0]).path == "compiled"


def test_interpreted_math_matches_the_compiled_kernels_at_the_edges():
    # numba's error_model="numpy": inf and nan, never an exception
    exp, log, log1p = (jit._libm(n) for n in ("exp", "log", "log1p"))
    assert exp(1000.0) == math.inf and log(0.0) == -math.inf and log1p(-1.0) == -math.inf
    assert math.isnan(log(-1.0))
    x = np.float64(0.3)
    assert exp(x) == math.exp(0.3)  # the C library's exp, as the compiled kernel calls it
