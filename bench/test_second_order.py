"""pytest-benchmark: ``check_hvp`` and ``check_hessian`` next to the nested finite differences
a user would write instead, on the same problems; and ``check_hvp(directions=k)`` on the
MNIST-sized network.

``python -m pytest bench/test_second_order.py`` (numdifftools rows need ``pip install
".[bench]"``). Problems, each with closed-form (or exact R-op) second derivatives:

- **rosenbrock**: ``scipy.optimize.rosen`` in 20 variables at a seeded point, with
  ``rosen_der``, ``rosen_hess``, ``rosen_hess_prod``;
- **logistic**: L2-regularised logistic regression, 200 examples, 10 features and a bias
  (11 parameters), hand-written gradient, Hessian and product;
- **tanh-net**: ``fastgc.MLP([6, 8, 3], "tanh", "mse")``, 20 examples (83 parameters),
  ``MLP.gradients`` and ``MLP.hvp`` (its dense Hessian built from 83 products, once).

Contenders, each asked "is the user's Hessian (product) right?":

- ``fastgc``: ``check_hessian(grad, hess, x)`` / ``check_hvp(grad, hvp, x)``, the verdict;
- ``scipy.differentiate.hessian``: the cost's Hessian by scipy's nested Richardson differences
  (a vectorised cost), compared with the user's: ``|H_user - H_num| <= 1e-6 |H_user|``
  (Frobenius);
- ``numdifftools.Hessian``: the same with numdifftools' extrapolated second differences;
- ``approx_fprime(x, grad)``: the Jacobian of the gradient by forward differences (scipy),
  compared within ``1e-4`` (what its ``sqrt(eps)`` step can resolve);
- for products, the forward difference of the gradient along ``v`` (scipy's old
  ``approx_fhess_p``), same tolerance.

On the tanh network the two nested-difference libraries are skipped unless
``FASTGC_BENCH_SLOW=1``: one run on the 2-core shared VM (loaded) took 240 s and 5,022,081 cost
evaluations for ``scipy.differentiate.hessian`` and 9.7 s and 206,671 for
``numdifftools.Hessian``, against 22 ms and 174 gradient evaluations for ``check_hessian``.

``extra_info`` holds the evaluation counts (``cost_evals`` as points at which the cost was
evaluated, ``grad_evals``, ``hess_calls``/``hvp_calls``), the relative error of the numeric
Hessian (product) against the exact one, and the verdict. BLAS runs one thread (threadpoolctl,
when installed): on a small shared machine the default pool oversubscribes the cores (a
784x256 product took 30 ms with the pool and 0.7 ms without on the 2-core development VM).
"""

import contextlib
import os

import numpy as np
import pytest
from scipy.optimize import approx_fprime, rosen, rosen_der, rosen_hess, rosen_hess_prod

import fastgc

ROUNDS = int(os.environ.get("FASTGC_BENCH_ROUNDS", "3"))
# scipy.differentiate.hessian and numdifftools on the 83-parameter network take minutes (see
# the module docstring): run them with FASTGC_BENCH_SLOW=1.
SLOW = os.environ.get("FASTGC_BENCH_SLOW", "") not in ("", "0")
_SLOW_ROWS = {("tanh-net", "scipy"), ("tanh-net", "numdifftools")}
_EPS = np.finfo(np.float64).eps


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


class Counted:
    """A function that counts its calls and the points it was evaluated at (a vectorised
    call on ``x`` of shape ``(n, k...)`` is ``prod(k...)`` points)."""

    def __init__(self, f, n=None):
        self.f, self.n, self.calls, self.points = f, n, 0, 0

    def __call__(self, x, *args):
        self.calls += 1
        x = np.asarray(x)
        self.points += int(np.prod(x.shape[1:])) if (self.n and x.ndim > 1) else 1
        return self.f(x, *args)


# ---- problems --------------------------------------------------------------------------------
class Problem:
    """Flat ``x``; ``cost`` (vectorised over trailing axes), ``grad``, ``hess``, ``hvp``."""

    def __init__(self, name, x, cost, grad, hess, hvp):
        self.name, self.x, self.cost, self.grad, self.hess, self.hvp = (name, x, cost, grad,
                                                                        hess, hvp)
        self.H = hess(x)


def rosenbrock():
    x = 1.0 + 0.3 * np.random.default_rng(0).standard_normal(20)
    return Problem("rosenbrock (20)", x, rosen, rosen_der, rosen_hess, rosen_hess_prod)


