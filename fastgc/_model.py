"""Whole models checked layer by layer: one recorded forward pass, every layer's backward checked
in isolation at its recorded input, and the model's gradients checked against the chain of the
layer backward passes.

Why this is fast: a finite difference of the whole model costs a forward pass of the model per
perturbed parameter. A layer's backward is a vector-Jacobian product, checked (through
:func:`fastgc.check_layer` / :func:`fastgc.check_module`) against differences of
``<c, layer(x)>`` at the input ``x`` the layer saw in the model, so a perturbation costs that
layer's forward only. What the per-layer checks cannot see is how the model wires the layers
together (a cotangent dropped or altered between two layers): the chain check feeds the loss's
output gradient through each layer's backward, top to bottom, and compares what comes out with
the gradients the model's own backward produced. That costs one backward pass, and a wrong
gradient is blamed on the layer that produced it (per-layer checks) or on the link between two
layers where the model's gradients stop matching the chain (the chain check).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from fastgc._check import check
from fastgc._core.display import Display
from fastgc._core.layout import exclusion
from fastgc._core.result import CheckResult
from fastgc._core.validate import integer, one_of, positive_float
from fastgc._layers import _attribute, _binder, _split_output, check_layer, check_module

__all__ = ["LayerResult", "ModelResult", "check_model"]

# The model's gradients and fastgc's chain compute the same products, maybe in another order
# or with a fused implementation: they agree to rounding, far below sqrt(eps) of float64
# (STYLE: tolerances derive from the dtype). A wiring error is O(1) relative.
CHAIN_RTOL = float(np.finfo(np.float64).eps ** 0.5)

INPUT_CHECKS = ("subset", "directions", "full", "none")


@dataclass
class LayerResult(Display):
    """One layer of a :func:`fastgc.check_model`.

    Attributes
    ----------
    index : int
        Position in the model (0 = the layer that receives ``X``).
    name : str
        The layer's name: its key when ``layers`` is a dict, else ``"<index>:<forward's
        name>"`` (``"3:conv_forward"``) or ``"<index>:<class name>"`` for an object.
    params : CheckResult or None
        The layer's parameter gradients checked at its recorded input (None: no trainable
        parameters).
    input : CheckResult or None
        The layer's input gradient checked at its recorded input (None: ``input_check="none"``).
    chain : dict of str to float
        For each parameter block (and ``"X"`` for layer 0's input gradient) whose model
        gradient was given: the relative difference ``||g - r|| / (||g|| + ||r||)`` between
        the model's gradient ``g`` and the chain's ``r`` (this layer's backward fed the
        cotangent that the layers above produced).
    chain_passed : bool or None
        Whether every entry of ``chain`` is within ``chain_rtol`` (None: nothing compared).
    passed : bool
        Whether the layer's own backward passes (``params`` and ``input``).
    """

    index: int
    name: str
    params: CheckResult | None
    input: CheckResult | None
    chain: dict = field(default_factory=dict)
    chain_passed: bool | None = None
    passed: bool = True

    def failures(self) -> list[str]:
        """``"block: diagnosis"`` for each failing block of the layer's own checks.

        Returns
        -------
        list of str
            One line per failing block of ``params`` and ``input``, in that order.
        """
        out = []
        for r in (self.params, self.input):
            if r is not None:
                out.extend(f"{b.name}: {b.diagnosis}" for b in r.blocks.values()
                           if not b.passed)
        return out


@dataclass
class ModelResult(Display):
    """What :func:`fastgc.check_model` returns.

    Attributes
    ----------
    passed : bool
        True when the loss, every layer and the chain pass.
    verdict : str
        One sentence: what passed, or which layer is guilty and why.
    guilty : list of str
        Names of the layers blamed (``"loss"`` for the loss's gradient): those whose own
        backward fails, then, when the chain breaks, the layer whose model gradient is the
        first (from the top) to differ from the chain. Empty when passed.
    layers : list of LayerResult
        One per layer, in model order.
    loss : CheckResult or None
        The loss's output gradient checked at the model's output (None: no ``loss``).
    chain_passed : bool or None
        Whether the model's gradients equal the chain of layer backward passes (None: no
        ``grads`` or ``dX`` given, nothing to compare).
    chain_rtol : float
        The relative tolerance of the chain comparison.
    nfev : int
        Evaluations of layer forwards and costs over every check (plus the recorded pass).
    seconds : float
        Wall-clock time of the whole check.
    """

    passed: bool
    verdict: str
    guilty: list
    layers: list
    loss: CheckResult | None
    chain_passed: bool | None
    chain_rtol: float
    nfev: int
    seconds: float

    def __bool__(self) -> bool:
        return bool(self.passed)

    def __getitem__(self, name) -> LayerResult:
        """The layer called ``name`` (or at index ``name``)."""
        if isinstance(name, (int, np.integer)):
            return self.layers[name]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def report(self) -> str:
        """The readable report, ``str(result)``.

        Returns
        -------
        str
            One line per layer (and the loss): its parameters', input's and chain's verdicts.
        """
        ok = "passed" if self.passed else "FAILED"
        lines = [f"fastgc check_model {ok}: {self.verdict}",
                 f"  {len(self.layers)} layers, {self.nfev} evaluations, {self.seconds:.3g} s"]
        width = max([5, *(len(x.name) for x in self.layers)])
        lines.append(f"  {'layer':<{width}}  {'params':>18}  {'input':>18}  {'chain':>9}")
        rows = ([("loss", self.loss, None, None)] if self.loss is not None else [])
        rows += [(x.name, x.params, x.input, x) for x in reversed(self.layers)]
        for name, params, inp, layer in rows:
            chain = "-"
            if layer is not None and layer.chain:
                chain = f"{max(layer.chain.values()):.1e}"
                chain += "" if layer.chain_passed else " FAIL"
            lines.append(f"  {name:<{width}}  {_cell(params):>18}  {_cell(inp):>18}  "
                         f"{chain:>9}")
        for layer in self.layers:
            lines.extend(f"  {layer.name} {f}" for f in layer.failures())
        if self.loss is not None and not self.loss.passed:
            lines.extend(f"  loss {b.name}: {b.diagnosis}" for b in self.loss.blocks.values()
                         if not b.passed)
        return "\n".join(lines)

    __str__ = report


def _cell(result):
    if result is None:
        return "-"
    return f"{result.difference:.1e} {'ok' if result.passed else 'FAIL'}"


# -- layers --------------------------------------------------------------------------------------
class _Pair:
    """A forward/backward pair: ``forward(x, *params, *args) -> out or (out, cache)``,
    ``backward(dout, cache) -> (dx, *dparams)`` (or a dict keyed like the inputs)."""

    kind = "pair"

    def __init__(self, index, name, forward, backward, params, args):
        self.index, self.name = index, name
        self.forward, self.backward, self.args = forward, backward, args
        self.params = params
        # Names come from forward's signature, as in check_layer: the input's name first.
        if isinstance(params, dict):
            self.x_name = _first_positional(forward) or "x"
            if self.x_name in params:
                raise ValueError(f"layers[{index}]: params has a key {self.x_name!r}, the "
                                 "name of the layer's input")
            self.param_names = [str(k) for k in params]
        else:
            names = _binder(forward, (None, *params), len(args))[0]
            self.x_name, self.param_names = names[0], names[1:]

    def inputs(self, x):
        if isinstance(self.params, dict):
            return {self.x_name: x, **self.params}
        return (x, *self.params)

    def record(self, x):
        inputs = self.inputs(x)
        args = copy.deepcopy(self.args)  # a forward may move bn_param's running statistics
        if isinstance(inputs, dict):
            value = self.forward(**inputs, **dict(zip(_rest(self.forward, inputs), args,
                                                      strict=False)))
        else:
            value = self.forward(*inputs, *args)
        return _split_output(value)

    def chain(self, dout, cache):
        """(dx, {param name: gradient}) from the layer's backward at ``dout``."""
        grads = self.backward(dout, cache)
        names = [self.x_name, *self.param_names]
        if isinstance(grads, dict):
            grads = [grads[n] for n in names]
        elif not isinstance(grads, (tuple, list)):
            grads = (grads,)
        if len(grads) != len(names):
            raise ValueError(f"layer {self.name}: backward returned {len(grads)} gradients "
                             f"but the layer has {len(names)} inputs ({', '.join(names)})")
        return grads[0], dict(zip(self.param_names, grads[1:], strict=True))

    def model_grads(self, given):
        """The model's gradient for this layer, as {param name: array}."""
        if isinstance(given, dict):
            return {n: given[k] for k in given for n in self.param_names
                    if k in (n, "d" + n)}
        if isinstance(given, np.ndarray):
            given = (given,)
        if not isinstance(given, (tuple, list)) or len(given) != len(self.param_names):
            raise ValueError(f"grads for layer {self.name} must give {len(self.param_names)} "
                             f"gradient(s) ({', '.join(self.param_names)}), in that order")
        return dict(zip(self.param_names, given, strict=True))

    def check(self, x, exclude, options):
        return check_layer(self.forward, self.backward, self.inputs(x), *self.args,
                           exclude=exclude, **options)


def _first_positional(forward):
    import inspect
    try:
        ps = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        return None
    ps = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return ps[0].name if ps else None


def _rest(forward, inputs):
    import inspect
    ps = inspect.signature(forward).parameters.values()
    return [p.name for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name not in inputs]


class _Module:
    """A stateful layer object (``parameters``, ``gradients``, ``forward``, ``backward``), as
    :func:`fastgc.check_module` takes it."""

    kind = "module"
    x_name = "X"

    def __init__(self, index, name, layer, parameters, gradients):
        self.index, self.name, self.layer = index, name, layer
        self.parameters, self.gradients = parameters, gradients
        own = _attribute(layer, parameters)
        if not isinstance(own, dict):
            raise TypeError(f"layers[{index}].{parameters} must be a dict of arrays, not "
                            f"{type(own).__name__}")
        self.param_names = [str(k) for k in own]
        self.originals = dict(layer.__dict__)

    def record(self, x):
        # The recorded pass runs on a deep copy of the layer's state: running statistics,
        # input lists and accumulated gradients of the caller's object are left as they were.
        self.layer.__dict__.clear()
        self.layer.__dict__.update(copy.deepcopy(self.originals))
        return self.layer.forward(np.array(x)), None

    def chain(self, dout, _cache):
        for g in _attribute(self.layer, self.gradients).values():
            if isinstance(g, np.ndarray) and g.flags.writeable:
                g[...] = 0.0  # gradients that accumulate across backward calls
        dx = self.layer.backward(np.array(dout))
        grads = _attribute(self.layer, self.gradients)
        return dx, {k: np.array(v) for k, v in grads.items() if k in self.param_names}

    def model_grads(self, given):
        if not isinstance(given, dict):
            raise TypeError(f"grads for layer {self.name} must be a dict like its "
                            f"{self.gradients}, not {type(given).__name__}")
        return {n: given[k] for k in given for n in self.param_names if k in (n, "d" + n)}

    def restore(self):
        self.layer.__dict__.clear()
        self.layer.__dict__.update(self.originals)

    def check(self, x, exclude, options):
        self.restore()
        return check_module(self.layer, x, exclude=exclude, parameters=self.parameters,
                            gradients=self.gradients, **options)


def _name_of(spec):
    if isinstance(spec, tuple):
        return getattr(spec[0], "__name__", "layer")
    return type(spec).__name__


def _layer(index, name, spec, parameters, gradients):
    if isinstance(spec, tuple):
        if not 2 <= len(spec) <= 4 or not callable(spec[0]) or not callable(spec[1]):
            raise TypeError(f"layers[{index}] must be (forward, backward), (forward, backward, "
                            "params) or (forward, backward, params, args), or a layer object "
                            "with forward() and backward()")
        params = spec[2] if len(spec) > 2 else ()
        args = spec[3] if len(spec) > 3 else ()
        if isinstance(params, np.ndarray):
            params = (params,)
        if not isinstance(params, (tuple, list, dict)):
            raise TypeError(f"layers[{index}]'s params must be a tuple or dict of arrays, "
                            f"not {type(params).__name__}")
        if not isinstance(args, tuple):
            args = (args,)  # one undifferentiated argument, e.g. conv_param
        return _Pair(index, name, spec[0], spec[1], tuple(params) if isinstance(
            params, list) else params, args)
    if hasattr(spec, "__dict__") and callable(getattr(spec, "forward", None)) and callable(
            getattr(spec, "backward", None)):
        return _Module(index, name, spec, parameters, gradients)
    raise TypeError(f"layers[{index}] must be a (forward, backward, params, args) tuple or a "
                    f"layer object with forward() and backward(), not {type(spec).__name__}")


# -- validation ----------------------------------------------------------------------------------
def _validate(layers, X, loss, grads, dX, input_check, input_subset, input_directions,
              chain_rtol, parameters, gradients):
    """Validate every argument of :func:`check_model`.

    Returns the layers (wrapped), ``X`` as float64, the model's gradient per layer (None where
    not given), and ``input_subset``, ``input_directions`` and ``chain_rtol`` normalised.
    """
    if isinstance(layers, dict):
        items = [(str(k), v) for k, v in layers.items()]
    elif isinstance(layers, (list, tuple)):
        items = [(f"{i}:{_name_of(s)}", s) for i, s in enumerate(layers)]
    else:
        raise TypeError(f"layers must be a list (or dict) of layers, not "
                        f"{type(layers).__name__}")
    if not items:
        raise ValueError("layers is empty")
    built = [_layer(i, n, s, parameters, gradients) for i, (n, s) in enumerate(items)]
    objects = [id(x.layer) for x in built if x.kind == "module"]
    if len(objects) != len(set(objects)):
        raise ValueError("layers holds the same layer object twice: its recorded state would "
                         "be overwritten (a shared layer cannot be checked layer by layer)")
    if loss is not None and not callable(loss):
        raise TypeError("loss must be callable: loss(out, *args) -> (value, dout)")
    one_of(input_check, "input_check", INPUT_CHECKS)
    input_subset = integer(input_subset, "input_subset", "input coordinates")
    input_directions = integer(input_directions, "input_directions", "directions")
    chain_rtol = positive_float(chain_rtol, "chain_rtol")
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.floating) or not np.all(np.isfinite(X)):
        raise ValueError("X must be a finite float array")
    given = [None] * len(built)
    if grads is not None:
        if isinstance(grads, dict):
            if isinstance(layers, dict):
                unknown = [k for k in grads if k not in layers]
                if unknown:
                    raise ValueError(f"grads has a key {unknown[0]!r} that names no layer")
                grads = [grads.get(n) for n, _ in items]
            else:
                raise TypeError("grads is a dict but layers is a list: pass a list of "
                                "per-layer gradients")
        if not isinstance(grads, (list, tuple)) or len(grads) != len(built):
            raise ValueError(f"grads must hold one entry per layer ({len(built)}; None for a "
                             "layer without parameters)")
        for layer, g in zip(built, grads, strict=True):
            if g is not None and not (isinstance(g, (tuple, list)) and len(g) == 0):
                given[layer.index] = layer.model_grads(g)
    if dX is not None and np.shape(dX) != X.shape:
        raise ValueError(f"dX has shape {np.shape(dX)} but X has shape {X.shape}")
    return (built, X.astype(np.float64, copy=False), given, input_subset, input_directions,
            chain_rtol)


