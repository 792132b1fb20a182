"""Front ends for layers: nested parameters, vector-valued functions, forward/backward pairs and
stateful layer objects, each turned into ``(cost, gradient, params)`` for :func:`fastgc.check`.

A vector-valued ``f`` is checked through the scalar ``J(x) = <c, f(x)>``: its gradient is the
vector-Jacobian product ``c^T (df/dx)``, which is what a backward pass computes from the output
gradient ``c``. The cotangent ``c`` is a seeded Gaussian per output entry, never ones: for a
softmax or a mean-centring layer ``sum(f(x))`` is constant, so with ``c = 1`` every wrong
backward that keeps that sum passes.

Each front end builds the scalar cost, its gradient and the point, and hands them to the core
:func:`fastgc.check` (nested parameters and ``exclude=`` are the core's).
"""

from __future__ import annotations

import copy
import functools
import inspect
import warnings

import numpy as np

from fastgc._check import check
from fastgc._core.layout import Layout
from fastgc._core.result import nonzero_failures
from fastgc._errors import FastgcWarning

__all__ = ["check_jvp", "check_layer", "check_module", "check_vjp"]


# -- vector-valued functions ---------------------------------------------------------------------
def _seed_of(options):
    seed = options.get("seed", 0)
    return seed if seed is not None else 0


def _output_layout(out, what):
    try:
        return Layout.of(out, what)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{exc} ({what} must be an array or a dict/list/tuple of float "
                        "arrays)") from None


# The spawn key of fastgc's own random stream ("fgc"): the default cotangent and tangent are
# drawn from SeedSequence(seed) spawned with it, never from default_rng(seed) itself, the
# stream users draw their data from (were the cotangent equal to the input, x^T c would be
# symmetric and a transposed dW would pass).
_STREAM_KEY = 0x666763


def _own_rng(seed):
    """A generator for fastgc's draws from ``seed``: an int or SeedSequence gets a stream of
    its own (spawned with ``_STREAM_KEY``); a Generator is the user's choice, used as is."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        seed = seed.entropy
    try:
        return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM_KEY,)))
    except (TypeError, ValueError):
        return np.random.default_rng(seed)  # check() names the bad seed


def _same_leaves(layout, a, b) -> bool:
    """Whether two values in ``layout``'s structure hold the same numbers (NaN equal)."""
    return all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
               for x, y in zip(layout.leaves(a), layout.leaves(b), strict=True))


def _default_direction(layout, seed):
    rng = _own_rng(seed)
    return layout.assemble([rng.standard_normal(b.shape) for b in layout.blocks])


def _given_direction(layout, value, what, of):
    if layout.kind == "array" and not isinstance(value, (dict, list, tuple)):
        shape = np.shape(value)
        if shape != layout.blocks[0].shape:
            raise ValueError(f"{what} has shape {shape} but {of} has shape "
                             f"{layout.blocks[0].shape}")
    flat, _ = layout.flatten_gradient(value, what)
    return layout.unflatten(flat)


def _inner(out_layout, c_leaves, out) -> float:
    """``<c, out>`` summed over the output's arrays (complex for a complex step)."""
    total = 0.0
    for c, o in zip(c_leaves, out_layout.leaves(out), strict=True):
        o = np.asarray(o)
        if o.shape != c.shape:
            raise ValueError(f"the output changed shape under a perturbation: {o.shape}, "
                             f"not {c.shape}")
        total = total + np.sum(c * o)
    return total


def _inner_of(out_layout, c_leaves):
    """``out -> <c, out>``, as :func:`_inner` computes it, with the single-array case (a
    layer's output) taken without the per-call structure walk: it is one of the few things
    fastgc adds to each call of the user's function."""
    if out_layout.kind != "array":
        return lambda out: _inner(out_layout, c_leaves, out)
    c = c_leaves[0]
    shape, reduce = c.shape, np.add.reduce

    def inner(out):
        if type(out) is np.ndarray and out.shape == shape:
            return 0.0 + reduce(c * out, axis=None)  # np.sum's reduction: the same bits
        return _inner(out_layout, c_leaves, out)

    return inner


