"""PyTorch front end: check what autograd runs for a function or module, on its device and dtype.

Public API
----------
check
    the backward autograd runs for ``fn(*inputs)`` (a custom ``Function.apply``, any
    differentiable code), against finite differences of ``fn``
check_module
    the same for an ``nn.Module``: its parameters and differentiable inputs
gradcheck
    a drop-in for ``torch.autograd.gradcheck`` answering with fastgc's verdict

This module imports torch; ``import fastgc`` does not import it.

How a check runs: the outputs are projected to the scalar ``J = sum_k <c_k, out_k>`` with a
seeded Gaussian cotangent ``c`` (accumulated in float64 on the inputs' device); autograd gives
``c^T (d out / d inputs)`` once (twice more for nondeterminism and linearity); perturbed points
``x + h e_i`` are formed with torch ops on the inputs' device and in their dtype, evaluated in
batches with ``torch.func.vmap`` where a batched call gives the single call's cost (checked on
sampled points before the check), else one call per point. Only the scalar costs come to the
host. The numerics (steps, noise, verdict, diagnosis) are fastgc's, unchanged.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from fastgc._framework import (
    MAX_LOOP_CHUNK,
    FrameworkResult,
    batch_size,
    excluded,
    names_of,
    reference_check,
    run_core,
    seed_of,
    validate,
    with_findings,
)

__all__ = ["check", "check_module", "gradcheck"]

_LOWER = (torch.float16, torch.bfloat16, torch.float32)


# -- state the evaluations must not move ---------------------------------------------------------
class _State:
    """RNG states (and a module's buffers and train/eval flags) as they were before the check.

    Every evaluation starts from the saved RNG state, so a forward that draws random numbers
    (dropout in train mode) is the same function at every point, and the analytic backward
    sees the same draws; buffers a forward updates (running statistics) are put back after
    each call. ``restore()`` leaves everything as it was found.
    """

    def __init__(self, module=None):
        self._cpu = torch.get_rng_state()
        self._cuda = (torch.cuda.get_rng_state_all()
                      if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
        self._module = module
        if module is not None:
            self._buffers = [(b, b.detach().clone()) for b in module.buffers()]
            self._modes = [(m, m.training) for m in module.modules()]

    def reset_rng(self):
        torch.set_rng_state(self._cpu)
        if self._cuda is not None:
            torch.cuda.set_rng_state_all(self._cuda)

    def after_call(self):
        if self._module is not None:
            with torch.no_grad():
                for live, saved in self._buffers:
                    live.copy_(saved)

    def restore(self):
        self.reset_rng()
        if self._module is not None:
            self.after_call()
            for m, mode in self._modes:
                m.training = mode


# -- the backend the framework engine evaluates ------------------------------------------------
class _Backend:
    """The projected cost of a torch function, evaluated at perturbed points on its device.

    ``forward(tensors)`` runs the user's code with ``tensors`` as the checked blocks (in
    layout order) and returns a tuple of outputs; ``cotangents`` are float64 tensors on the
    outputs' devices, one per floating output.
    """

    fastgc_framework = "torch"
    framework = "torch"

    def __init__(self, forward, base, names, cotangents, state, acc_dtype, max_memory):
        self._forward = forward
        self.base = base
        self.names = names
        self._cot = cotangents
        self._state = state
        self._acc = acc_dtype
        self._max_memory = max_memory
        self.batched = False
        self._point_bytes = [t.numel() * t.element_size() for t in base]
        self._out_bytes = 0
        self._base_value = None
        self._measure()

    # -- one cost ----------------------------------------------------------------------------
    def _project(self, outs):
        total = None
        for c, o in zip(self._cot, _floating(outs), strict=True):
            term = torch.sum(c * o.to(self._acc))
            total = term if total is None else total + term
        return total

    def _single(self, tensors):
        """The projected cost at ``tensors``, a 0-d tensor on the device (no host sync)."""
        self._state.reset_rng()
        try:
            with torch.no_grad():
                return self._project(_as_tuple(self._forward(tensors)))
        finally:
            self._state.after_call()

    def base_cost(self) -> float:
        if self._base_value is None:
            self._base_value = float(self._single(self.base))
        return self._base_value

    def __call__(self, params) -> float:
        """The cost at numpy ``params`` (a dict by block name): for ``engine="loop"``."""
        tensors = [torch.as_tensor(np.asarray(params[n]), dtype=t.dtype).to(t.device)
                   for n, t in zip(self.names, self.base, strict=True)]
        return float(self._single(tensors))

    def chunk_for(self, blocks) -> int:
        if not self.batched:
            return MAX_LOOP_CHUNK
        stacked = sum(self._point_bytes[b] for b in blocks) + self._out_bytes
        # intermediates of the forward are batched too: a few times the stacked bytes
        return max(1, batch_size(4 * stacked, self._max_memory) - 1)

    # -- batches -----------------------------------------------------------------------------
    def _batched(self, blocks, stacks):
        """Costs at the rows of ``stacks`` (one per block in ``blocks``), one vmap call."""
        from torch.func import vmap

        def one(*values):
            tensors = list(self.base)
            for b, v in zip(blocks, values, strict=True):
                tensors[b] = v
            return self._project(_as_tuple(self._forward(tensors)))

        self._state.reset_rng()
        try:
            with torch.no_grad():
                return vmap(one, randomness="error")(*stacks)
        finally:
            self._state.after_call()

    def coordinate_costs(self, b, local, steps):
        base = self.base[b]
        flat = base.reshape(-1)
        idx = torch.as_tensor(local, dtype=torch.long, device=base.device)
        st = torch.as_tensor(steps, device=base.device).to(base.dtype)
        moved = flat[idx] + st
        actual = (moved - flat[idx]).to(torch.float64)
        m = len(local)
        if self.batched:
            stack = flat.unsqueeze(0).repeat(m + 1, 1)
            stack[torch.arange(1, m + 1, device=base.device), idx] = moved
            values = self._batched([b], [stack.reshape((m + 1,) + tuple(base.shape))])
        else:
            costs = [torch.as_tensor(self.base_cost(), dtype=self._acc, device=base.device)]
            for j in range(m):
                x = flat.clone()
                x[idx[j]] = moved[j]
                tensors = list(self.base)
                tensors[b] = x.reshape(base.shape)
                costs.append(self._single(tensors).to(base.device))
            values = torch.stack(costs)
        return (values.detach().to("cpu", torch.float64).numpy(),
                actual.cpu().numpy())

    def direction_costs(self, pieces, steps):
        touched = sorted({b for per in pieces for b, _, _ in per})
        m = len(pieces)
        if self.batched:
            stacks = {}
            for b in touched:
                flat = self.base[b].reshape(-1)
                stacks[b] = flat.unsqueeze(0).repeat(m + 1, 1)
            for r, per in enumerate(pieces):
                for b, local, values in per:
                    s = stacks[b]
                    idx = torch.as_tensor(local, dtype=torch.long, device=s.device)
                    v = torch.as_tensor(values * steps[r], device=s.device).to(s.dtype)
                    s[r + 1, idx] = s[r + 1, idx] + v
            shaped = [stacks[b].reshape((m + 1,) + tuple(self.base[b].shape)) for b in touched]
            values = self._batched(touched, shaped)
        else:
            base_dev = self.base[0].device
            costs = [torch.as_tensor(self.base_cost(), dtype=self._acc, device=base_dev)]
            for r, per in enumerate(pieces):
                tensors = list(self.base)
                for b, local, values in per:
                    x = self.base[b].reshape(-1).clone()
                    idx = torch.as_tensor(local, dtype=torch.long, device=x.device)
                    x[idx] = x[idx] + torch.as_tensor(values * steps[r],
                                                      device=x.device).to(x.dtype)
                    tensors[b] = x.reshape(self.base[b].shape)
                costs.append(self._single(tensors).to(base_dev))
            values = torch.stack(costs)
        return values.detach().to("cpu", torch.float64).numpy()

    # -- the analytic side -------------------------------------------------------------------
    def vjp(self, cotangents) -> np.ndarray:
        """``c^T d out / d blocks``, flat float64 on the host: one backward, one transfer."""
        leaves = [t.detach().clone().requires_grad_(True) for t in self.base]
        self._state.reset_rng()
        try:
            with torch.enable_grad():
                outs = _floating(_as_tuple(self._forward(leaves)))
                pairs = [(o, c) for o, c in zip(outs, cotangents, strict=True)
                         if o.requires_grad]
                if not pairs:
                    raise ValueError("no output of fn depends on the checked inputs "
                                     "differentiably (no output requires grad)")
                grads = torch.autograd.grad([o for o, _ in pairs], leaves,
                                            grad_outputs=[c for _, c in pairs],
                                            allow_unused=True)
        finally:
            self._state.after_call()
        flat = [torch.zeros(t.numel(), dtype=torch.float64, device=t.device) if g is None
                else g.detach().reshape(-1).to(torch.float64)
                for g, t in zip(grads, leaves, strict=True)]
        return torch.cat([f.cpu() for f in flat]).numpy()

    def _measure(self):
        """The projected output's scale (sum |c o|), its rms rounding and its bytes."""
        self._state.reset_rng()
        try:
            with torch.no_grad():
                outs = _floating(_as_tuple(self._forward(self.base)))
        finally:
            self._state.after_call()
        self._out_bytes = sum(o.numel() * o.element_size() for o in outs)
        terms = [(c * o.to(self._acc)) for c, o in zip(self._cot, outs, strict=True)]
        self.scale = float(sum(torch.sum(torch.abs(t)) for t in terms))
        eps = max(float(torch.finfo(t.dtype).eps) for t in [*self.base, *outs])
        self.eps = eps
        # each output entry rounded in its dtype: sigma ~ eps sqrt(sum (c_k o_k)^2)
        self._floor = eps * math.sqrt(float(sum(torch.sum(t * t) for t in terms)))

    def noise_floor(self) -> float:
        return self._floor