def logistic():
    rng = np.random.default_rng(1)
    n, d, lam = 200, 10, 0.3
    A = np.hstack([rng.standard_normal((n, d)), np.ones((n, 1))])
    y = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
    reg = np.r_[np.full(d, lam), 0.0]

    def cost(w):  # w: (11,) or (11, k...)
        m = y.reshape((n,) + (1,) * (w.ndim - 1)) * np.tensordot(A, w, axes=(1, 0))
        return (np.mean(np.logaddexp(0.0, -m), axis=0)
                + 0.5 * np.tensordot(reg, w * w, axes=(0, 0)))

    def sig(w):
        return 1.0 / (1.0 + np.exp(y * (A @ w)))

    def grad(w):
        return A.T @ (-y * sig(w)) / n + reg * w

    def hess(w):
        s = sig(w)
        return (A.T * (s * (1 - s) / n)) @ A + np.diag(reg)

    def hvp(w, v):
        s = sig(w)
        return A.T @ (s * (1 - s) / n * (A @ v)) + reg * v

    return Problem("logistic (11)", 0.3 * rng.standard_normal(d + 1), cost, grad, hess, hvp)


def tanh_net():
    net = fastgc.MLP([6, 8, 3], "tanh", "mse")
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((6, 20)), rng.standard_normal((3, 20))
    blocks = net.layout.blocks

    def cost(t):
        if t.ndim == 1:
            return net(net.unflatten(t), X, Y)
        flat = t.reshape(t.shape[0], -1)
        return np.array([net(net.unflatten(flat[:, j].copy()), X, Y)
                         for j in range(flat.shape[1])]).reshape(t.shape[1:])

    def grad(t):
        g = net.gradients(net.unflatten(t), X, Y)
        return np.concatenate([g["d" + b.name].ravel() for b in blocks])

    def hvp(t, v):
        Hv = net.hvp(net.unflatten(t), net.unflatten(np.asarray(v, dtype=np.float64)), X, Y)
        return np.concatenate([Hv[b.name].ravel() for b in blocks])

    x = net.flatten(net.init(seed=0))
    H = np.column_stack([hvp(x, e) for e in np.eye(net.param_count)])
    H = 0.5 * (H + H.T)  # symmetric to rounding already; exactly so for the comparisons

    return Problem(f"tanh-net ({net.param_count})", x, cost, grad, lambda t: H, hvp)


PROBLEMS = {"rosenbrock": rosenbrock, "logistic": logistic, "tanh-net": tanh_net}


@pytest.fixture(scope="module", params=list(PROBLEMS))
def problem(request):
    out = PROBLEMS[request.param]()
    out.key = request.param
    return out


def _skip_slow(problem, name):
    if not SLOW and (problem.key, name.split(".")[0]) in _SLOW_ROWS:
        pytest.skip(f"{name} on {problem.name}: minutes (FASTGC_BENCH_SLOW=1 runs it)")


def _agrees(user, numeric, rtol):
    """The comparison a user writes: relative (Frobenius) difference within ``rtol``."""
    return bool(np.linalg.norm(user - numeric) <= rtol * np.linalg.norm(user))


def _relative(A, B):
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


def _time(benchmark, run):
    run()  # warm-up (imports, caches) outside the timing
    return benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=0)


# ---- the full Hessian ------------------------------------------------------------------------
def _hessian_contenders(p):
    """name -> run() returning (verdict, numeric Hessian or None, counters)."""

    def fastgc_check():
        g, h = Counted(p.grad), Counted(p.hess)
        r = fastgc.check_hessian(g, h, p.x)
        return r.passed, r.numeric, dict(grad_evals=r.ngev, hess_calls=h.calls)

    def scipy_hessian():
        from scipy.differentiate import hessian

        c, h = Counted(p.cost, n=len(p.x)), Counted(p.hess)
        H = hessian(c, p.x).ddf
        return (_agrees(h(p.x), H, 1e-6), H,
                dict(cost_evals=c.points, cost_calls=c.calls, hess_calls=h.calls))

    def numdifftools_hessian():
        nd = pytest.importorskip("numdifftools")
        c, h = Counted(p.cost), Counted(p.hess)
        H = nd.Hessian(c)(p.x)
        return (_agrees(h(p.x), H, 1e-6), H,
                dict(cost_evals=c.points, hess_calls=h.calls))

    def forward_jacobian_of_grad():
        g, h = Counted(p.grad), Counted(p.hess)
        H = approx_fprime(p.x, g, np.sqrt(_EPS))
        return (_agrees(h(p.x), H, 1e-4), H,
                dict(grad_evals=g.calls, hess_calls=h.calls))

    return {"fastgc.check_hessian": fastgc_check, "scipy.differentiate.hessian": scipy_hessian,
            "numdifftools.Hessian": numdifftools_hessian,
            "approx_fprime(grad)": forward_jacobian_of_grad}


