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

# Points per batched call at most; the memory budget below usually binds first.
MAX_BATCH = 1024
# Bytes one batched call may hold in stacked inputs and outputs (their intermediates come on
# top, in proportion): small enough for a laptop or a shared GPU.
DEFAULT_BATCH_MEMORY = 64 * 2**20


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
