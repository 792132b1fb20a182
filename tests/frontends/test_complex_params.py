"""Complex parameters of a real cost, under torch's and jax's gradient conventions.

References: closed forms (dJ/dRe, dJ/dIm by hand), and where installed torch's ``z.grad``
and ``jax.grad`` themselves.
"""

import numpy as np
import pytest

import fastgc

Z = np.array([1.0 + 2.0j, -0.5 + 0.3j, 0.2 - 1.1j])
W = np.array([[0.3, -1.2], [0.8, 0.5]])


def _cost(p):
    z, w = p["z"], p["w"]
    return float(np.sum(z.real ** 2 + 3 * z.imag + z.real * z.imag)
                 + np.sum(np.abs(z) ** 2) * np.sum(w ** 2))


def _real_gradient(p):
    """(dJ/dRe z, dJ/dIm z) and dJ/dw, by hand."""
    z, w = p["z"], p["w"]
    x, y = z.real, z.imag
    s = np.sum(w ** 2)
    return 2 * x + y + 2 * x * s, 3 + x + 2 * y * s, 2 * w * np.sum(np.abs(z) ** 2)


def _grad(convention):
    def grad(p):
        d_re, d_im, dw = _real_gradient(p)
        sign = 1 if convention == "torch" else -1
        return {"z": d_re + sign * 1j * d_im, "w": dw}
    return grad


@pytest.mark.parametrize("method", ["central", "richardson"])
@pytest.mark.parametrize("convention", ["torch", "jax"])
def test_complex_parameters_under_each_convention(convention, method):
    params = {"z": Z, "w": W}
    result = fastgc.check(_cost, _grad(convention), params, convention=convention,
                          method=method)
    assert result.passed, result.report(color=False)
    assert result.blocks["z"].shape == (3, 2)  # (Re, Im) pairs
    assert any(f"{convention} convention" in n for n in result.notes)
    # the other convention's gradient is the conjugate: its imaginary parts fail
    other = "jax" if convention == "torch" else "torch"
    wrong = fastgc.check(_cost, _grad(other), params, convention=convention, method=method)
    assert not wrong.passed and wrong.blocks["w"].passed
    assert "z[0, 1]" in wrong.blocks["z"].diagnosis or "column" in wrong.blocks["z"].diagnosis
    assert np.array_equal(params["z"], Z)  # never modified


def test_complex_parameters_against_torch_and_jax_themselves():
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")

    def f(z, lib):
        return (z.real ** 2 + 3 * z.imag + z.real * z.imag).sum() + (lib.abs(z) ** 2).sum()

    z = torch.tensor(Z, requires_grad=True)
    f(z, torch).backward()
    # jax computes in complex64 here (x64 is a global switch, left alone): 1e-5 relative
    g_jax = np.asarray(jax.grad(lambda v: f(v, jnp))(jnp.asarray(Z))).astype(np.complex128)

    def cost(v):
        return float(f(v, np))

    assert fastgc.check(cost, z.grad.numpy(), Z, convention="torch").passed
    assert fastgc.check(cost, g_jax, Z, convention="jax", threshold=1e-5).passed
    assert not fastgc.check(cost, g_jax, Z, convention="torch").passed


def test_complex_parameters_need_a_convention_and_a_real_method():
    named = r"params\['z'\] is complex \(complex128\).*convention='torch'"
    with pytest.raises(TypeError, match=named):
        fastgc.check(_cost, _grad("torch"), {"z": Z, "w": W})
    with pytest.raises(ValueError, match="convention must be one of"):
        fastgc.check(_cost, _grad("torch"), {"z": Z, "w": W}, convention="numpy")
    with pytest.raises(ValueError, match="needs real parameters"):
        fastgc.check(_cost, _grad("torch"), {"z": Z, "w": W}, convention="torch",
                     method="complex")
    with pytest.raises(ValueError, match="convention must be one of"):
        fastgc.check(lambda x: float(x @ x), lambda x: 2 * x, np.ones(2), convention="numpy")
