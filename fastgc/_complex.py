"""Complex parameters of a real cost, checked as (real, imaginary) pairs.

A real cost of complex parameters has a gradient in the real sense, ``dJ/dRe z`` and
``dJ/dIm z``, which frameworks pack into one complex array by two opposite conventions:
torch's ``z.grad`` is ``dJ/dRe + i dJ/dIm`` (the conjugate Wirtinger derivative, times 2),
``jax.grad`` returns its conjugate, ``dJ/dRe - i dJ/dIm``. ``check(..., convention=...)``
names the one the analytic gradient follows. Every complex array of ``params`` becomes a real
array with a trailing axis of 2 (``[..., 0]`` the real part, ``[..., 1]`` the imaginary
part), the cost gets complex arrays back, and the check runs on real numbers, so every method
but the complex step works (the complex step needs real parameters).
"""

from __future__ import annotations

import numpy as np

from fastgc._core.validate import one_of

# the sign of the imaginary part of the analytic gradient, per convention
CONVENTIONS = {"torch": 1.0, "jax": -1.0}


def _is_complex(leaf) -> bool:
    return isinstance(leaf, (np.ndarray, np.generic, complex)) and np.iscomplexobj(leaf)


def has_complex(tree) -> bool:
    """Whether any array of a dict/list/tuple nesting is complex."""
    if isinstance(tree, dict):
        return any(has_complex(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return any(has_complex(v) for v in tree)
    return _is_complex(tree)


def _map(tree, fn):
    if isinstance(tree, dict):
        return type(tree)((k, _map(v, fn)) for k, v in tree.items())
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map(v, fn) for v in tree)
    return fn(tree)


def _map2(template, tree, fn):
    """``fn(template_leaf, leaf)`` over two trees of the same nesting."""
    if isinstance(template, dict):
        return type(tree)((k, _map2(template[k], tree[k], fn)) for k in tree)
    if isinstance(template, (list, tuple)):
        return type(tree)(_map2(t, v, fn) for t, v in zip(template, tree, strict=True))
    return fn(template, tree)


def _first_complex(tree, name="params"):
    """``(path name, dtype)`` of the first complex array, named as the layout names blocks
    (``params['W']``, ``params[0]``)."""
    if isinstance(tree, dict):
        items = [(f"{name}[{k!r}]", v) for k, v in tree.items()]
    elif isinstance(tree, (list, tuple)):
        items = [(f"{name}[{i}]", v) for i, v in enumerate(tree)]
    else:
        return name, np.asarray(tree).dtype
    return next(_first_complex(v, n) for n, v in items if has_complex(v))


def _pair(z):
    z = np.asarray(z)
    return np.stack([z.real, z.imag], axis=-1).astype(np.float64)


def as_real(cost, grad, params, convention):
    """``(cost, grad, params)`` with every complex array as a real (Re, Im) pair array.

    Raises
    ------
    TypeError
        When ``convention`` is None (complex parameters need one: the two frameworks'
        gradients differ by a conjugate).
    ValueError
        When it is not one of ``CONVENTIONS``.
    """
    if convention is None:
        where, dtype = _first_complex(params)
        raise TypeError(
            f"{where} is complex ({dtype}); fastgc checks real "
            "parameters, or complex ones as (Re, Im) pairs given the gradient's convention: "
            "convention='torch' (grad = dJ/dRe + i dJ/dIm, as z.grad) or convention='jax' "
            "(dJ/dRe - i dJ/dIm, as jax.grad)")
    one_of(convention, "convention", CONVENTIONS)
    sign = CONVENTIONS[convention]
    template = params

    def rebuild(template_leaf, leaf):
        if _is_complex(template_leaf):
            leaf = np.asarray(leaf)
            return leaf[..., 0] + 1j * leaf[..., 1]
        return leaf

    def complex_params(p):
        return _map2(template, p, rebuild)

    def real_grad(g):
        def convert(leaf):
            if _is_complex(leaf):
                leaf = np.asarray(leaf)
                return np.stack([leaf.real, sign * leaf.imag], axis=-1).astype(np.float64)
            return leaf
        return _map(g, convert)

    def real_cost(p, *args):
        return cost(complex_params(p), *args)

    if callable(grad):
        def real_grad_fn(p, *args):
            return real_grad(grad(complex_params(p), *args))
        new_grad = real_grad_fn
    else:
        new_grad = real_grad(grad)
    new_params = _map(params, lambda leaf: _pair(leaf) if _is_complex(leaf) else leaf)
    return real_cost, new_grad, new_params


def note(convention) -> str:
    """The report's line about the conversion."""
    return (f"complex parameters checked as (Re, Im) pairs, a trailing axis of 2 ([..., 0] "
            f"real, [..., 1] imaginary); analytic gradient read in the {convention} convention "
            f"(dJ/dRe {'+' if CONVENTIONS[convention] > 0 else '-'} i dJ/dIm)")