def _as_tuple(out):
    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, (tuple, list)):
        return tuple(out)
    raise TypeError(f"fn must return a tensor or a tuple of tensors, not {type(out).__name__}")


def _floating(outs):
    return [o for o in outs if isinstance(o, torch.Tensor) and o.is_floating_point()]


# -- the shared driver of check and check_module ------------------------------------------------
def _draw_cotangents(outs, cotangent, seed):
    """One cotangent per floating output, in the output's dtype and device."""
    outs = _floating(outs)
    if not outs:
        raise TypeError("fn returned no floating-point tensor: nothing to differentiate")
    if cotangent is None:
        rng = np.random.default_rng(seed)
        values = [rng.standard_normal(tuple(o.shape)) for o in outs]
        return [torch.as_tensor(v).to(o.device, o.dtype) for v, o in zip(values, outs,
                                                                       strict=True)]
    given = _as_tuple(cotangent) if not isinstance(cotangent, np.ndarray) else (cotangent,)
    if len(given) != len(outs):
        raise ValueError(f"cotangent has {len(given)} tensors but fn returns {len(outs)} "
                         "floating outputs")
    result = []
    for k, (c, o) in enumerate(zip(given, outs, strict=True)):
        c = torch.as_tensor(c)
        if tuple(c.shape) != tuple(o.shape):
            raise ValueError(f"cotangent[{k}] has shape {tuple(c.shape)} but output {k} has "
                             f"shape {tuple(o.shape)}")
        result.append(c.detach().to(o.device, o.dtype))
    return result


