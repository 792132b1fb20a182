"""The public surface: every name in ``fastgc.__all__`` resolves, has a docstring and a row in
the package docstring's table, and every type a public function returns is one of them."""

import dataclasses
import importlib.util
import re

import numpy as np
import pytest

import fastgc


def test_all_is_sorted_and_every_name_resolves_with_a_docstring():
    assert fastgc.__all__ == sorted(fastgc.__all__)
    for name in fastgc.__all__:
        if name in ("torch", "jax") and importlib.util.find_spec(f"fastgc.{name}") is None:
            continue  # a framework front end not written yet (issue 18 adds fastgc.jax)
        value = getattr(fastgc, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), name


def test_the_docstring_table_lists_every_public_name():
    listed = set(re.findall(r"^(\w+) {2,}", fastgc.__doc__, flags=re.MULTILINE))
    assert set(fastgc.__all__) - {"__version__"} <= listed
    assert listed <= set(fastgc.__all__)


def _returned_types(value, seen):
    """The dataclass types reachable from ``value`` through public fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if id(value) in seen:
            return
        seen.add(id(value))
        yield type(value)
        for f in dataclasses.fields(value):
            if not f.name.startswith("_"):
                yield from _returned_types(getattr(value, f.name), seen)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _returned_types(v, seen)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _returned_types(v, seen)


def _results():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = np.array([1.0, -2.0])

    def cost(v):
        return 0.5 * v @ A @ v

    def grad(v):
        return A @ v

    checked = fastgc.check(cost, grad, x)
    yield checked
    yield checked.worst(2)
    yield fastgc.check_hvp(grad, lambda v, t: A @ t, x)
    yield fastgc.check_hessian(grad, lambda v: A, x)
    yield fastgc.taylor_test(cost, grad, x)
    yield fastgc.check_scipy(cost, x, jac=grad)
    yield fastgc.check_vjp(lambda v: A @ v, lambda v, c: A.T @ c, x)

    def affine_forward(z, w):
        return z @ w, (z, w)

    def affine_backward(dout, cache):
        z, w = cache
        return dout @ w.T, z.T @ dout

    yield fastgc.check_model([(affine_forward, affine_backward, (A.copy(),))], np.ones((3, 2)),
                             grads=[(np.ones((3, 2)).T @ np.ones((3, 2)),)])


def test_every_returned_type_is_public():
    results = list(_results())  # all alive at once: ``seen`` holds ids
    seen, found = set(), set()
    for result in results:
        found.update(_returned_types(result, seen))
    names = {t.__name__ for t in found}
    assert {"CheckResult", "BlockResult", "Entry", "HessianResult", "PairResult",
            "PropertyResult", "TaylorResult", "ScipyCheckResult", "ModelResult",
            "LayerResult"} <= names
    for t in found:
        assert getattr(fastgc, t.__name__, None) is t, t
        assert t.__name__ in fastgc.__all__


def test_framework_result_is_public():
    torch = pytest.importorskip("torch")
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    result = fastgc.torch.check(lambda t: (t ** 2).sum(), x)
    assert type(result) is fastgc.FrameworkResult
    assert type(next(iter(result.blocks.values()))) is fastgc.BlockResult
