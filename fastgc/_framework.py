"""What ``fastgc.torch`` and ``fastgc.jax`` share: the result, and the verdicts they add.

A framework front end turns the user's function into a cotangent-projected scalar cost held by
a *backend* (the framework's tensors on their device and dtype), fetches the analytic gradient
once, and hands both to the core :func:`fastgc.check`, whose engine (``engine="framework"``,
``fastgc._engines.framework``) asks the backend for batches of perturbed costs. Afterwards
the front end adds what only it can see, each as a new result (never an edit of a finished
one): a backward that differs between two runs (nondeterminism), one that is not zero for a
zero cotangent, and the float64 reference check of a lower-precision op.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from fastgc._core.result import CheckResult, nonzero_failures
from fastgc._core.validate import non_negative_float, one_of

# Points per batched call at most; the memory budget below usually binds first.
MAX_BATCH = 1024
# Bytes one batched call may hold in stacked inputs and outputs (their intermediates come on
# top, in proportion): small enough for a laptop or a shared GPU.
DEFAULT_BATCH_MEMORY = 64 * 2**20
# One call per point: any number of points per engine call.
MAX_LOOP_CHUNK = 1 << 30


@dataclass(eq=False)
class FrameworkResult(CheckResult):
    """What ``fastgc.torch.check`` and ``fastgc.jax.check_vjp`` return.

    A :class:`CheckResult` with the framework's own findings.

    Attributes
    ----------
    dtype : str
        The dtype the check ran in (the inputs' own: ``"float32"``, ``"float64"``, ...).
    batched : bool
        Whether perturbed points were evaluated in batches by the framework's ``vmap``
        (``engine`` ends in ``-vmap``) or one call per point (``-loop``); ``notes`` says why.
    nondeterminism : float
        The largest difference between two backward passes with the same cotangent
        (0.0 for a deterministic backward).
    reference : CheckResult or None
        The float64 re-check of a lower-precision op (``reference_dtype="auto"``), or None.
        ``passed`` and ``blocks`` already include its verdict: a block that passes in its own
        dtype but fails in float64 fails, with the float64 diagnosis.

    All other attributes are :class:`CheckResult`'s.
    """

    dtype: str = ""
    batched: bool = False
    nondeterminism: float = 0.0
    reference: CheckResult | None = None

    __eq__ = CheckResult.__eq__
    __hash__ = None

    def report(self, color: bool | None = None) -> str:
        """The readable report, ``str(result)``, with the float64 reference check's below it.

        Parameters
        ----------
        color : bool, optional
            ANSI colours for passed and FAILED; by default only on a terminal without
            ``NO_COLOR`` set.

        Returns
        -------
        str
            The report, one line per block (or section), as ``print(result)`` shows it.
        """
        text = super().report(color)
        if self.reference is not None:
            ref = self.reference.report(color).replace("\n", "\n  ")
            text += f"\n  float64 reference check:\n  {ref}"
        return text


def with_findings(result: CheckResult, layout, *, dtype: str, batched: bool, notes=(),
                  marks=(), nondeterminism: float = 0.0,
                  reference: CheckResult | None = None) -> FrameworkResult:
    """A new :class:`FrameworkResult` from the core's ``result``.

    ``marks`` are ``(flat values, reason)``: a block fails where its part of the values is not
    zero (a backward not zero for a zero cotangent, or a spread beyond ``nondet_tol``).
    ``reference`` (a float64 re-check) fails the blocks it fails.
    """
    blocks = result.with_failures(nonzero_failures(layout, marks)).blocks
    if reference is not None:
        for name, ref in reference.blocks.items():
            if name in blocks and blocks[name].passed and not ref.passed:
                blocks[name] = dataclasses.replace(
                    ref, diagnosis=f"in the float64 reference check: {ref.diagnosis}")
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(CheckResult)}
    fields.update(blocks=blocks, passed=all(b.passed for b in blocks.values()),
                  notes=list(result.notes) + list(notes))
    return FrameworkResult(**fields, dtype=dtype, batched=batched,
                           nondeterminism=float(nondeterminism), reference=reference)


def nondeterminism_marks(layout, first: np.ndarray, second: np.ndarray, nondet_tol: float):
    """The spread of two backward passes: ``(marks, notes, spread)``.

    A spread above ``nondet_tol`` fails the blocks where it is (torch's convention: the
    tolerance is absolute, per entry); a spread within it is only noted.
    """
    spread = np.abs(second - first)
    largest = float(spread.max()) if spread.size else 0.0
    if largest == 0.0:
        return [], [], 0.0
    if largest > nondet_tol:
        over = np.where(spread > nondet_tol, spread, 0.0)
        return ([(over, f"nondeterministic backward: two runs with the same cotangent differ "
                        f"by more than nondet_tol={nondet_tol:g}")],
                [f"the backward is nondeterministic: two runs differ by up to {largest:.3g} "
                 f"(nondet_tol={nondet_tol:g}); the check used the first"], largest)
    return [], [f"the backward is nondeterministic within nondet_tol={nondet_tol:g}: two runs "
                f"differ by up to {largest:.3g}; the check used the first"], largest


def batch_size(point_bytes: int, max_memory: int | None) -> int:
    """Points per batched call: the memory budget over the bytes one point stacks."""
    budget = DEFAULT_BATCH_MEMORY if max_memory is None else int(max_memory)
    return int(max(1, min(MAX_BATCH, budget // max(1, point_bytes))))


def seed_of(options) -> int:
    seed = options.get("seed", 0)
    return 0 if seed is None else seed


def batch_tolerance(scale: float, eps: float) -> float:
    """How far a batched call's cost may sit from a single call's at the same point: rounding
    of a differently ordered sum (a few hundred ulps of the projected output's scale)."""
    return 256 * eps * max(scale, np.finfo(np.float64).tiny)


# -- what every front end does the same way ------------------------------------------------------
BATCHING = ("auto", "vmap", "loop")
# Blocks whose batched evaluation is compared with single calls before a check (the rest are
# evaluated the same way; a batched call that fails later still raises, naming the point).
PROBE_BLOCKS = 8


def first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def names_of(fn, count):
    """Names for ``count`` positional arguments of ``fn``: its parameters', else ``input<k>``."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return [f"input{i}" for i in range(count)]
    names = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            break
    names = names[:count]
    return names + [f"input{i}" for i in range(len(names), count)]


def excluded(names, exclude) -> set:
    """The block names ``exclude`` (a name, names or a predicate) holds fixed."""
    if exclude is None:
        return set()
    if callable(exclude):
        return {n for n in names if exclude(n)}
    wanted = [exclude] if isinstance(exclude, str) else list(exclude)
    for w in wanted:
        if w not in names:
            raise ValueError(f"exclude names {w!r}, which is no checked input or parameter "
                             f"(they are: {names!r})")
    return set(wanted)


def validate(options, reference_dtype, batching, nondet_tol, framework, float64=()):
    """The options every front end takes, named when wrong (``float64``: the framework's own
    float64 dtype objects, accepted as ``reference_dtype``)."""
    if "workers" in options and options["workers"] not in (None, 1):
        raise ValueError(f"workers= is not supported by fastgc.{framework}: the evaluations "
                         "run where the arrays are (batched with vmap)")
    if not (reference_dtype in ("auto", None, "float64")
            or any(reference_dtype is d for d in float64)):
        raise ValueError(f"reference_dtype must be 'auto', 'float64' or None, not "
                         f"{reference_dtype!r}")
    one_of(batching, "batching", BATCHING)
    non_negative_float(nondet_tol, "nondet_tol")


def choose_batching(backend, batching, layout, params, seed, vmap_name) -> list[str]:
    """Set ``backend.batched``; return the note saying what runs and why.

    ``batching="auto"`` batches only where a batched call gives the single calls' costs, to
    within :func:`batch_tolerance`, on one sampled coordinate per sampled block and one
    direction through every block: vmap runs in-place or data-dependent code without
    complaint but may evaluate something else.
    """
    if batching == "loop":
        return ["one call per point (batching='loop')"]
    tol = batch_tolerance(backend.scale, backend.eps)
    rng = np.random.default_rng(seed)
    blocks = list(range(len(layout.blocks)))
    if len(blocks) > PROBE_BLOCKS:
        blocks = sorted(rng.choice(blocks, PROBE_BLOCKS, replace=False).tolist())
    probes = []
    for b in blocks:
        block = layout.blocks[b]
        k = int(rng.integers(block.size))
        x = float(np.ravel(params[block.name])[k])
        probes.append((b, np.array([k]), np.array([1e-3 * max(1.0, abs(x))])))
    every = [[(b, np.arange(layout.blocks[b].size),
               rng.standard_normal(layout.blocks[b].size) * 1e-3)
              for b in range(len(layout.blocks))]]
    try:
        single = [backend.coordinate_costs(b, k, h)[0] for b, k, h in probes]
        single_dir = backend.direction_costs(every, np.ones(1))
        backend.batched = True
        batched = [backend.coordinate_costs(b, k, h)[0] for b, k, h in probes]
        batched_dir = backend.direction_costs(every, np.ones(1))
    except Exception as exc:  # vmap refuses the function: any reason falls back
        backend.batched = False
        if batching == "vmap":
            raise ValueError(f"batching='vmap': {vmap_name} cannot evaluate fn: "
                             f"{type(exc).__name__}: {first_line(exc)}") from exc
        return [f"one call per point: {vmap_name} cannot evaluate fn "
                f"({type(exc).__name__}: {first_line(exc)})"]
    gap = max(float(np.max(np.abs(s - t))) for s, t in
              zip([*single, single_dir], [*batched, batched_dir], strict=True))
    if not gap <= tol:
        backend.batched = False
        message = (f"{vmap_name} gives another cost than single calls at the same point "
                   f"(by {gap:.3g}, tolerance {tol:.3g}): in-place or data-dependent code?")
        if batching == "vmap":
            raise ValueError(f"batching='vmap': {message}")
        return [f"one call per point: {message}"]
    return [f"batched with {vmap_name} (up to {backend.chunk_for(range(len(layout.blocks)))}"
            " points per call; a batched call matched single calls on sampled points)"]


def run_core(backend, params, gradient, *, batching, nondet_tol, max_memory, options,
             vmap_name, zero_reason="not zero for a zero cotangent"):
    """One backend's check: batching chosen, the backward run three times, the core check.

    ``gradient(zero)`` is the analytic ``c^T J`` (``zero=True``: for a zero cotangent), flat
    float64 on the host. Returns ``(result, layout, notes, marks, spread)`` for
    :func:`with_findings`.
    """
    from fastgc._check import check as core_check
    from fastgc._core.layout import Layout

    layout, _ = Layout.of(params, "inputs")
    notes = choose_batching(backend, batching, layout, params, seed_of(options), vmap_name)
    first, second = gradient(False), gradient(False)
    zero = gradient(True)
    marks, nd_notes, spread = nondeterminism_marks(layout, first, second, nondet_tol)
    marks.append((zero, zero_reason))
    grad = {b.name: first[b.offset:b.stop].reshape(b.shape) for b in layout.blocks}
    result = core_check(backend, grad, params, max_memory=max_memory, **options)
    return result, layout, notes + nd_notes, marks, spread


def reference_check(reference_dtype, dtype, runs_in_float64, rerun):
    """The float64 re-check of a lower-precision op: ``(reference or None, notes)``.

    ``runs_in_float64()`` raises when the op does not run in float64 (then ``"auto"`` notes
    it and ``"float64"`` raises ValueError); ``rerun()`` is the same check in float64.
    """
    try:
        runs_in_float64()
    except Exception as exc:
        if reference_dtype != "auto":
            raise ValueError(f"reference_dtype={reference_dtype!r}: fn does not run in "
                             f"float64 ({type(exc).__name__}: {first_line(exc)})") from exc
        return None, [f"no float64 reference check: fn does not run in float64 "
                      f"({type(exc).__name__}: {first_line(exc)})"]
    reference = rerun()
    return reference, [f"float64 reference check {'passed' if reference.passed else 'FAILED'}"
                       f" (difference {reference.difference:.2e}, threshold "
                       f"{reference.threshold:.1e}): it resolves what {dtype} cannot"]
