"""The network engine's set-up is built once per state and once per check, and a request cut
into many calls gives the same numbers as one call.

The references here are the state's own one-call results: what is tested is that caching the
forward pass and the tables changes nothing, however requests are cut. (The numbers themselves
are checked against extended-precision references in test_network_kernel.py and
test_network_directions_complex.py.)
"""

import numpy as np
import pytest
from network_cases import make_case

import fastgc
from fastgc._network import NetworkState
from fastgc._network import engine as network_objective
from fastgc._network.mlp import MLP

# (depth, loss, output, hidden): relu chains (linear tables), tanh/sigmoid chains (Taylor
# tables), a mixed one, and a softmax head.
CASES = [(4, "ce", "softmax", "relu"), (4, "mse", "tanh", "tanh"), (3, "bce", "sigmoid", "sigmoid"),
         (4, "mse", "identity", "leaky_relu")]  # fmt: skip
# None: tables kept for the whole state; 1: one unit's (one example's) tables per build,
# rebuilt on every call.
MEMORY = [None, 1]


def _requests(theta, seed):
    rng = np.random.default_rng(seed)
    P = theta.size
    index = np.concatenate([rng.permutation(P), rng.integers(0, P, P)])
    step = rng.choice([1e-7, -3e-5, 2e-3, -0.4], index.size)
    return index, step


def _cut(*arrays, parts=20):
    return zip(*(np.array_split(a, parts) for a in arrays), strict=True)


@pytest.mark.parametrize("max_memory", MEMORY, ids=["kept", "rebuilt"])
@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_one_call_equals_twenty_chunks(case, max_memory):
    depth, loss, out, hidden = case
    net, theta, X, Y = make_case(depth, loss, out, hidden, 0.2, m=6, seed=depth)
    index, step = _requests(theta, seed=1)
    one = NetworkState(net, theta, X, Y, max_memory=max_memory)
    cut = NetworkState(net, theta, X, Y, max_memory=max_memory)

    d = one.coordinate_deltas(index, step)
    for _ in range(2):  # a second pass reads the kept tables (or rebuilds them again)
        chunks = [cut.coordinate_deltas(i, s) for i, s in _cut(index, step)]
        assert np.array_equal(np.concatenate(chunks), d)

    k = one.kink_mask(index, step)
    assert np.array_equal(np.concatenate([cut.kink_mask(i, s) for i, s in _cut(index, step)]), k)

    c = one.complex_step_derivatives(index)
    assert np.array_equal(np.concatenate([cut.complex_step_derivatives(i) for (i,) in _cut(index)]),
                          c)  # fmt: skip


def _directions(theta, n, seed):
    rng = np.random.default_rng(seed)
    directions = []
    for _ in range(n):
        size = int(rng.integers(1, theta.size))
        directions.append((rng.choice(theta.size, size, replace=False),
                           rng.standard_normal(size)))  # fmt: skip
    return directions, rng.choice([1e-6, -1e-3, 0.3], n)


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_directions_one_call_equals_twenty_chunks(case):
    depth, loss, out, hidden = case
    net, theta, X, Y = make_case(depth, loss, out, hidden, 0.2, m=6, seed=depth)
    directions, steps = _directions(theta, 40, seed=2)
    # One direction per batch (max_memory=1): the same matrix shapes however the request is
    # cut, so the same bits.
    one = NetworkState(net, theta, X, Y, max_memory=1)
    cut = NetworkState(net, theta, X, Y, max_memory=1)
    d, noise = one.direction_deltas(directions, steps)
    parts = [cut.direction_deltas(directions[a : a + 2], steps[a : a + 2]) for a in range(0, 40, 2)]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), d)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), noise)
    # Batched (the default budget): each direction's products keep their own shape inside a
    # batch, so the bits do not depend on the batch either.
    state = NetworkState(net, theta, X, Y)
    d, noise = state.direction_deltas(directions, steps)
    parts = [state.direction_deltas(directions[a : a + 2], steps[a : a + 2])
             for a in range(0, 40, 2)]  # fmt: skip
    assert np.array_equal(np.concatenate([p[0] for p in parts]), d)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), noise)
    again = state.direction_deltas(directions, steps)  # the kept set-up: exactly as before
    assert np.array_equal(again[0], d) and np.array_equal(again[1], noise)


def _count_forward(monkeypatch):
    calls = []
    forward_cache = MLP.forward_cache

    def counted(self, params, X):
        calls.append(1)
        return forward_cache(self, params, X)

    monkeypatch.setattr(MLP, "forward_cache", counted)
    return calls


@pytest.mark.parametrize("max_memory", MEMORY, ids=["kept", "rebuilt"])
def test_forward_pass_and_tables_are_built_once_per_state(monkeypatch, max_memory):
    net, theta, X, Y = make_case(4, "ce", "softmax", "tanh", 0.1, m=5, seed=3)
    calls = _count_forward(monkeypatch)
    state = NetworkState(net, theta, X, Y, max_memory=max_memory)
    assert len(calls) == 1
    index, step = _requests(theta, seed=4)
    directions, steps = _directions(theta, 6, seed=5)
    for i, s in _cut(index, step):
        state.coordinate_deltas(i, s)
        state.kink_mask(i, s)
        state.complex_step_derivatives(i)
    for a in range(0, 6, 2):
        state.direction_deltas(directions[a : a + 2], steps[a : a + 2])
    assert len(calls) == 1
    if max_memory is None:
        # Everything fits: one table build for the whole state.
        assert state._coordinates.builds == 1
        assert state._complex.builds == 1
    else:
        # Nothing fits: tables for the units (examples) of each call, every call.
        assert state._coordinates.builds > 20
        assert state._complex.builds == 20 * X.shape[1]