def _flat_gradient(layout, value, what):
    flat, _ = layout.flatten_gradient(value, what)
    return flat


def check_vjp(f, vjp, inputs, *args, cotangent=None, exclude=None, **options):
    """Check a vector-Jacobian product (a backward pass) against finite differences of ``f``.

    Parameters
    ----------
    f : callable
        ``f(inputs, *args)`` returning an array, or a tuple/list/dict of arrays.
    vjp : callable
        ``vjp(inputs, cotangent, *args)`` returning ``cotangent^T df/dinputs``: the gradient
        with respect to ``inputs``, in the structure of ``inputs``.
    inputs : array, or dict/list/tuple of arrays (any nesting)
        The point at which to check; blocks are named by their path.
    *args
        Passed to ``f`` and ``vjp``, not differentiated.
    cotangent : structure like ``f``'s output, optional
        The output gradient. Default: standard normal entries, seeded by ``seed``.
    exclude : str, list of str or callable, optional
        Inputs left out of the check (see :func:`fastgc.check`).
    **options
        Every option of :func:`fastgc.check` (``method``, ``subset``, ``directions``,
        ``seed``, ...).

    Returns
    -------
    CheckResult
        The check of ``<cotangent, f(inputs)>``'s gradient, per input block. A block also
        fails when ``vjp`` gives a non-zero result for a zero cotangent, or two different
        results for the same cotangent (a nondeterministic backward); the diagnosis says so.

    Notes
    -----
    ``J(x) = <c, f(x)>`` has gradient ``c^T J_f(x)``, so a full check costs two evaluations
    of ``f`` per input entry. A Gaussian ``c`` makes every wrong entry of the Jacobian visible
    with probability one (with ``c = 1`` a softmax's bugs that keep the sum go unseen).
    Three extra calls of ``vjp`` check linearity at zero and determinism.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> def softmax(x):
    ...     e = np.exp(x - x.max()); return e / e.sum()
    >>> def softmax_vjp(x, c):
    ...     s = softmax(x); return s * (c - s @ c)
    >>> fastgc.check_vjp(softmax, softmax_vjp, np.array([0.1, 2.0, -1.0])).passed
    True
    >>> wrong = lambda x, c: softmax(x) * c          # forgets the - s @ c term
    >>> fastgc.check_vjp(softmax, wrong, np.array([0.1, 2.0, -1.0])).passed
    False
    """
    if not callable(f) or not callable(vjp):
        raise TypeError("f and vjp must be callable: f(inputs, *args), "
                        "vjp(inputs, cotangent, *args)")
    in_layout, theta = Layout.of(inputs, "inputs", exclude=exclude)
    out_layout, _ = _output_layout(f(copy.deepcopy(inputs), *args), "f(inputs)")
    if cotangent is None:
        cotangent = _default_direction(out_layout, _seed_of(options))
    else:
        cotangent = _given_direction(out_layout, cotangent, "cotangent", "f(inputs)")
    inner = _inner_of(out_layout, out_layout.leaves(cotangent))

    def cost(x, *cost_args):
        return inner(f(x, *cost_args))

    modified = []

    def call_vjp(c):
        # every call gets a fresh copy: a backward that scales its upstream gradient in place
        # (``dout /= m``) neither changes the next call's cotangent nor the user's array
        fresh = copy.deepcopy(c)
        g = _flat_gradient(in_layout, vjp(copy.deepcopy(inputs), fresh, *args), "vjp(...)")
        if not modified and not _same_leaves(out_layout, fresh, c):
            modified.append(True)
        return g

    first, second = call_vjp(cotangent), call_vjp(cotangent)
    if modified:
        warnings.warn("the backward modified its upstream gradient in place (the cotangent): "
                      "fastgc hands each call a fresh copy and judges the values, but a caller "
                      "that reuses the array (two nodes sharing a gradient) gets wrong "
                      "gradients", FastgcWarning, stacklevel=3)
    zero = call_vjp(out_layout.assemble([np.zeros(b.shape) for b in out_layout.blocks]))
    result = check(cost, in_layout.unflatten(first), inputs, *args, exclude=exclude, **options)
    return result.with_failures(nonzero_failures(in_layout, [
        (zero, "not zero for a zero cotangent"),
        (second - first, "nondeterministic: two calls with the same cotangent differ")]))


