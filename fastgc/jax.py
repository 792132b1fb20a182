"""JAX front end: check a function's ``custom_vjp`` / ``custom_jvp`` rules where jax runs it.

Public API
----------
check_vjp
    the reverse-mode derivative jax runs for ``f(*args)`` (``jax.vjp``: a ``custom_vjp``'s
    ``bwd``, a ``custom_jvp`` rule transposed, any jax code)
check_jvp
    the forward-mode derivative (``jax.linearize``: a ``custom_jvp`` rule as written)
check_grads
    a drop-in for ``jax.test_util.check_grads`` answering with fastgc's verdict

This module imports jax; ``import fastgc`` does not import it.

How a check runs: every floating leaf of the arguments (any pytree) is one block, named by the
argument and its path (``"params.w"``). The outputs are projected to the scalar
``J = sum_k <c_k, out_k>`` with a seeded Gaussian cotangent (accumulated in float64 when
``jax_enable_x64`` is on, else float32); the analytic ``c^T (d out / d args)`` comes from
``jax.grad`` of ``J`` (reverse mode) or from ``jax.linearize`` applied to the unit vectors
(forward mode), once, to the host. Perturbed points ``x + h e_i`` are formed by jax on the
arguments' device and in their dtype, evaluated in batches by ``jax.jit(jax.vmap(...))`` where
a batched call gives the single calls' cost (checked on sampled points first), else one call
per point; only the scalar costs come to the host. A float32 (or bfloat16) check is followed
by a float64 reference check inside ``jax.enable_x64(True)``, leaving the global setting alone.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from fastgc._core.validate import integer
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

__all__ = ["check_grads", "check_jvp", "check_vjp"]

_LOWER = (jnp.float16, jnp.bfloat16, jnp.float32)
# Batches of at most this many entries (rows x checked entries) are sent as displacements
# from the host, larger ones formed on the device from indices and steps (see _points).
_DENSE_ENTRIES = 1 << 18


def _padded(m: int) -> int:
    """``m`` rows padded to ``2^k`` or ``1.5 * 2^k`` (at most half as many rows again)."""
    if m <= 4:
        return m
    top = 1 << (m - 1).bit_length()
    return top // 2 + top // 4 if m <= top // 2 + top // 4 else top


def _is_floating(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def _float_leaves(out):
    return [o for o in jax.tree_util.tree_leaves(out) if _is_floating(o)]


def _traced(fn):
    """``jax.jit(fn)`` where fn traces, else fn itself (data-dependent Python control flow,
    host callbacks): decided at the first call, whose error, if fn fails eagerly too, is
    fn's own."""
    jitted = jax.jit(fn)
    state = {}

    def call(*args):
        if "fn" not in state:
            try:
                out = jitted(*args)
            except Exception:
                state["fn"], state["jit"] = fn, False
                return fn(*args)
            state["fn"], state["jit"] = jitted, True
            return out
        return state["fn"](*args)

    call.state = state
    return call


def _points(block, index, steps, base):
    """Rows of perturbed blocks: row ``r`` moves entry ``index[r]`` of block ``block[r]`` by
    ``steps[block[r]][r]`` (in the block's dtype); ``block = -1`` is the unperturbed point.
    Returns the rows of every block and the step actually taken (``(x + h) - x``)."""
    rows, actual = [], []
    for b, x in enumerate(base):
        flat = x.reshape(-1)
        at = jnp.where(block == b, index, -1)  # -1: no entry of this block moves
        moved = flat[jnp.maximum(at, 0)] + steps[b]  # steps[b] is 0 on other blocks' rows
        hit = jnp.arange(flat.size)[None, :] == at[:, None]
        # a select, not a scatter: cheaper for XLA to compile, and it fuses
        rows.append(jnp.where(hit, moved[:, None], flat[None, :])
                    .reshape((index.shape[0],) + x.shape))
        actual.append(moved - flat[jnp.maximum(at, 0)])
    return rows, actual