def _validate_options(options, reference_dtype, batching, nondet_tol):
    validate(options, reference_dtype, batching, nondet_tol, "torch", (torch.float64,))


def _run(make, cotangent, reference_dtype, batching, nondet_tol, max_memory, exclude,
         options, _reference_of=None):
    """One check of the problem ``make(dtype)`` builds, and its float64 reference.

    ``make(None)`` returns ``(forward, names, tensors, state)`` at the user's dtype;
    ``make(torch.float64)`` the same problem cast to float64 (or raises: the op does not run
    in float64).
    """
    forward, names, tensors, state = make(None)
    try:
        skip = excluded(names, exclude)
        keep = [k for k, n in enumerate(names) if n not in skip]
        if not keep:
            raise ValueError(f"exclude leaves nothing to check (excluded: {sorted(skip)!r})")
        fixed = list(tensors)

        def forward_kept(values, fixed=fixed, keep=keep):
            full = list(fixed)
            for k, v in zip(keep, values, strict=True):
                full[k] = v
            return forward(full)

        base = [tensors[k] for k in keep]
        kept_names = [names[k] for k in keep]
        state.reset_rng()
        with torch.no_grad():
            outs = _as_tuple(forward(tensors))
        state.after_call()
        cot = (_reference_of if _reference_of is not None
               else _draw_cotangents(outs, cotangent, seed_of(options)))
        acc = torch.float32 if any(t.device.type == "mps" for t in base) else torch.float64
        cot_acc = [c.to(acc) for c in cot]
        backend = _Backend(forward_kept, base, kept_names, cot_acc, state, acc, max_memory)
        params = {n: t.detach().to("cpu", torch.float64).numpy().copy()
                  for n, t in zip(kept_names, base, strict=True)}
        result, layout, notes, marks, spread = run_core(
            backend, params,
            lambda zero: backend.vjp([torch.zeros_like(c) for c in cot] if zero else cot),
            batching=batching, nondet_tol=nondet_tol, max_memory=max_memory,
            options=options, vmap_name="torch.func.vmap")
        lowest = max((t.dtype for t in base), key=lambda d: torch.finfo(d).eps)
        dtype = str(lowest).removeprefix("torch.")
        if skip:
            notes.append(f"excluded (not checked): {', '.join(sorted(skip))}")
    finally:
        state.restore()
    reference = None
    if reference_dtype is not None and lowest in _LOWER:
        reference, more = reference_check(
            reference_dtype, dtype, lambda: make(torch.float64),
            lambda: _run(lambda _: make(torch.float64), None, None, batching, nondet_tol,
                         max_memory, exclude, options,
                         _reference_of=[c.to(torch.float64) for c in cot]))
        notes.extend(more)
    return with_findings(result, layout, dtype=dtype, batched=backend.batched, notes=notes,
                         marks=marks, nondeterminism=spread, reference=reference)