def check_jvp(f, jvp, inputs, *args, tangent=None, exclude=None, **options):
    """Check a Jacobian-vector product (forward mode) against directional differences of ``f``.

    Parameters
    ----------
    f : callable
        ``f(inputs, *args)`` returning an array, or a tuple/list/dict of arrays.
    jvp : callable
        ``jvp(inputs, tangent, *args)`` returning ``df/dinputs . tangent`` in the structure of
        ``f``'s output.
    inputs : array, or dict/list/tuple of arrays (any nesting)
        The point at which to check.
    *args
        Passed to ``f`` and ``jvp``, not differentiated.
    tangent : structure like ``inputs``, optional
        The input direction. Default: standard normal entries, seeded by ``seed``.
    exclude : str, list of str or callable, optional
        Inputs held fixed (their tangent is zero).
    **options
        Every option of :func:`fastgc.check`.

    Returns
    -------
    CheckResult
        One block per output array (named by its path, ``"out"`` for a single array): output
        entry ``k`` is checked against ``d/ds f_k(inputs + s tangent)``. A block also fails
        when ``jvp`` is not zero for a zero tangent or differs between two calls.

    Notes
    -----
    The check differentiates ``G(s) = sum_k f_k(x + s_k t)`` with respect to the vector ``s``
    (one step per output entry) at ``s = 0``: ``dG/ds_k = (J_f t)_k``. A coordinate check
    perturbs one ``s_k`` at a time, so each costs one evaluation of ``f`` (``f(x)`` is
    reused); a ``directions`` check moves every ``s_k`` and costs one evaluation per distinct
    step.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> f = lambda x: np.array([x[0] * x[1], np.sin(x[1])])
    >>> jvp = lambda x, t: np.array([t[0] * x[1] + x[0] * t[1], np.cos(x[1]) * t[1]])
    >>> fastgc.check_jvp(f, jvp, np.array([1.5, -0.5])).passed
    True
    """
    if not callable(f) or not callable(jvp):
        raise TypeError("f and jvp must be callable: f(inputs, *args), "
                        "jvp(inputs, tangent, *args)")
    in_layout, theta = Layout.of(inputs, "inputs", exclude=exclude)
    base_out = f(in_layout.unflatten(theta.copy()), *args)
    out_layout, out_flat = _output_layout(base_out, "f(inputs)")
    if out_layout.kind == "array":
        out_layout, out_flat = Layout.of({"out": np.asarray(base_out)}, "f(inputs)")
        single = True
    else:
        single = False
    if tangent is None:
        t_flat = _own_rng(_seed_of(options)).standard_normal(in_layout.size)
    else:
        t_flat = in_layout.flatten_gradient(
            _given_direction(in_layout, tangent, "tangent", "inputs"), "tangent")[0]
    def as_tangent(flat):  # excluded inputs are held fixed: their tangent is zero
        return in_layout.assemble([flat[b.offset:b.stop].reshape(b.shape)
                                   for b in in_layout.blocks], fill=0.0)

    tangent_struct = as_tangent(t_flat.copy())

    def outputs(x):
        out = f(in_layout.unflatten(x), *args)
        if single:
            out = {"out": out}
        return np.concatenate([np.ravel(o) for o in out_layout.leaves(out)])

    def cost(s):
        steps = np.concatenate([np.ravel(v) for v in out_layout.leaves(s)])
        total = 0.0
        moved = np.flatnonzero(steps != 0)
        for value in np.unique(steps[moved]):
            at = np.flatnonzero(steps == value)
            total = total + np.sum(outputs(theta + value * t_flat)[at])
        rest = np.setdiff1d(np.arange(steps.size), moved)
        return total + np.sum(out_flat[rest])

    def call_jvp(t):
        value = jvp(copy.deepcopy(inputs), t, *args)
        return _flat_gradient(out_layout, {"out": value} if single else value, "jvp(...)")

    first, second = call_jvp(tangent_struct), call_jvp(as_tangent(0 * t_flat))
    third = call_jvp(tangent_struct)
    zero_s = out_layout.unflatten(np.zeros(out_layout.size))
    result = check(cost, out_layout.unflatten(first), zero_s, **options)
    return result.with_failures(nonzero_failures(out_layout, [
        (second, "not zero for a zero tangent"),
        (third - first, "nondeterministic: two calls with the same tangent differ")]))