# -- the backend the framework engine evaluates ------------------------------------------------
class _Backend:
    """The projected cost of a jax function, evaluated at perturbed points on its device.

    ``measure(values, extra)`` returns ``(J, sum |c o|, sum (c o)^2)`` at the checked blocks
    ``values`` (pure jax); ``extra`` holds the other array arguments and the cotangent,
    passed to jitted calls as arguments rather than baked in as constants. Batched points
    are formed by jitted jax code from small index and step arrays, one compile per batch
    size (two sizes at most) for coordinates and one for directions, over every block at
    once. One call per point (the fallback) forms the point on the host in the blocks' dtype
    (the same IEEE rounding) and sends it over: the fallback compiles nothing more.
    """

    fastgc_framework = "jax"
    framework = "jax"

    def __init__(self, kit, base, extra, names, eps, out_bytes, max_memory):
        self.base = base
        self._host = [np.asarray(x) for x in base]  # for the fallback's points
        self._extra = extra
        self.names = names
        self.eps = eps
        self._out_bytes = out_bytes
        self._max_memory = max_memory
        self.batched = False
        self._point_bytes = [b.size * b.dtype.itemsize for b in base]
        self._total = sum(x.size for x in base)
        self._measure = kit.measure
        value, scale, squares = self._measure(base, extra)
        self._base_value, self.scale = float(value), float(scale)
        # each output entry rounded in its dtype: sigma ~ eps sqrt(sum (c_k o_k)^2)
        self._floor = eps * math.sqrt(float(squares))
        self._large = None  # the larger batch size, fixed at the first large request
        self._coordinates, self._directions = kit.coordinates, kit.directions

    # -- one cost ----------------------------------------------------------------------------
    def base_cost(self) -> float:
        return self._base_value

    def _one(self, values) -> float:
        return float(self._measure([jnp.asarray(v) for v in values], self._extra)[0])

    def __call__(self, params) -> float:
        """The cost at numpy ``params`` (a dict by block name): for ``engine="loop"``."""
        return self._one([np.asarray(params[n]).astype(x.dtype)
                          for n, x in zip(self.names, self._host, strict=True)])

    def noise_floor(self) -> float:
        return self._floor

    def chunk_for(self, blocks) -> int:
        del blocks  # a batched call stacks every block (see _points)
        if not self.batched:
            return MAX_LOOP_CHUNK
        stacked = sum(self._point_bytes) + self._out_bytes
        # intermediates are batched too (a few times the stacked bytes), and rows are padded
        return max(1, (2 * batch_size(4 * stacked, self._max_memory)) // 3 - 1)

    def _size(self, rows):
        """Few batch sizes, as jit compiles once per size: a small problem's every request
        padded to one size (enough for every coordinate at two steps); a larger one's small
        requests (probes, bisection) to 32, the rest to a size fixed by the first of them."""
        if self._large is None:
            total = sum(x.size for x in self.base)
            self._large = _padded(min(self.chunk_for(()) + 1, 2 * total + 1))
        if rows <= 32 and self._large > 256:
            return 32
        if rows > self._large:
            self._large = _padded(rows)
        return self._large

    # -- batches -----------------------------------------------------------------------------
    def coordinate_costs(self, b, local, steps):
        m = len(local)
        dtype = self.base[b].dtype
        h = np.asarray(steps, dtype=np.float64).astype(dtype)
        if not self.batched:
            x = self._host[b].reshape(-1)
            values = [self._base_value]
            for k, hk in zip(local, h, strict=True):
                y = x.copy()
                y[k] = x[k] + hk
                point = list(self._host)
                point[b] = y.reshape(self._host[b].shape)
                values.append(self._one(point))
            actual = (x[local] + h) - x[local]
            return np.asarray(values), actual.astype(np.float64)
        size = self._size(m + 1)
        if size * self._total <= _DENSE_ENTRIES:
            # small: the directions' function with one-hot displacements, formed in the
            # dtype (x + h, and x + 0 = x elsewhere: the same points), saves a compile
            deltas = [np.zeros((size, x.size), x.dtype) for x in self._host]
            deltas[b][np.arange(1, m + 1), local] = h
            values = np.asarray(self._directions(deltas, self.base, self._extra))
            x = self._host[b].reshape(-1)
            actual = (x[local] + h) - x[local]
            return values.astype(np.float64)[:m + 1], actual.astype(np.float64)
        # row 0 is the unperturbed point, then the points, then padding (block -1: no move)
        block = np.full(size, -1, dtype=np.int32)
        block[1:m + 1] = b
        index = np.zeros(size, dtype=np.int32)
        index[1:m + 1] = local
        st = [np.zeros(size, dtype=x.dtype) for x in self.base]
        st[b][1:m + 1] = h
        values, actual = self._coordinates(block, index, st, self.base, self._extra)
        return (np.asarray(values, dtype=np.float64)[:m + 1],
                np.asarray(actual[b], dtype=np.float64)[1:m + 1])

    def direction_costs(self, pieces, steps):
        m = len(pieces)
        size = self._size(m + 1) if self.batched else m + 1
        # the displacements travel to the device once, in the blocks' dtype; the points are
        # formed there (base + displacement, rounded in the dtype as the user's op would)
        deltas = [np.zeros((size, x.size)) for x in self.base]
        for r, per in enumerate(pieces):
            for b, local, values in per:
                deltas[b][r + 1, local] += values * steps[r]
        deltas = [d.astype(x.dtype) for d, x in zip(deltas, self.base, strict=True)]
        if self.batched:
            values = np.asarray(self._directions(deltas, self.base, self._extra))
        else:
            values = [self._base_value] + [
                self._one([x + d[r].reshape(x.shape) for x, d in zip(self._host, deltas,
                                                                     strict=True)])
                for r in range(1, m + 1)]
        return np.asarray(values, dtype=np.float64)[:m + 1]


# -- the problem: a function of pytrees, its checked leaves -------------------------------------
class _Problem:
    """``f(*args)`` with its floating leaves as blocks, at the given dtype (None: as given)."""

    def __init__(self, f, args, exclude, dtype=None):
        self.f, self.exclude = f, exclude
        paths, self.treedef = jax.tree_util.tree_flatten_with_path(args)
        leaves = [v for _, v in paths]
        arg_names = names_of(f, len(args))
        names = []
        for path, _ in paths:
            # path[0] is the position in args; the rest is the leaf's place in that argument
            head = arg_names[path[0].idx]
            names.append(".".join([head] + [_key(p) for p in path[1:]]))
        self.slots = []
        for k, v in enumerate(leaves):
            if isinstance(v, float) or _is_floating(v):
                if jnp.iscomplexobj(v):
                    raise TypeError(f"{names[k]} is complex: only real floating-point "
                                    "arrays are checked")
                self.slots.append(k)
                v = jnp.asarray(v)
            elif hasattr(v, "dtype") and jnp.issubdtype(v.dtype, jnp.complexfloating):
                raise TypeError(f"{names[k]} is complex: only real floating-point arrays "
                                "are checked")
            if dtype is not None and _is_floating(v):
                v = jnp.asarray(np.asarray(v).astype(dtype))  # cast on the host, once
            elif isinstance(v, np.ndarray):
                v = jnp.asarray(v)  # fastgc's own copy, on the default device
            leaves[k] = v
        if not self.slots:
            raise ValueError("no floating-point argument to check: args holds no float "
                             "array")
        all_names = [names[k] for k in self.slots]
        if len(set(all_names)) != len(all_names):
            all_names = [f"input{k}" for k in range(len(self.slots))]
        self.names = all_names
        skip = excluded(self.names, exclude)
        self.skipped = sorted(skip)
        self.keep = [k for k, n in zip(self.slots, self.names, strict=True) if n not in skip]
        if not self.keep:
            raise ValueError(f"exclude leaves nothing to check (excluded: {sorted(skip)!r})")
        self.kept_names = [n for n in self.names if n not in skip]
        self.leaves = leaves
        # other array leaves go to jitted calls as arguments; anything else is closed over
        self.fixed_slots = [k for k, v in enumerate(leaves)
                            if k not in self.keep and isinstance(v, jax.Array)]

    def base(self):
        return [self.leaves[k] for k in self.keep]

    def fixed(self):
        return [self.leaves[k] for k in self.fixed_slots]

    def template(self):
        """The leaves with every array slot empty: what a cached kit may hold on to."""
        arrays = set(self.keep) | set(self.fixed_slots)
        return [None if k in arrays else v for k, v in enumerate(self.leaves)]

    def key(self):
        """What the jitted functions depend on beyond their array arguments (None: not
        hashable, no caching)."""
        other = tuple(("array", v.shape, str(v.dtype)) if isinstance(v, jax.Array)
                      else ("leaf", type(v), v) for v in self.leaves)
        key = (self.f, self.treedef, other, tuple(self.keep), tuple(self.fixed_slots))
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def outputs(self, values, fixed):
        full = list(self.leaves)
        for k, v in zip(self.keep, values, strict=True):
            full[k] = v
        for k, v in zip(self.fixed_slots, fixed, strict=True):
            full[k] = v
        return self.f(*jax.tree_util.tree_unflatten(self.treedef, full))


def _key(p) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(p, attr):
            return str(getattr(p, attr))
    return str(p)


def _draw_cotangents(outs, cotangent, seed):
    floats = _float_leaves(outs)
    if not floats:
        raise TypeError("f returned no floating-point array: nothing to differentiate")
    if cotangent is None:
        rng = np.random.default_rng(seed)
        return [rng.standard_normal(o.shape).astype(o.dtype) for o in floats]
    given = _float_leaves(cotangent) if not isinstance(cotangent, (list, tuple)) else [
        c for c in jax.tree_util.tree_leaves(cotangent)]
    if jax.tree_util.tree_structure(cotangent) == jax.tree_util.tree_structure(outs):
        given = [c for c, o in zip(jax.tree_util.tree_leaves(cotangent),
                                   jax.tree_util.tree_leaves(outs), strict=True)
                 if _is_floating(o)]
    if len(given) != len(floats):
        raise ValueError(f"cotangent has {len(given)} arrays but f returns {len(floats)} "
                         "floating outputs")
    result = []
    for k, (c, o) in enumerate(zip(given, floats, strict=True)):
        c = np.asarray(c)
        if c.shape != o.shape:
            raise ValueError(f"cotangent[{k}] has shape {c.shape} but output {k} has shape "
                             f"{o.shape}")
        result.append(c.astype(o.dtype))
    return result


class _Kit:
    """The jitted functions of one problem's shapes: the projected cost (with its scale and
    rounding), the batched costs, the gradient. Cached by function, pytree structure, shapes
    and dtypes, so a second check of the same op compiles nothing; a kit holds no array of
    the check that built it (every array is an argument)."""

    def __init__(self, f, treedef, template, keep, fixed_slots, mode, acc):
        def outputs(values, fixed):
            full = list(template)
            for k, v in zip(keep, values, strict=True):
                full[k] = v
            for k, v in zip(fixed_slots, fixed, strict=True):
                full[k] = v
            return f(*jax.tree_util.tree_unflatten(treedef, full))

        def terms(c, values, fixed):
            return [ck * o.astype(acc) for ck, o in
                    zip(c, _float_leaves(outputs(values, fixed)), strict=True)]

        def projected(c, values, fixed):
            parts = [jnp.sum(t) for t in terms(c, values, fixed)]
            return sum(parts[1:], parts[0])

        def measure(values, extra):
            parts = terms(extra[1], values, extra[0])
            total = sum([jnp.sum(t) for t in parts[1:]], jnp.sum(parts[0]))
            return (total, sum(jnp.sum(jnp.abs(t)) for t in parts),
                    sum(jnp.sum(t * t) for t in parts))

        def cost(values, extra):
            return measure(values, extra)[0]

        def coordinates(block, index, steps, base, extra):
            rows, actual = _points(block, index, steps, base)
            return jax.vmap(lambda *r: cost(list(r), extra))(*rows), actual

        def directions(deltas, base, extra):
            return jax.vmap(lambda *d: cost([x + r.reshape(x.shape) for x, r in
                                             zip(base, d, strict=True)], extra))(*deltas)

        self.measure = _traced(measure)
        self.coordinates, self.directions = jax.jit(coordinates), jax.jit(directions)
        if mode == "rev":
            self.grad = _traced(jax.grad(projected, argnums=1))
        else:
            self.columns = _columns(projected)


_KITS: dict = {}
_KITS_KEPT = 8


def _kit(problem, mode, acc):
    key = problem.key()
    if key is not None:
        key = (key, mode, np.dtype(acc).name, bool(jax.config.jax_enable_x64))
        if key in _KITS:
            _KITS[key] = _KITS.pop(key)  # most recently used last
            return _KITS[key]
    kit = _Kit(problem.f, problem.treedef, problem.template(), problem.keep,
               problem.fixed_slots, mode, acc)
    if key is not None:
        _KITS[key] = kit
        while len(_KITS) > _KITS_KEPT:
            _KITS.pop(next(iter(_KITS)))
    return kit


def _columns(projected):
    """``(block, index, cot, base, fixed) -> <c, J e>`` for the unit vectors named by
    ``(block, index)``: jitted, or one eager jvp each where f does not trace."""
    def batched(block, index, cot, base, fixed):
        m = index.shape[0]
        tangents = []
        for b, x in enumerate(base):
            mine = block == b
            unit = jnp.zeros((m, x.size), x.dtype).at[jnp.arange(m), jnp.where(mine, index, 0)]
            tangents.append(unit.set(mine.astype(x.dtype)).reshape((m,) + x.shape))

        def along(*t):
            return jax.jvp(lambda *v: projected(cot, list(v), fixed), tuple(base), t)[1]

        return jax.vmap(along)(*tangents)

    jitted = jax.jit(batched)
    state = {}

    def along_one(b, k, cot, base, fixed):
        t = [jnp.zeros(x.shape, x.dtype) for x in base]
        t[b] = jnp.zeros(base[b].size, base[b].dtype).at[k].set(1).reshape(base[b].shape)
        return float(jax.jvp(lambda *v: projected(cot, list(v), fixed), tuple(base),
                             tuple(t))[1])

    def columns(block, index, cot, base, fixed):
        if state.get("eager"):  # f does not trace: one jvp per unit vector, op by op
            return np.array([along_one(int(b), int(k), cot, base, fixed) if b >= 0 else 0.0
                             for b, k in zip(block, index, strict=True)])
        try:
            return jitted(block, index, cot, base, fixed)
        except Exception:
            state["eager"] = True
            return columns(block, index, cot, base, fixed)

    return columns


def _run(problem, mode, cotangent, reference_dtype, batching, nondet_tol, max_memory,
         options, _cot=None):
    """One check of ``problem`` in ``mode`` ("rev" or "fwd"), and its float64 reference."""
    acc = np.float64 if jax.config.jax_enable_x64 else np.float32
    base, fixed = problem.base(), problem.fixed()
    try:
        outs = jax.eval_shape(problem.outputs, base, fixed)
    except Exception:  # f does not trace (data-dependent control flow): run it once
        outs = problem.outputs(base, fixed)
    cot = _cot if _cot is not None else _draw_cotangents(outs, cotangent, seed_of(options))
    cot_acc = [jnp.asarray(np.asarray(c).astype(acc)) for c in cot]
    floats = _float_leaves(outs)
    kit = _kit(problem, mode, acc)
    eps = max(float(jnp.finfo(t.dtype).eps) for t in [*base, *floats])
    backend = _Backend(kit, base, (fixed, cot_acc), problem.kept_names, eps,
                       sum(math.prod(o.shape) * o.dtype.itemsize for o in floats), max_memory)
    params = {n: np.asarray(b, dtype=np.float64)
              for n, b in zip(problem.kept_names, base, strict=True)}
    zeros = [jnp.asarray(np.zeros(c.shape, acc)) for c in cot_acc]
    gradient = (_reverse if mode == "rev" else _forward)(kit, base, fixed, max_memory)
    result, layout, notes, marks, spread = run_core(
        backend, params, lambda zero: gradient(zeros if zero else cot_acc),
        batching=batching, nondet_tol=nondet_tol, max_memory=max_memory, options=options,
        vmap_name="jax.vmap", zero_reason=("not zero for a zero cotangent" if mode == "rev"
                                          else "not zero for a zero output weight"))
    lowest = max((b.dtype for b in base), key=lambda d: float(jnp.finfo(d).eps))
    dtype = str(lowest)
    if problem.skipped:
        notes.append(f"excluded (not checked): {', '.join(problem.skipped)}")
    notes.append("derivative checked: " + ("jax.vjp (reverse mode)" if mode == "rev"
                                           else "jax.linearize (forward mode)"))
    reference = None
    if reference_dtype is not None and any(lowest == d for d in _LOWER):
        def rerun():
            with jax.enable_x64(True):
                wide = _Problem(problem.f, _args_of(problem), problem.exclude, np.float64)
                return _run(wide, mode, None, None, batching, nondet_tol, max_memory,
                            options, _cot=[np.asarray(c, dtype=np.float64) for c in cot])

        def runs_in_float64():
            with jax.enable_x64(True):
                wide = _Problem(problem.f, _args_of(problem), problem.exclude, np.float64)
                outs = _float_leaves(jax.eval_shape(wide.outputs, wide.base(), wide.fixed()))
                if any(o.dtype != jnp.float64 for o in outs):
                    raise TypeError("its outputs are not float64 for float64 arguments")

        reference, more = reference_check(reference_dtype, dtype, runs_in_float64, rerun)
        notes.extend(more)
    return with_findings(result, layout, dtype=dtype, batched=backend.batched, notes=notes,
                         marks=marks, nondeterminism=spread, reference=reference)


def _args_of(problem):
    return tuple(jax.tree_util.tree_unflatten(problem.treedef, problem.leaves))


def _flat_host(grads):
    return np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in grads])