@pytest.mark.parametrize("options", [{"progress": True}, {"progress": False},
                                     {"method": "richardson"}, {"method": "complex"},
                                     {"directions": 2}, {"subset": 0.7, "progress": True},
                                     {"max_memory": 4096, "progress": True}])  # fmt: skip
@pytest.mark.parametrize("dims", [[4, 6, 5, 3], [12, 20, 10, 3]], ids=["tiny", "chunked"])
def test_a_check_sets_the_engine_up_once(monkeypatch, options, dims, capsys):
    # [12, 20, 10, 3] has 503 parameters: 1006 perturbations, which the evaluator cuts into
    # chunks; every chunk, Richardson iteration and kink follow-up must reuse the one state.
    net = MLP(dims, "relu", "ce")
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((dims[0], 7))
    Y = np.eye(3)[:, rng.integers(0, 3, 7)]
    grads = net.gradients(params, X, Y)
    states = []

    requests = []

    class Counted(NetworkState):
        def __init__(self, *args, **kwargs):
            states.append(1)
            super().__init__(*args, **kwargs)

        def coordinate_deltas(self, index, step):
            requests.append(len(index))
            return super().coordinate_deltas(index, step)

    monkeypatch.setattr(network_objective, "NetworkState", Counted)
    calls = _count_forward(monkeypatch)
    result = fastgc.check(net, grads, params, X, Y, **options)
    assert result.engine == "network" and result.passed
    assert len(states) == 1
    # The state's forward pass, which also gives the cost at the point.
    assert len(calls) == 1
    if dims[0] == 12 and "directions" not in options and options.get("method") != "complex":
        assert len(requests) > 1  # the work really came in several chunks


def _span_directions(theta, starts, seed):
    """Contiguous spans: whole blocks, the whole vector, spans across block edges and inside a
    row, and one whose steps partly vanish (tiny values against large parameters)."""
    rng = np.random.default_rng(seed)
    P = theta.size
    spans = [(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    spans += [(0, P), (1, P - 1), (int(starts[1]) - 2, int(starts[2]) + 3), (3, 5)]
    directions = [(np.arange(a, b), rng.standard_normal(b - a)) for a, b in spans]
    indices, values = directions[0][0], directions[0][1].copy()
    values[::2] = 1e-30  # theta + step * 1e-30 == theta: these steps vanish
    directions.append((indices, values))
    return directions, rng.choice([1e-6, -1e-3, 0.3], len(directions))


@pytest.mark.parametrize("l2", [0.0, 0.2])
@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_span_directions_equal_index_arrays(case, l2, monkeypatch):
    """A contiguous direction takes the span path (no gathers, row squares in one pass): the
    same bits as the general path, which sees its indices as a scattered array."""
    from fastgc._network import directions as _directions

    depth, loss, out, hidden = case
    net, theta, X, Y = make_case(depth, loss, out, hidden, l2, m=6, seed=depth)
    starts = np.cumsum([0] + [int(np.prod(shape)) for _, shape in net.param_shapes()])
    directions, steps = _span_directions(theta, starts, seed=3)
    fast = NetworkState(net, theta, X, Y).direction_deltas(directions, steps)
    monkeypatch.setattr(_directions, "_span_start", lambda indices: -1)
    slow = NetworkState(net, theta, X, Y).direction_deltas(directions, steps)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])


def test_a_central_check_compiles_only_its_kernels():
    """A first central check of a relu network loads (or compiles) the coordinate kernel and
    the linear tables only: no Taylor tables, kink, directions or complex-step kernels."""
    import os
    import subprocess
    import sys

    code = """
import numba, numpy as np, fastgc
from numba.core.registry import CPUDispatcher
from fastgc._network import complex_step as _complex
from fastgc._network import coordinates as _coordinates
from fastgc._network import directions as _directions
from fastgc._network import crossings as _kinks
net = fastgc.MLP([4, 5, 3, 1], "relu", "bce")
p = net.init(0)
X = np.random.default_rng(0).standard_normal((4, 6)); Y = np.ones((1, 6))
assert fastgc.check(net, net.gradients(p, X, Y), p, X, Y).passed
for module in (_complex, _coordinates, _directions, _kinks):
    for name, f in sorted(vars(module).items()):
        if (isinstance(f, CPUDispatcher) and f.signatures
                and f.py_func.__module__ == module.__name__):
            print(module.__name__.rsplit(".", 1)[1], name, len(f.signatures))
"""
    # the compiled path forced: on an empty numba cache a check this small would otherwise run
    # the kernels as Python (fastgc._engines.jit), compiling none of them
    env = dict(os.environ, FASTGC_JIT="always")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.split("\n")[:-1]) == [
        "coordinates _deltas_block 1", "coordinates _linear_serial 1"]


@pytest.mark.parametrize("nblocks", [1, 3, 7, 40])
def test_direction_activation_differences_by_any_split(nblocks):
    """`_act_diff_par` cuts the flat entries anywhere (mid-row, mid-example): every entry is
    act_diff of its own (unit, example), as the scalar function gives it."""
    from fastgc._network import directions as _directions
    from fastgc._network.activations import code
    from fastgc._network.differences import act_diff

    rng = np.random.default_rng(nblocks)
    m, k, n = 3, 4, 5
    Z = rng.standard_normal((n, m))
    A = np.maximum(Z, 0.0)
    D = rng.standard_normal((n, k * m))
    D[0, 1] = 0.0
    relu = code("relu")
    out = np.full_like(D, np.nan)
    _directions._act_diff_par(relu, Z, A, D, m, out, nblocks)
    expected = np.array([[act_diff(relu, Z[i, c % m], A[i, c % m], D[i, c])
                          for c in range(k * m)] for i in range(n)])  # fmt: skip
    assert np.array_equal(out, expected)