# -- the check -----------------------------------------------------------------------------------
def _relative(g, r):
    g, r = np.asarray(g, dtype=np.float64), np.asarray(r, dtype=np.float64)
    if g.shape != r.shape:
        return np.inf
    denom = np.linalg.norm(g) + np.linalg.norm(r)
    return float(np.linalg.norm(g - r) / denom) if denom else 0.0


def check_model(layers, X, *args, loss=None, grads=None, dX=None, input_check="subset",
                input_subset=256, input_directions=2, exclude=None, chain_rtol=CHAIN_RTOL,
                parameters="parameters", gradients="gradients", **options):
    """Check a whole model layer by layer, and that its gradients are the chain of the layers'.

    fastgc runs the model forward once and records each layer's input, checks each layer's
    backward in isolation at that input (as :func:`fastgc.check_layer` or
    :func:`fastgc.check_module` would), checks the loss's gradient at the model's output, and
    then feeds the loss's gradient down through every layer's backward and compares the
    result with the model's own gradients ``grads`` and ``dX``.

    Parameters
    ----------
    layers : list (or dict of names to layers)
        The model, first layer first. Each layer is either a tuple ``(forward, backward)``,
        ``(forward, backward, params)`` or ``(forward, backward, params, args)`` in the
        convention of :func:`fastgc.check_layer` (``forward(x, *params, *args)`` returning
        ``out`` or ``(out, cache)``, ``backward(dout, cache)`` returning
        ``(dx, *dparams)``; ``params`` a tuple of arrays, or a dict passed as keywords;
        ``args`` a tuple of undifferentiated arguments, or one such argument), or a stateful
        layer object as :func:`fastgc.check_module` takes it.
    X : array
        The model's input.
    *args
        Passed to ``loss`` after the model's output (labels).
    loss : callable, optional
        ``loss(out, *args)`` returning ``(value, dout)``, e.g. ``softmax_loss(scores, y)``.
        Its ``dout`` is checked too, and is the cotangent the chain starts from. Default:
        none; the chain starts from a seeded Gaussian cotangent at the model's output.
    grads : list (or dict keyed like ``layers``), optional
        The model's gradients as its own backward computed them: one entry per layer, in the
        structure of that layer's ``params`` (a tuple in ``params``' order, or a dict keyed
        by parameter name or ``"d" + name``; a dict like ``layer.gradients`` for an object),
        None for a layer without parameters (or one not to compare). Without ``grads`` and
        ``dX`` there is nothing to compare the chain with, and only the layers are checked.
    dX : array, optional
        The model's gradient with respect to ``X``, compared with the chain's.
    input_check : {"subset", "full", "directions", "none"}
        How each layer's input gradient is checked: at ``input_subset`` seeded random
        coordinates (default: the activations usually outnumber the parameters, and a wrong
        formula shows at most coordinates), at every coordinate, along ``input_directions``
        random directions (sees every entry, but only for smooth layers: a direction through
        a kink, such as the tied zeros that a max-pool gets from a relu, makes it fail), or
        not at all. Coordinates at a kink are judged by one-sided differences.
    input_subset : int
        Coordinates per layer input when ``input_check="subset"`` (an input no larger is
        checked whole).
    input_directions : int
        Directions per layer input when ``input_check="directions"``.
    exclude : str, list of str or callable, optional
        Parameters left out of every check (``"running_mean"``), matched in each layer.
    chain_rtol : float
        Relative tolerance of the chain comparison (default ``sqrt(eps)``, 1.5e-8).
    parameters, gradients : str
        Attribute names of layer objects' parameter and gradient dicts.
    **options
        Options of :func:`fastgc.check` for the parameter checks (``method``, ``subset``,
        ``seed``, ...). ``subset``/``directions`` apply to the parameters, not the inputs.

    Returns
    -------
    ModelResult
        ``passed``, ``verdict`` (a sentence naming the guilty layer), ``guilty``, per-layer
        ``LayerResult`` s (``params`` and ``input`` CheckResults, ``chain``
        differences), the loss's CheckResult, ``chain_passed``.

    Raises
    ------
    TypeError, ValueError
        A layer that is neither a tuple nor a layer object, ``grads`` with the wrong number
        of entries, an unknown ``input_check``; the front ends' own errors.

    Notes
    -----
    A model's backward is the composition of its layers' vector-Jacobian products:
    ``dx_l = v_l(x_l, dx_{l+1})`` from ``dx_L = dloss/dout``. If each ``v_l`` agrees with
    finite differences of ``<c, f_l(x_l)>`` at the recorded ``x_l`` and the model's gradients
    equal the composition, the model's gradient is right. A full check perturbs each
    parameter of layer ``l`` once each way and runs only ``f_l``, against the whole model
    for a whole-model check. Layer objects run on deep copies of their state and are left as
    they were.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> def affine_forward(x, w, b):
    ...     return x @ w + b, (x, w)
    >>> def affine_backward(dout, cache):
    ...     x, w = cache
    ...     return dout @ w.T, x.T @ dout, dout.sum(axis=0)
    >>> def relu_forward(x):
    ...     return np.maximum(x, 0), x
    >>> def relu_backward(dout, x):
    ...     return dout * (x > 0)
    >>> def mse(out, y):
    ...     return 0.5 * np.sum((out - y) ** 2), out - y
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    >>> W1, b1, W2, b2 = (rng.normal(size=(3, 5)), rng.normal(size=5),
    ...                   rng.normal(size=(5, 2)), rng.normal(size=2))
    >>> layers = [(affine_forward, affine_backward, (W1, b1)),
    ...           (relu_forward, relu_backward),
    ...           (affine_forward, affine_backward, (W2, b2))]
    >>> h, c1 = affine_forward(X, W1, b1)                  # the model's own backward
    >>> a, c2 = relu_forward(h)
    >>> out, c3 = affine_forward(a, W2, b2)
    >>> da, dW2, db2 = affine_backward(mse(out, y)[1], c3)
    >>> dX, dW1, db1 = affine_backward(relu_backward(da, c2), c1)
    >>> result = fastgc.check_model(layers, X, y, loss=mse,
    ...                             grads=[(dW1, db1), None, (dW2, db2)], dX=dX)
    >>> result.passed, result.guilty
    (True, [])
    >>> result = fastgc.check_model(layers, X, y, loss=mse,       # relu's gradient dropped
    ...                             grads=[affine_backward(da, c1)[1:], None, (dW2, db2)])
    >>> result.passed, result.guilty
    (False, ['0:affine_forward'])
    """
    start = time.perf_counter()
    built, X, given, input_subset, input_directions, chain_rtol = _validate(
        layers, X, loss, grads, dX, input_check, input_subset, input_directions, chain_rtol,
        parameters, gradients)
    matcher = exclusion(exclude)
    try:
        # One recorded forward pass.
        inputs, caches, x = [], [], X
        for layer in built:
            inputs.append(x)
            out, cache = layer.record(x)
            caches.append(cache)
            # C order: the layer checks perturb copies of it, and a forward that reshapes
            # its input (a dense layer after a transposed conv output) then reads it without
            # a copy at every evaluation
            x = np.ascontiguousarray(out, dtype=np.float64)
        loss_result = None
        if loss is not None:
            _, dout = loss(x.copy(), *args)
            loss_result = check(loss, dout, x, *args, **_input_options(options))
            dout = np.asarray(dout, dtype=np.float64)
        else:
            dout = np.random.default_rng(options.get("seed", 0) or 0).standard_normal(x.shape)
        # The chain: the loss's gradient through every layer's backward, top to bottom.
        chain_grads, chain_dx = [None] * len(built), None
        for layer in reversed(built):
            dout, chain_grads[layer.index] = layer.chain(dout, caches[layer.index])
            dout = np.asarray(dout, dtype=np.float64)
        chain_dx = dout
        # Each layer's backward, in isolation at its recorded input.
        checks = [_check_layer(layer, inputs[layer.index], matcher, input_check, input_subset,
                               input_directions, options) for layer in built]
    finally:
        for layer in built:
            if layer.kind == "module":
                layer.restore()
    results = []
    for layer, (params_result, input_result) in zip(built, checks, strict=True):
        chain = {}
        if given[layer.index] is not None:
            chain = {k: _relative(g, chain_grads[layer.index][k])
                     for k, g in given[layer.index].items()
                     if not (matcher and matcher(k, (k,)))}
        if layer.index == 0 and dX is not None:
            chain["X"] = _relative(dX, chain_dx)
        results.append(LayerResult(
            layer.index, layer.name, params_result, input_result, chain,
            all(d <= chain_rtol for d in chain.values()) if chain else None,
            all(r is None or r.passed for r in (params_result, input_result))))
    return _verdict(results, loss_result, chain_rtol, start)