def _reverse(kit, base, fixed, max_memory):
    """``cot -> c^T J`` by reverse mode: jax.grad of the projected cost (the ``bwd`` rule
    runs), jitted once for every cotangent."""
    del max_memory
    return lambda cot: _flat_host(kit.grad(cot, base, fixed))


def _forward(kit, base, fixed, max_memory):
    """``cot -> c^T J`` by forward mode: the ``jvp`` rule applied to every unit vector of
    every block, batched by ``jax.vmap`` in chunks (one jitted function over all blocks)."""
    columns = kit.columns
    owner = np.concatenate([np.full(x.size, b, np.int32) for b, x in enumerate(base)])
    local = np.concatenate([np.arange(x.size, dtype=np.int32) for x in base])
    bytes_ = sum(x.size * x.dtype.itemsize for x in base)
    chunk = max(1, (2 * batch_size(4 * bytes_, max_memory)) // 3)

    def gradient(cot):
        pieces = []
        for start in range(0, owner.size, chunk):
            m = min(chunk, owner.size - start)
            size = _padded(m)
            block = np.full(size, -1, np.int32)
            block[:m] = owner[start:start + m]
            index = np.zeros(size, np.int32)
            index[:m] = local[start:start + m]
            pieces.append(np.asarray(columns(block, index, cot, base, fixed),
                                     dtype=np.float64)[:m])
        return np.concatenate(pieces)

    return gradient


# -- public functions ---------------------------------------------------------------------------
def _check(f, args, mode, cotangent, reference_dtype, nondet_tol, batching, max_memory,
           exclude, options):
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    validate(options, reference_dtype, batching, nondet_tol, "jax",
             (jnp.float64, np.dtype("float64")))
    problem = _Problem(f, tuple(args), exclude)
    return _run(problem, mode, cotangent, reference_dtype, batching, nondet_tol, max_memory,
                options)


def check_vjp(f, *args, cotangent=None, reference_dtype="auto", nondet_tol=0.0,
              batching="auto", max_memory=None, exclude=None, **options) -> FrameworkResult:
    """Check the reverse-mode derivative jax runs for ``f(*args)`` against finite differences.

    Parameters
    ----------
    f : callable
        ``f(*args)`` returning an array or any pytree of arrays: a function with a
        ``jax.custom_vjp`` (its ``bwd`` is what ``jax.vjp`` runs), a ``custom_jvp`` (its rule,
        transposed), any jax code.
    *args
        Pytrees of arrays. Every floating leaf is checked, one block each, named after f's
        parameter and the leaf's path (``"x"``, ``"params.w"``, ``"layers.0"``; ``"input0"``
        when f's signature has no names); other leaves are passed through unchanged.
    cotangent : pytree like f's output, optional
        The output gradient (its floating leaves). Default: seeded standard normal entries.
    reference_dtype : {"auto", "float64", None}
        For float32/float16/bfloat16 arguments: ``"auto"`` re-checks in float64 (inside
        ``jax.enable_x64(True)``; the global setting is left alone) when f runs in float64,
        and notes it when not; ``"float64"`` requires it; None skips it.
    nondet_tol : float
        The backward runs twice with the same cotangent; entries that differ by more than
        this fail as nondeterministic (``torch.autograd.gradcheck``'s convention).
    batching : {"auto", "vmap", "loop"}
        ``"auto"``: ``jax.jit(jax.vmap(...))`` where a batched call gives the single calls'
        costs on sampled points, else one call per point (jitted where f traces);
        ``"vmap"`` requires it; ``"loop"``: one call per point.
    max_memory : int, optional
        Bytes one batched call may stack (arguments and outputs; default 64 MiB).
    exclude : str, list of str or callable, optional
        Checked leaves held fixed instead (by block name).
    **options
        The options of :func:`fastgc.check`: ``method``, ``subset``, ``directions``, ``seed``,
        ``threshold``, ``eps``, ``budget``, ``progress``.

    Returns
    -------
    FrameworkResult
        A :class:`fastgc.CheckResult` with ``dtype``, ``batched``, ``nondeterminism`` and
        ``reference``; ``result.engine`` is ``"jax-vmap"`` or ``"jax-loop"``.

    Raises
    ------
    TypeError, ValueError
        No floating argument, a complex one, a cotangent of the wrong shape, an unknown
        option (named).

    Examples
    --------
    >>> import jax, jax.numpy as jnp, fastgc.jax
    >>> @jax.custom_vjp
    ... def square(x):
    ...     return x * x
    >>> square.defvjp(lambda x: (x * x, x), lambda x, g: (2 * x * g,))
    >>> result = fastgc.jax.check_vjp(square, jnp.linspace(-1.0, 1.0, 5))
    >>> result.passed, result.engine, result.dtype, result.reference.passed
    (True, 'jax-vmap', 'float32', True)
    """
    return _check(f, args, "rev", cotangent, reference_dtype, nondet_tol, batching,
                  max_memory, exclude, options)


def check_jvp(f, *args, cotangent=None, reference_dtype="auto", nondet_tol=0.0,
              batching="auto", max_memory=None, exclude=None, **options) -> FrameworkResult:
    """Check the forward-mode derivative jax runs for ``f(*args)`` (a ``custom_jvp`` rule).

    The rule is applied, through ``jax.linearize``, to every unit vector of every checked
    leaf (batched with ``jax.vmap``), and ``<c, J e_i>`` is compared with finite
    differences of ``<c, f>``, entry by entry: the same verdict and names as
    :func:`check_vjp`, for the rule as written (not transposed).

    Parameters
    ----------
    f : callable
        As for :func:`check_vjp`.
    *args
        As for :func:`check_vjp`.
    cotangent, reference_dtype, nondet_tol, batching, max_memory, exclude : optional
        As for :func:`check_vjp` (``cotangent`` weighs the outputs).
    **options
        As for :func:`check_vjp`.

    Returns
    -------
    FrameworkResult
        As for :func:`check_vjp`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, fastgc.jax
    >>> @jax.custom_jvp
    ... def softplus(x):
    ...     return jnp.logaddexp(x, 0.0)
    >>> _ = softplus.defjvp(lambda p, t: (softplus(p[0]), jax.nn.sigmoid(p[0]) * t[0]))
    >>> fastgc.jax.check_jvp(softplus, jnp.linspace(-3.0, 3.0, 7)).passed
    True
    """
    return _check(f, args, "fwd", cotangent, reference_dtype, nondet_tol, batching,
                  max_memory, exclude, options)


def check_grads(f, args, order=1, modes=("fwd", "rev"), atol=None, rtol=None, eps=None,
                **options) -> None:
    """A drop-in for ``jax.test_util.check_grads`` that answers with fastgc's verdict.

    Same signature and convention: returns None when the derivatives are right and raises
    ``AssertionError`` (with fastgc's report: which argument, which entries, what factor)
    when one is not. ``order=2`` also checks the derivatives of the derivative functions,
    as jax does (the JVP of ``jax.jvp(f)``, the VJP of ``x -> vjp(f, x)(f(x))``).

    Parameters
    ----------
    f : callable
        As for :func:`check_vjp`.
    args : tuple
        The positional arguments (pytrees of arrays).
    order : int
        1, or higher for derivatives of derivatives.
    modes : tuple of {"fwd", "rev"}
        ``"fwd"``: :func:`check_jvp`; ``"rev"``: :func:`check_vjp`.
    atol, rtol, eps : float, optional
        Accepted for compatibility and not used: fastgc chooses the step from the measured
        noise of the cost and the tolerance from its error model; float32 is judged in
        float32 with a float64 reference check, not with a looser tolerance.
    **options
        Passed to :func:`check_vjp` / :func:`check_jvp` (``directions=4`` for a quick check).

    Raises
    ------
    AssertionError
        A derivative disagrees with finite differences.

    Examples
    --------
    >>> import jax.numpy as jnp, fastgc.jax
    >>> fastgc.jax.check_grads(jnp.tanh, (jnp.linspace(-2.0, 2.0, 5),), order=1)
    """
    del atol, rtol, eps  # see the docstring
    order = integer(order, "order", "of the derivatives checked")
    if isinstance(modes, str) or not set(modes) <= {"fwd", "rev"} or not modes:
        raise ValueError(f"modes must hold 'fwd' and/or 'rev', not {modes!r}")
    args = tuple(args)

    def verify(f, args, order, what):
        if "fwd" in modes:
            label = f"JVP of {what}" if what else "JVP"
            _raise_if_failed(check_jvp(f, *args, **options), label)
            if order > 1:
                verify(lambda primals, tangents: jax.jvp(f, primals, tangents),
                       (args, args), order - 1, label)
        if "rev" in modes:
            label = f"VJP of {what}" if what else "VJP"
            _raise_if_failed(check_vjp(f, *args, **options), label)
            if order > 1:
                def f_vjp(*primals):
                    out, pullback = jax.vjp(f, *primals)
                    return pullback(out)

                verify(f_vjp, args, order - 1, label)

    verify(f, args, order, "")


def _raise_if_failed(result, label):
    if not result.passed:
        raise AssertionError(f"fastgc: the {label} disagrees with finite differences\n"
                             + result.report(color=False))