@pytest.mark.parametrize("name", list(_hessian_contenders(None)))
def test_hessian(benchmark, problem, name):
    _skip_slow(problem, name)
    run = _hessian_contenders(problem)[name]
    benchmark.group = f"hessian: {problem.name}"
    verdict, H, counts = _time(benchmark, run)
    assert verdict, name  # a correct Hessian passes every contender's check
    benchmark.extra_info.update(counts, verdict=verdict, params=len(problem.x),
                                numeric_error=_relative(H, problem.H))


# ---- one Hessian-vector product --------------------------------------------------------------
def _hvp_contenders(p):
    v = np.random.default_rng(5).standard_normal(len(p.x))
    Hv = p.H @ v

    def fastgc_check():
        g, h = Counted(p.grad), Counted(p.hvp)
        r = fastgc.check_hvp(g, h, p.x)
        return r.passed, None, dict(grad_evals=r.ngev, hvp_calls=h.calls)

    def scipy_hessian():
        from scipy.differentiate import hessian

        c, h = Counted(p.cost, n=len(p.x)), Counted(p.hvp)
        got = hessian(c, p.x).ddf @ v
        return (_agrees(h(p.x, v), got, 1e-6), got,
                dict(cost_evals=c.points, cost_calls=c.calls, hvp_calls=h.calls))

    def numdifftools_hessian():
        nd = pytest.importorskip("numdifftools")
        c, h = Counted(p.cost), Counted(p.hvp)
        got = nd.Hessian(c)(p.x) @ v
        return (_agrees(h(p.x, v), got, 1e-6), got,
                dict(cost_evals=c.points, hvp_calls=h.calls))

    def forward_difference_of_grad():
        g, h = Counted(p.grad), Counted(p.hvp)
        step = np.sqrt(_EPS) * max(1.0, float(np.linalg.norm(p.x))) / np.linalg.norm(v)
        got = (g(p.x + step * v) - g(p.x)) / step
        return (_agrees(h(p.x, v), got, 1e-4), got,
                dict(grad_evals=g.calls, hvp_calls=h.calls))

    return Hv, {"fastgc.check_hvp": fastgc_check, "scipy.differentiate.hessian @ v": scipy_hessian,
                "numdifftools.Hessian @ v": numdifftools_hessian,
                "forward difference of grad along v": forward_difference_of_grad}


@pytest.mark.parametrize("name", list(_hvp_contenders(rosenbrock())[1]))
def test_hvp(benchmark, problem, name):
    _skip_slow(problem, name)
    Hv, contenders = _hvp_contenders(problem)
    benchmark.group = f"hvp: {problem.name}"
    verdict, got, counts = _time(benchmark, contenders[name])
    assert verdict, name
    benchmark.extra_info.update(counts, verdict=verdict, params=len(problem.x))
    if got is not None:
        benchmark.extra_info["numeric_error"] = _relative(got, Hv)


# ---- check_hvp on 784-256-128-10 -------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    net = fastgc.MLP([784, 256, 128, 10], "tanh", "ce")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((784, 64))
    Y = np.eye(10)[:, rng.integers(0, 10, 64)]
    return net, net.init(seed=0), X, Y


@pytest.mark.parametrize("directions", [1, 2])
def test_check_hvp_mnist_sized(benchmark, mnist, directions):
    net, params, X, Y = mnist
    benchmark.group = "check_hvp: 784-256-128-10 tanh/ce, m=64 (235,146 params), MLP.hvp"

    def run():
        return fastgc.check_hvp(net.gradients, net.hvp, params, X, Y, directions=directions)

    result = _time(benchmark, run)
    assert result.passed, result.report(color=False)
    benchmark.extra_info.update(params=net.param_count, directions_per_block=directions,
                                grad_evals=result.ngev, hvp_calls=result.nhvp)
    with contextlib.suppress(AttributeError, TypeError):
        benchmark.extra_info["under_a_second"] = benchmark.stats.stats.median < 1.0