def _input_options(options):
    # The input gradient (and the loss's) is checked coordinate by coordinate or along
    # directions whatever the parameters' mode.
    return {k: v for k, v in options.items() if k not in ("subset", "directions")}


def _check_layer(layer, x, matcher, input_check, input_subset, input_directions, options):
    """The layer's parameter and input gradients checked at its recorded input ``x``:
    ``(params, input)``, each a CheckResult or None."""
    x_name = layer.x_name

    def user_excludes(path):
        return bool(matcher and matcher(path, (path.split("[")[0],)))

    trainable = [n for n in layer.param_names if not user_excludes(n)]
    params = None
    if trainable:
        params = layer.check(x, lambda p: p == x_name or user_excludes(p), options)
    inp = None
    if input_check != "none":
        inp_options = _input_options(options)
        if input_check == "directions":
            inp_options.update(directions=int(input_directions), method="central")
        elif input_check == "subset" and np.size(x) > input_subset:
            inp_options.update(subset=int(input_subset))
        inp = layer.check(x, lambda p: p != x_name, inp_options)
    return params, inp


def _verdict(results, loss_result, chain_rtol, start):
    guilty, sentences = [], []
    if loss_result is not None and not loss_result.passed:
        guilty.append("loss")
        sentences.append("the loss's gradient (dout) fails at the model's output")
    own = [r for r in results if not r.passed]
    for r in reversed(own):
        guilty.append(r.name)
    if own:
        which = ", ".join(f"layer {r.name} ({'; '.join(r.failures())})" for r in reversed(own))
        sentences.append(f"backward fails at its recorded input: {which}")
    compared = [r for r in results if r.chain_passed is not None]
    chain_passed = None if not compared else all(r.chain_passed for r in compared)
    if chain_passed is False:
        # The first layer from the top whose model gradient leaves the chain: the cotangent
        # that reached it (or its own gradient bookkeeping) is wrong.
        top = max((r for r in compared if not r.chain_passed), key=lambda r: r.index)
        above = [r for r in compared if r.index > top.index]
        agree = min((r for r in above), key=lambda r: r.index, default=None)
        src = f"layer {agree.name}, whose gradients agree," if agree else "the loss"
        bad = ", ".join(f"{k} {d:.2g}" for k, d in top.chain.items() if d > chain_rtol)
        sentences.append(
            f"the model's gradients are not the chain of the layer backward passes from layer "
            f"{top.name} down (relative difference {bad}): the cotangent is dropped or "
            f"altered between {src} and layer {top.name}'s backward")
        # A layer at or above the break that fails on its own explains the break (fastgc's
        # chain ran through its wrong backward): blame that layer, not the link.
        if not any(r.index >= top.index for r in own):
            guilty.append(top.name)
    passed = not guilty
    if passed:
        verdict = ("every layer's backward matches finite differences at its recorded input"
                   + ("" if loss_result is None else ", the loss's gradient too")
                   + (", and the model's gradients are the chain of the layer backward "
                      "passes" if chain_passed else
                      " (no model gradients given: the chain was not compared)"))
    else:
        verdict = "; ".join(sentences)
    nfev = 1 + sum(c.nfev for r in results for c in (r.params, r.input) if c is not None)
    nfev += loss_result.nfev if loss_result is not None else 0
    return ModelResult(passed, verdict, guilty, results, loss_result, chain_passed,
                       float(chain_rtol), int(nfev), time.perf_counter() - start)