def _checked_inputs(inputs):
    slots = [k for k, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.requires_grad]
    if not slots:
        raise ValueError("no input requires grad: mark the tensors to check with "
                         "requires_grad=True")
    for k in slots:
        if not inputs[k].is_floating_point():
            raise TypeError(f"input {k} requires grad but has dtype {inputs[k].dtype}: only "
                            "real floating-point tensors are checked")
    return slots


def _snapshot(x, dtype):
    """fastgc's own copy of a user tensor (never the user's), optionally cast."""
    if not isinstance(x, torch.Tensor):
        return x
    y = x.detach().clone()
    if dtype is not None and y.is_floating_point():
        y = y.to(dtype)
    return y


# -- public functions ---------------------------------------------------------------------------
def check(fn, *inputs, cotangent=None, reference_dtype="auto", nondet_tol=0.0,
          batching="auto", max_memory=None, exclude=None, **options) -> FrameworkResult:
    """Check the backward autograd runs for ``fn(*inputs)`` against finite differences of fn.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs)`` returning a tensor or a tuple of tensors: a custom
        ``torch.autograd.Function``'s ``apply``, a module call, any differentiable code.
    *inputs
        Tensors with ``requires_grad=True`` are checked, each as one block named after fn's
        parameter (``"x"``, ``"weight"``; ``"input0"``, ... when fn's signature has no
        names); other arguments are passed through unchanged. Never modified: fastgc
        evaluates copies, on the tensors' device and in their dtype.
    cotangent : tensor or tuple of tensors, optional
        The output gradient, one per floating output. Default: seeded standard normal entries.
    reference_dtype : {"auto", "float64", None}
        For a float32/float16/bfloat16 check: ``"auto"`` re-checks in float64 when fn runs in
        float64 (a bug below the low precision's resolution is still caught) and notes it
        when fn does not; ``"float64"`` requires it; None skips it.
    nondet_tol : float
        Backward passes are run twice with the same cotangent; entries that differ by more
        than this fail as nondeterministic (``torch.autograd.gradcheck``'s convention).
        A smaller spread is reported in the notes and ``result.nondeterminism``.
    batching : {"auto", "vmap", "loop"}
        ``"auto"``: ``torch.func.vmap`` where a batched call gives the single calls' costs
        on sampled points, else one call per point; ``"vmap"`` requires it; ``"loop"``: one
        call per point.
    max_memory : int, optional
        Bytes one batched call may stack (inputs and outputs; default 64 MiB).
    exclude : str, list of str or callable, optional
        Checked inputs held fixed instead (by block name).
    **options
        The options of :func:`fastgc.check`: ``method``, ``subset``, ``directions``,
        ``seed``, ``threshold``, ``eps``, ``budget``, ``progress``.

    Returns
    -------
    FrameworkResult
        A :class:`fastgc.CheckResult` with ``dtype``, ``batched``, ``nondeterminism`` and
        ``reference`` (the float64 re-check). ``result.engine`` is ``"torch-vmap"`` or
        ``"torch-loop"``.

    Raises
    ------
    TypeError, ValueError
        No input requiring grad, a non-floating checked input, a cotangent of the wrong
        shape, an unknown option (named).

    Notes
    -----
    ``J(x) = sum_k <c_k, out_k(x)>`` is accumulated in float64 on the device; its gradient,
    ``c^T J_f``, is one autograd backward. Lower-precision inputs are perturbed in their own
    dtype; fastgc measures the cost's noise and sets the step and threshold from it, so a
    correct float32 op passes. RNG state is reset before every evaluation (dropout draws the
    same mask at every point) and restored afterwards.

    Examples
    --------
    >>> import torch, fastgc.torch
    >>> class Square(torch.autograd.Function):
    ...     @staticmethod
    ...     def forward(x):
    ...         return x * x
    ...     @staticmethod
    ...     def setup_context(ctx, inputs, output):
    ...         ctx.save_for_backward(inputs[0])
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 2 * x * g
    ...     generate_vmap_rule = True
    >>> x = torch.linspace(-1, 1, 5, dtype=torch.float64, requires_grad=True)
    >>> result = fastgc.torch.check(Square.apply, x)
    >>> result.passed, result.engine, list(result.blocks)
    (True, 'torch-vmap', ['input0'])
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {type(fn).__name__}")
    _validate_options(options, reference_dtype, batching, nondet_tol)
    slots = _checked_inputs(inputs)
    all_names = names_of(fn, len(inputs))
    names = [all_names[k] for k in slots]
    if len(set(names)) != len(names):
        names = [f"input{k}" for k in slots]

    def make(dtype):
        args = [_snapshot(x, dtype) for x in inputs]

        def forward(values):
            full = list(args)
            for k, v in zip(slots, values, strict=True):
                full[k] = v
            return fn(*full)

        tensors = [args[k] for k in slots]
        if dtype is not None:  # the op must run in float64 for a reference check
            with torch.no_grad():
                outs = _floating(_as_tuple(forward(tensors)))
            if any(o.dtype != torch.float64 for o in outs):
                raise TypeError("its outputs are not float64 for float64 inputs")
        return forward, names, tensors, _State()

    return _run(make, cotangent, reference_dtype, batching, nondet_tol, max_memory, exclude,
                options)


def check_module(module, *inputs, loss=None, cotangent=None, reference_dtype="auto",
                 nondet_tol=0.0, batching="auto", max_memory=None, exclude=None,
                 **options) -> FrameworkResult:
    """Check an ``nn.Module``'s backward: its parameters and its differentiable inputs.

    Parameters
    ----------
    module : torch.nn.Module
        Evaluated with ``torch.func.functional_call`` at perturbed parameters; the module's
        own parameters are never changed. Buffers (running statistics), train/eval mode and
        the RNG state are as they were afterwards.
    *inputs
        Passed to ``module(*inputs)``; tensors with ``requires_grad=True`` are checked too,
        named after ``forward``'s parameters.
    loss : callable, optional
        ``loss(output) -> scalar tensor``: check the gradient of the loss (cotangent 1)
        instead of a random projection of the output.
    cotangent, reference_dtype, nondet_tol, batching, max_memory, exclude : optional
        As for :func:`check`.
    **options
        As for :func:`check`; blocks are named by ``named_parameters()`` (``"0.weight"``).

    Returns
    -------
    FrameworkResult
        Blocks for the differentiable inputs, then one per parameter with ``requires_grad``.

    Examples
    --------
    >>> import torch, fastgc.torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh()).double()
    >>> result = fastgc.torch.check_module(net, torch.randn(2, 3, dtype=torch.float64))
    >>> result.passed, list(result.blocks)
    (True, ['0.weight', '0.bias'])
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, not {type(module).__name__}")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be callable, loss(output) -> scalar, not "
                        f"{type(loss).__name__}")
    if loss is not None and cotangent is not None:
        raise ValueError("pass loss or cotangent, not both: a loss is checked with "
                         "cotangent 1")
    _validate_options(options, reference_dtype, batching, nondet_tol)
    slots = [k for k, x in enumerate(inputs)
             if isinstance(x, torch.Tensor) and x.requires_grad]
    input_names = names_of(module.forward, len(inputs))
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    names = [input_names[k] for k in slots] + [n for n, _ in params]
    if len(set(names)) != len(names):
        raise ValueError(f"an input and a parameter share a name: {names!r}")
    if not names:
        raise ValueError("nothing to check: the module has no parameter with requires_grad "
                         "and no input requires grad")

    def make(dtype):
        mod = module if dtype is None else copy.deepcopy(module).to(dtype)
        args = [_snapshot(x, dtype) for x in inputs]
        own = dict(mod.named_parameters())
        tensors = [args[k] for k in slots] + [_snapshot(own[n], None) for n, _ in params]

        def forward(values):
            full = list(args)
            for k, v in zip(slots, values[:len(slots)], strict=True):
                full[k] = v
            p = dict(zip([n for n, _ in params], values[len(slots):], strict=True))
            out = torch.func.functional_call(mod, p, tuple(full))
            return out if loss is None else loss(out)

        state = _State(mod)
        if dtype is not None:
            try:
                with torch.no_grad():
                    outs = _floating(_as_tuple(forward(tensors)))
            finally:
                state.restore()
            if any(o.dtype != torch.float64 for o in outs):
                raise TypeError("its outputs are not float64 for float64 parameters")
        return forward, names, tensors, state

    if loss is not None:
        cotangent = torch.ones(())
    return _run(make, cotangent, reference_dtype, batching, nondet_tol, max_memory, exclude,
                options)


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              nondet_tol=0.0, check_undefined_grad=True, check_grad_dtypes=False,
              check_batched_grad=False, check_batched_forward_grad=False,
              check_forward_ad=False, check_backward_ad=True, fast_mode=False,
              masked=None) -> bool:
    """A drop-in for ``torch.autograd.gradcheck`` that answers with fastgc's verdict.

    Same signature and return convention: True when the backward is right; when it is not,
    ``torch.autograd.gradcheck.GradcheckError`` (a RuntimeError) with fastgc's report (which
    input, which entries, what factor), or False with ``raise_exception=False``.

    Parameters
    ----------
    func, inputs : callable, Tensor or tuple of Tensor
        As for ``torch.autograd.gradcheck``: a tensor or a tuple of them; those with
        ``requires_grad`` are checked, in their own dtype (a float32 op is not failed for
        being float32; the float64 reference check runs where the op allows it).
    eps, atol, rtol : float, optional
        Accepted for compatibility and not used: fastgc chooses the step from the cost's
        measured noise and the tolerance from its error model (torch's ``rtol=1e-3`` is what
        lets a bug of 1e-3 pass).
    raise_exception : bool
        Raise on failure (default) or return False.
    nondet_tol : float
        As in torch: two backward passes may differ by this much per entry.
    check_undefined_grad : bool, optional
        Accepted for compatibility; not used.
    check_grad_dtypes, check_batched_grad, check_batched_forward_grad, check_forward_ad : bool
        Delegated, when True, to ``torch.autograd.gradcheck`` itself (its forward-mode and
        batched checks; fastgc checks the backward).
    check_backward_ad : bool
        False skips fastgc's backward check (only the delegated checks run).
    fast_mode : bool
        The directions mode of fastgc (4 random directions per input, whole-input two-step
        extrapolation, bisection to the wrong entries) instead of every coordinate.
    masked : bool, optional
        Accepted for compatibility; not used.

    Returns
    -------
    bool
        True, or False with ``raise_exception=False`` when a check fails.

    Examples
    --------
    >>> import torch, fastgc.torch
    >>> x = torch.rand(4, dtype=torch.float32, requires_grad=True)   # float32 is fine
    >>> fastgc.torch.gradcheck(torch.sin, (x,))
    True
    """
    del eps, atol, rtol, check_undefined_grad, masked  # see the docstring
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    from torch.autograd.gradcheck import GradcheckError

    if check_backward_ad:
        result = check(func, *inputs, nondet_tol=nondet_tol,
                       **({"directions": 4} if fast_mode else {}))
        if not result.passed:
            if raise_exception:
                raise GradcheckError("fastgc: the backward disagrees with finite "
                                     "differences\n" + result.report(color=False))
            return False
    if check_forward_ad or check_batched_grad or check_batched_forward_grad or check_grad_dtypes:
        return torch.autograd.gradcheck(
            func, inputs, raise_exception=raise_exception, nondet_tol=nondet_tol,
            check_backward_ad=check_batched_grad or check_grad_dtypes,
            check_batched_grad=check_batched_grad, check_grad_dtypes=check_grad_dtypes,
            check_forward_ad=check_forward_ad,
            check_batched_forward_grad=check_batched_forward_grad,
            check_undefined_grad=False, fast_mode=True)
    return True