# -- forward/backward pairs ----------------------------------------------------------------------
def _split_output(value):
    """``out`` or ``(out, cache)`` -> (out, cache)."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise TypeError(f"forward must return out or (out, cache), not a tuple of "
                            f"{len(value)} items")
        return value
    return value, None


def check_layer(forward, backward, inputs, *args, cotangent=None, exclude=None, **options):
    """Check a forward/backward pair of the numpy-course kind.

    ``affine_forward`` and ``affine_backward``, ``conv_forward`` and ``conv_backward``: a
    forward returning ``(out, cache)`` and a backward taking ``(dout, cache)``.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs, *args)`` (or ``forward(**inputs, ...)`` for a dict) returning
        ``out`` or ``(out, cache)``.
    backward : callable
        ``backward(dout, cache)`` returning the gradients in the order of ``inputs``: one
        array for one input, a tuple for several (or a dict keyed like ``inputs``).
    inputs : array, tuple of arrays or dict of arrays
        The differentiated inputs. A tuple's blocks are named from ``forward``'s parameter
        names (``x``, ``w``, ``b``); a dict is passed as keywords and its keys name the blocks.
    *args
        Passed to ``forward`` after ``inputs``, not differentiated (``conv_param``,
        ``bn_param``, labels). The caller's objects are left as they were: arrays are passed
        as read-only copies made once (a forward that writes into one raises), and when an
        argument is a dict, a list or another mutable object, each call of ``forward`` gets a
        deep copy of ``args``, so a forward that updates them (running statistics) does not
        move later evaluations.
    cotangent : array, optional
        ``dout``. Default: standard normal entries, seeded by ``seed``.
    exclude : str, list of str or callable, optional
        Inputs left out of the check (by name).
    **options
        Every option of :func:`fastgc.check`.

    Returns
    -------
    CheckResult
        One block per input; a block also fails when ``backward`` is not zero for a zero
        ``dout`` or is nondeterministic.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> def affine_forward(x, w, b):
    ...     return x @ w + b, (x, w)
    >>> def affine_backward(dout, cache):
    ...     x, w = cache
    ...     return dout @ w.T, x.T @ dout, dout.sum(axis=0)
    >>> rng = np.random.default_rng(0)
    >>> x, w, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    >>> result = fastgc.check_layer(affine_forward, affine_backward, (x, w, b))
    >>> result.passed, list(result.blocks)
    (True, ['x', 'w', 'b'])
    """
    if not callable(forward) or not callable(backward):
        raise TypeError("forward and backward must be callable")
    names, call, bind = _binder(forward, inputs, len(args))
    args_once = _frozen_args(args)
    values = (list(inputs.values()) if isinstance(inputs, dict)
              else list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
    params = dict(zip(names, values, strict=True))

    fresh_args = _fresh_args(args)
    bound = [None, None]  # the params object last seen and the call bound to it

    def f(p, *_):
        # The loop engine passes the same params (views into its working vector) at every
        # point: the call is bound to them once, and args are copied only when the forward
        # could change them.
        if fresh_args is None:
            if p is not bound[0]:
                bound[0], bound[1] = p, bind(p, args_once)
            value = bound[1]()
        else:
            value = call(p, fresh_args())
        if type(value) is tuple and len(value) == 2:
            return value[0]
        return _split_output(value)[0]

    def vjp(p, c, *v_args):
        _, cache = _split_output(call(p, copy.deepcopy(v_args)))
        grads = backward(c, cache)
        if isinstance(grads, dict):
            return grads
        if len(names) == 1 and not isinstance(grads, (tuple, list)):
            grads = (grads,)
        if not isinstance(grads, (tuple, list)) or len(grads) != len(names):
            got = (f"{len(grads)} gradients" if isinstance(grads, (tuple, list))
                   else f"one {type(grads).__name__}")
            raise ValueError(f"backward returned {got} but inputs has {len(names)} "
                             f"({', '.join(names)}): return them in the order of inputs")
        return dict(zip(names, grads, strict=True))

    return check_vjp(f, vjp, params, *args, cotangent=cotangent, exclude=exclude, **options)


def _binder(forward, inputs, n_args):
    """The block names of ``inputs`` and ``call(params, args)`` that calls ``forward``."""
    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        sig = None
    positional = ([p.name for p in sig.parameters.values()
                   if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
                  if sig is not None else [])
    if isinstance(inputs, dict):
        names = [str(k) for k in inputs]
        rest = [n for n in positional if n not in inputs]
        if n_args > len(rest) and not (sig and any(
                p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())):
            raise TypeError(f"forward takes {len(rest)} argument(s) besides {names}, but "
                            f"{n_args} were given in *args")

        def call(p, a):
            return forward(**{k: p[n] for k, n in zip(inputs, names, strict=True)},
                           **dict(zip(rest, a, strict=False)))

        def bind(p, a):
            kw = {k: p[n] for k, n in zip(inputs, names, strict=True)}
            kw.update(zip(rest, a, strict=False))
            return functools.partial(forward, **kw)

        return names, call, bind
    count = len(inputs) if isinstance(inputs, (list, tuple)) else 1
    names = positional[:count]
    if len(names) < count:
        names = names + [f"input{i}" for i in range(len(names), count)]

    def call(p, a):
        return forward(*[p[n] for n in names], *a)

    def bind(p, a):
        return functools.partial(forward, *[p[n] for n in names], *a)

    return names, call, bind


# Values a forward cannot change in place: passed as they are, never copied.
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, np.generic, range, slice,
              type(Ellipsis))


def _is_immutable(value) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return all(_is_immutable(v) for v in value)
    return isinstance(value, _IMMUTABLE)


def _frozen_args(args) -> tuple:
    """``args`` with each array replaced by a read-only copy, made once: the forward reads the
    values the caller gave and cannot change them (nor the caller's arrays)."""
    out = []
    for a in args:
        if type(a) is np.ndarray:
            a = a.copy()
            a.flags.writeable = False
        out.append(a)
    return tuple(out)


def _fresh_args(args):
    """None when every argument is immutable or an array (:func:`_frozen_args` serves every
    call), else a function returning a deep copy of ``args`` for each call: a forward may
    update a dict or an object it is given (``bn_param``'s running statistics), and must not
    move later evaluations or the caller's objects."""
    if all(type(a) is np.ndarray or _is_immutable(a) for a in args):
        return None
    return lambda: copy.deepcopy(args)


# -- stateful layer objects ----------------------------------------------------------------------
class _LeanState:
    """The layer's state for the engine's evaluations of one ``check_module``.

    A deep copy of the layer's state, made once (the template), with every array read-only.
    Each evaluation installs a deep copy of the template in which the arrays are shared, not
    copied: containers (lists an input is appended to, dicts, counters) are fresh, attributes
    a forward rebinds are reset, the trainable parameters are the engine's read-only views
    and the non-trainable ones (running statistics, which a forward may move in place) fresh
    copies. What a forward cannot change is not copied; what it can change in place without
    raising is.
    """

    def __init__(self, originals, ids, fixed):
        self.active = True
        self._originals, self._ids, self._fixed = originals, ids, fixed
        self._p = None

    def _template(self, p):
        memo = {}
        template = copy.deepcopy(self._originals, memo)
        arrays = {id(v): v for v in memo.values() if type(v) is np.ndarray}
        for a in arrays.values():
            a.flags.writeable = False
        # the template's copy of each parameter, by name
        slots = {k: memo[i] for k, i in self._ids.items() if i in memo}
        self._template_state, self._arrays, self._slots = template, arrays, slots
        self._p = p
        # Only the engine's read-only views: a forward cannot change them unnoticed. Other
        # callers (the first call, on a copy of the inputs) take the full copy.
        self._serves = all(isinstance(p[k], np.ndarray) and not p[k].flags.writeable
                           for k in ("X", *slots) if k not in self._fixed)

    def serves(self, p) -> bool:
        if p is not self._p:
            self._template(p)
        return self._serves

    def install(self, layer, p):
        """Put a fresh state into ``layer`` with ``p``'s parameters; {name: the array the
        forward must still hold afterwards} for the trainable ones."""
        memo = dict(self._arrays)
        views = {}
        for k, slot in self._slots.items():
            if k in self._fixed:
                memo[id(slot)] = np.array(p[k])  # may move in place: a fresh copy
            else:
                memo[id(slot)] = views[k] = p[k]
        state = _fresh(self._template_state, memo)
        layer.__dict__.clear()
        layer.__dict__.update(state)
        return views


_ATOMIC = (type(None), bool, int, float, complex, str, bytes, np.generic)


def _fresh(value, memo):
    """``copy.deepcopy(value, memo)``, with the builtin containers of a layer's state copied
    by hand (several times faster); arrays are the memo's (shared when it maps them to
    themselves), other objects go to ``copy.deepcopy`` with the same memo."""
    kind = type(value)
    if kind is np.ndarray or kind in _ATOMIC:
        return memo.get(id(value), value)
    seen = memo.get(id(value))
    if seen is not None:
        return seen
    if kind is dict:
        new = memo[id(value)] = {}
        for k, v in value.items():
            new[k] = _fresh(v, memo)
        return new
    if kind is list:
        new = memo[id(value)] = []
        new.extend(_fresh(v, memo) for v in value)
        return new
    if kind is tuple:
        return tuple(_fresh(v, memo) for v in value)
    return copy.deepcopy(value, memo)


def _attribute(layer, name):
    value = getattr(layer, name)
    return value() if callable(value) else value


def check_module(layer, X, *args, exclude=None, cotangent=None, parameters="parameters",
                 gradients="gradients", **options):
    """Check a stateful layer object: its parameter gradients and its input gradient together.

    The layer follows the convention of numpy layer libraries: ``layer.parameters`` and
    ``layer.gradients`` are dicts of arrays (attribute names configurable, or methods
    returning them), ``layer.forward(X, *args)`` returns the output and ``layer.backward(dY)``
    returns ``dX`` and fills (or accumulates into) ``layer.gradients``.

    Parameters
    ----------
    layer : object
        The layer. Every evaluation runs on a fresh copy of its state (``__dict__``) with the
        perturbed parameters written in, so inputs appended to lists, running statistics and
        accumulated gradients never leak from one evaluation into the next; accumulated
        gradients are zeroed before the analytic backward. The perturbed evaluations share
        read-only copies of the state's arrays (made once) and copy only its containers and
        the non-trainable entries; a forward that writes into an array of its state in place
        gets a full deep copy per call instead. Afterwards the layer holds exactly the
        objects it held before.
    X : array
        The layer's input, checked as block ``"X"``.
    *args
        Passed to ``forward`` after ``X`` (``training=True``).
    exclude : str, list of str or callable, optional
        Entries of ``layer.parameters`` left out of the check (``"running_mean"``), or
        ``"X"`` to skip the input gradient.
    cotangent : array, optional
        ``dY``. Default: standard normal entries, seeded by ``seed``.
    parameters, gradients : str
        The names of the layer's parameter and gradient dicts (attributes or methods).
    **options
        Every option of :func:`fastgc.check`.

    Returns
    -------
    CheckResult
        Blocks ``"X"`` and one per parameter.

    Raises
    ------
    TypeError
        A layer without ``__dict__``, or whose parameters are not a dict of arrays.
    ValueError
        A forward that replaces or changes a parameter it is given that is not excluded
        (running statistics, or a lazy initialisation on the first call).

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> class Dense:
    ...     def __init__(self, n_in, n_out, seed=0):
    ...         rng = np.random.default_rng(seed)
    ...         self.parameters = {"W": rng.normal(size=(n_in, n_out)), "b": np.zeros(n_out)}
    ...         self.gradients = {"W": np.zeros((n_in, n_out)), "b": np.zeros(n_out)}
    ...     def forward(self, X):
    ...         self.X = X
    ...         return X @ self.parameters["W"] + self.parameters["b"]
    ...     def backward(self, dY):
    ...         self.gradients["W"] += self.X.T @ dY      # gradients accumulate
    ...         self.gradients["b"] += dY.sum(axis=0)
    ...         return dY @ self.parameters["W"].T
    >>> layer = Dense(3, 2)
    >>> X = np.random.default_rng(1).normal(size=(4, 3))
    >>> result = fastgc.check_module(layer, X)
    >>> result.passed, list(result.blocks)
    (True, ['X', 'W', 'b'])
    """
    if not hasattr(layer, "__dict__"):
        raise TypeError(f"layer must be an object with a __dict__ (its state), not "
                        f"{type(layer).__name__}")
    for method in ("forward", "backward"):
        if not callable(getattr(layer, method, None)):
            raise TypeError(f"layer has no {method}() method")
    own = _attribute(layer, parameters)
    if not isinstance(own, dict):
        raise TypeError(f"layer.{parameters} must be a dict of arrays, not "
                        f"{type(own).__name__}")
    if "X" in own:
        raise ValueError(f"layer.{parameters} has a key 'X', the name of the input block")
    originals = dict(layer.__dict__)
    ids = {k: id(v) for k, v in own.items()}
    params = {"X": X, **own}
    fixed = set(Layout.of(params, "params", exclude=exclude)[0].excluded)

    def install(p):
        """Put a fresh copy of the layer's state into it, with ``p``'s parameters."""
        memo = {ids[k]: np.array(p[k]) for k in own}
        state = copy.deepcopy(originals, memo)
        layer.__dict__.clear()
        layer.__dict__.update(state)
        return memo

    def moved(k):
        return ValueError(
            f"layer.forward replaced or changed parameter {k!r}: a non-trainable "
            f"entry (running statistics: pass exclude={[k]!r}), or a lazy "
            "initialisation on the first call (run one forward before checking, so "
            "that the parameters checked are the ones forward uses)")

    def full_forward(p, *f_args):
        memo = install(p)
        out = layer.forward(np.array(p["X"]), *f_args)
        now = _attribute(layer, parameters)
        for k in own:
            if k in fixed:
                continue  # a non-trainable entry (running statistics) may move
            if now.get(k) is not memo[ids[k]] or not np.array_equal(now[k], p[k]):
                raise moved(k)
        return out

    lean = _LeanState(originals, ids, fixed)

    def forward(p, *f_args):
        # The engine's points: the state rebuilt around shared read-only arrays (see
        # _LeanState) instead of a deep copy of every array per call. A forward that writes
        # into an array of its state in place meets a read-only array, and the check goes on
        # with a full copy per call (this call included).
        if lean.active and lean.serves(p):
            try:
                views = lean.install(layer, p)
                out = layer.forward(p["X"], *f_args)
            except ValueError as exc:
                if "read-only" not in str(exc):
                    raise
                lean.active = False
            else:
                now = _attribute(layer, parameters)
                for k, view in views.items():
                    if now.get(k) is not view:
                        raise moved(k)
                return out
        return full_forward(p, *f_args)

    def vjp(p, c, *v_args):
        full_forward(p, *v_args)  # backward may write into the state: a full copy
        for g in _attribute(layer, gradients).values():
            if isinstance(g, np.ndarray) and g.flags.writeable:
                g[...] = 0.0  # gradients that accumulate across backward calls
        dX = layer.backward(np.array(c))
        grads = _attribute(layer, gradients)
        if not isinstance(grads, dict):
            raise TypeError(f"layer.{gradients} must be a dict of arrays, not "
                            f"{type(grads).__name__}")
        return {"X": dX, **{k: np.array(v) for k, v in grads.items()}}

    try:
        return check_vjp(forward, vjp, params, *args, cotangent=cotangent, exclude=exclude,
                         **options)
    finally:
        layer.__dict__.clear()
        layer.__dict__.update(originals)
