"""The Moré-Garbow-Hillstrom test problems, written from the paper, symbolically.

J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing unconstrained optimization software",
ACM TOMS 7 (1981) 17-41: each problem is a sum of squares ``f(x) = sum_i r_i(x)^2`` with a
standard starting point ``x0``. The residuals are written here as sympy expressions (problem
numbers as in the paper), so the gradient ``2 J^T r`` comes from sympy's own differentiation,
not from the code under test nor from a hand derivation that could share a transcription
slip. The transcription of the residuals is checked against the paper's reported minima
(``f*``, 6 significant digits) by minimising from ``x0`` (``tests/core/test_mgh.py``); where
the paper gives the minimiser in closed form it is used exactly.

This module does not import fastgc.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

sympy = None


def _sympy():
    global sympy
    if sympy is None:
        import sympy as _s

        sympy = _s
    return sympy


@dataclass
class Problem:
    """One MGH problem: ``name``, ``n``, ``x0``, residual builder ``residuals(x) -> list`` of
    sympy expressions, the paper's ``fstar`` (None: 0, a zero-residual problem) and a closed-form
    minimiser ``xstar`` where the paper gives one."""

    number: int
    name: str
    x0: tuple
    residuals: object
    fstar: float = 0.0
    xstar: tuple | None = None

    @property
    def n(self) -> int:
        return len(self.x0)


def _rosenbrock(x):
    return [10 * (x[1] - x[0] ** 2), 1 - x[0]]


def _freudenstein_roth(x):
    return [-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1],
            -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]]


def _powell_badly_scaled(x):
    s = _sympy()
    return [10 ** 4 * x[0] * x[1] - 1, s.exp(-x[0]) + s.exp(-x[1]) - s.Rational(10001, 10000)]


def _brown_badly_scaled(x):
    return [x[0] - 10 ** 6, x[1] - 2 * _sympy().Rational(1, 10 ** 6), x[0] * x[1] - 2]


def _beale(x):
    y = (_sympy().Rational(3, 2), _sympy().Rational(9, 4), _sympy().Rational(21, 8))
    return [y[i - 1] - x[0] * (1 - x[1] ** i) for i in (1, 2, 3)]


def _jennrich_sampson(x):
    s = _sympy()
    return [2 + 2 * i - (s.exp(i * x[0]) + s.exp(i * x[1])) for i in range(1, 11)]


def _helical_valley(x, branch):
    s = _sympy()
    # theta = arctan(x2/x1) / 2pi, + 0.5 for x1 < 0 (smooth across x2 = 0, unlike atan2); the
    # branch is fixed by the sign of x1 at the point checked
    theta = s.atan(x[1] / x[0]) / (2 * s.pi) + s.Rational(1, 2) * branch
    return [10 * (x[2] - 10 * theta), 10 * (s.sqrt(x[0] ** 2 + x[1] ** 2) - 1), x[2]]


_BARD_Y = (0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10,
           4.39)


def _bard(x):
    out = []
    for i in range(1, 16):
        u, v = i, 16 - i
        w = min(u, v)
        out.append(_BARD_Y[i - 1] - (x[0] + u / (v * x[1] + w * x[2])))
    return out


_GAUSS_Y = (0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521, 0.2420,
            0.1295, 0.0540, 0.0175, 0.0044, 0.0009)


def _gaussian(x):
    s = _sympy()
    return [x[0] * s.exp(-x[1] * ((8 - i) / 2 - x[2]) ** 2 / 2) - _GAUSS_Y[i - 1]
            for i in range(1, 16)]


_MEYER_Y = (34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005, 5147, 4427,
            3820, 3307, 2872)


def _meyer(x):
    s = _sympy()
    return [x[0] * s.exp(x[1] / (45 + 5 * i + x[2])) - _MEYER_Y[i - 1] for i in range(1, 17)]


def _box3d(x):
    s = _sympy()
    out = []
    for i in range(1, 11):
        t = s.Rational(i, 10)
        out.append(s.exp(-t * x[0]) - s.exp(-t * x[1]) - x[2] * (s.exp(-t) - s.exp(-10 * t)))
    return out


def _powell_singular(x):
    s = _sympy()
    return [x[0] + 10 * x[1], s.sqrt(5) * (x[2] - x[3]), (x[1] - 2 * x[2]) ** 2,
            s.sqrt(10) * (x[0] - x[3]) ** 2]


def _wood(x):
    s = _sympy()
    return [10 * (x[1] - x[0] ** 2), 1 - x[0], s.sqrt(90) * (x[3] - x[2] ** 2), 1 - x[2],
            s.sqrt(10) * (x[1] + x[3] - 2), (x[1] - x[3]) / s.sqrt(10)]


_KOWALIK_Y = (0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235,
              0.0246)
_KOWALIK_U = (4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625)


def _kowalik_osborne(x):
    return [y - x[0] * (u * u + u * x[1]) / (u * u + u * x[2] + x[3])
            for y, u in zip(_KOWALIK_Y, _KOWALIK_U, strict=True)]


def _brown_dennis(x):
    s = _sympy()
    out = []
    for i in range(1, 21):
        t = s.Rational(i, 5)
        out.append((x[0] + t * x[1] - s.exp(t)) ** 2 + (x[2] + x[3] * s.sin(t) - s.cos(t)) ** 2)
    return out


_OSBORNE1_Y = (0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
               0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
               0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406)


def _osborne1(x):
    s = _sympy()
    return [y - (x[0] + x[1] * s.exp(-10 * i * x[3]) + x[2] * s.exp(-10 * i * x[4]))
            for i, y in enumerate(_OSBORNE1_Y)]


def _biggs_exp6(x):
    s = _sympy()
    out = []
    for i in range(1, 14):
        t = s.Rational(i, 10)
        y = s.exp(-t) - 5 * s.exp(-10 * t) + 3 * s.exp(-4 * t)
        out.append(x[2] * s.exp(-t * x[0]) - x[3] * s.exp(-t * x[1]) + x[5] * s.exp(-t * x[4])
                   - y)
    return out


def _watson(x):
    s = _sympy()
    n = len(x)
    out = []
    for i in range(1, 30):
        t = s.Rational(i, 29)
        first = sum((j - 1) * x[j - 1] * t ** (j - 2) for j in range(2, n + 1))
        second = sum(x[j - 1] * t ** (j - 1) for j in range(1, n + 1))
        out.append(first - second ** 2 - 1)
    return out + [x[0], x[1] - x[0] ** 2 - 1]


def _extended_rosenbrock(x):
    out = []
    for i in range(0, len(x), 2):
        out += [10 * (x[i + 1] - x[i] ** 2), 1 - x[i]]
    return out


def _extended_powell(x):
    s = _sympy()
    out = []
    for i in range(0, len(x), 4):
        a, b, c, d = x[i : i + 4]
        out += [a + 10 * b, s.sqrt(5) * (c - d), (b - 2 * c) ** 2, s.sqrt(10) * (a - d) ** 2]
    return out


def _penalty1(x):
    s = _sympy()
    a = s.sqrt(s.Rational(1, 10 ** 5))
    return [a * (xi - 1) for xi in x] + [sum(xi ** 2 for xi in x) - s.Rational(1, 4)]


def _variably_dimensioned(x):
    n = len(x)
    lin = sum((j + 1) * (x[j] - 1) for j in range(n))
    return [xi - 1 for xi in x] + [lin, lin ** 2]


def _trigonometric(x):
    s = _sympy()
    n = len(x)
    total = sum(s.cos(xj) for xj in x)
    return [n - total + (i + 1) * (1 - s.cos(x[i])) - s.sin(x[i]) for i in range(n)]


def _brown_almost_linear(x):
    n = len(x)
    total = sum(x)
    return [x[i] + total - (n + 1) for i in range(n - 1)] + [functools.reduce(
        lambda a, b: a * b, x) - 1]


def _discrete_boundary(x):
    s = _sympy()
    n = len(x)
    h = s.Rational(1, n + 1)
    xs = [0, *x, 0]
    return [2 * xs[i] - xs[i - 1] - xs[i + 1] + h ** 2 * (xs[i] + i * h + 1) ** 3 / 2
            for i in range(1, n + 1)]


def _discrete_integral(x):
    s = _sympy()
    n = len(x)
    h = s.Rational(1, n + 1)
    t = [(j + 1) * h for j in range(n)]
    out = []
    for i in range(n):
        lower = sum(t[j] * (x[j] + t[j] + 1) ** 3 for j in range(i + 1))
        upper = sum((1 - t[j]) * (x[j] + t[j] + 1) ** 3 for j in range(i + 1, n))
        out.append(x[i] + h * ((1 - t[i]) * lower + t[i] * upper) / 2)
    return out


def _broyden_tridiagonal(x):
    n = len(x)
    xs = [0, *x, 0]
    return [(3 - 2 * xs[i]) * xs[i] - xs[i - 1] - 2 * xs[i + 1] + 1 for i in range(1, n + 1)]


def _broyden_banded(x):
    n = len(x)
    out = []
    for i in range(n):
        band = [j for j in range(max(0, i - 5), min(n, i + 2)) if j != i]
        out.append(x[i] * (2 + 5 * x[i] ** 2) + 1 - sum(x[j] * (1 + x[j]) for j in band))
    return out


def _linear_full_rank(x, m=10):
    n = len(x)
    total = sum(x)
    return ([x[i] - 2 * total / m - 1 for i in range(n)]
            + [-2 * total / m - 1 for _ in range(n, m)])


def _linear_rank1(x, m=10):
    total = sum((j + 1) * x[j] for j in range(len(x)))
    return [(i + 1) * total - 1 for i in range(m)]


PROBLEMS = [
    Problem(1, "rosenbrock", (-1.2, 1.0), _rosenbrock, 0.0, (1.0, 1.0)),
    Problem(2, "freudenstein-roth", (0.5, -2.0), _freudenstein_roth, 0.0, (5.0, 4.0)),
    Problem(3, "powell-badly-scaled", (0.0, 1.0), _powell_badly_scaled, 0.0),
    Problem(4, "brown-badly-scaled", (1.0, 1.0), _brown_badly_scaled, 0.0, (1e6, 2e-6)),
    Problem(5, "beale", (1.0, 1.0), _beale, 0.0, (3.0, 0.5)),
    Problem(6, "jennrich-sampson", (0.3, 0.4), _jennrich_sampson, 124.362),
    Problem(7, "helical-valley", (-1.0, 0.0, 0.0), _helical_valley, 0.0, (1.0, 0.0, 0.0)),
    Problem(8, "bard", (1.0, 1.0, 1.0), _bard, 8.21487e-3),
    Problem(9, "gaussian", (0.4, 1.0, 0.0), _gaussian, 1.12793e-8),
    Problem(10, "meyer", (0.02, 4000.0, 250.0), _meyer, 87.9458),
    Problem(12, "box-3d", (0.0, 10.0, 20.0), _box3d, 0.0, (1.0, 10.0, 1.0)),
    Problem(13, "powell-singular", (3.0, -1.0, 0.0, 1.0), _powell_singular, 0.0,
            (0.0, 0.0, 0.0, 0.0)),
    Problem(14, "wood", (-3.0, -1.0, -3.0, -1.0), _wood, 0.0, (1.0, 1.0, 1.0, 1.0)),
    Problem(15, "kowalik-osborne", (0.25, 0.39, 0.415, 0.39), _kowalik_osborne, 3.07505e-4),
    Problem(16, "brown-dennis", (25.0, 5.0, -5.0, -1.0), _brown_dennis, 85822.2),
    Problem(17, "osborne-1", (0.5, 1.5, -1.0, 0.01, 0.02), _osborne1, 5.46489e-5),
    Problem(18, "biggs-exp6", (1.0, 2.0, 1.0, 1.0, 1.0, 1.0), _biggs_exp6, 0.0,
            (1.0, 10.0, 1.0, 5.0, 4.0, 3.0)),
    Problem(20, "watson-6", (0.0,) * 6, _watson, 2.28767e-3),
    Problem(21, "extended-rosenbrock-8", (-1.2, 1.0) * 4, _extended_rosenbrock, 0.0, (1.0,) * 8),
    Problem(22, "extended-powell-8", (3.0, -1.0, 0.0, 1.0) * 2, _extended_powell, 0.0,
            (0.0,) * 8),
    Problem(23, "penalty-1-4", (1.0, 2.0, 3.0, 4.0), _penalty1, 2.24997e-5),
    Problem(25, "variably-dimensioned-6", tuple(1 - j / 6 for j in range(1, 7)),
            _variably_dimensioned, 0.0, (1.0,) * 6),
    Problem(26, "trigonometric-5", (0.2,) * 5, _trigonometric, 0.0),
    Problem(27, "brown-almost-linear-5", (0.5,) * 5, _brown_almost_linear, 0.0, (1.0,) * 5),
    Problem(28, "discrete-boundary-6",
            tuple((j / 7) * (j / 7 - 1) for j in range(1, 7)), _discrete_boundary, 0.0),
    Problem(29, "discrete-integral-6",
            tuple((j / 7) * (j / 7 - 1) for j in range(1, 7)), _discrete_integral, 0.0),
    Problem(30, "broyden-tridiagonal-6", (-1.0,) * 6, _broyden_tridiagonal, 0.0),
    Problem(31, "broyden-banded-6", (-1.0,) * 6, _broyden_banded, 0.0),
    Problem(32, "linear-full-rank-5", (1.0,) * 5, _linear_full_rank, 5.0),
    Problem(33, "linear-rank-1-5", (1.0,) * 5, _linear_rank1, 10 * 9 / (2 * 21)),
]


@dataclass
class Compiled:
    """A problem as numpy functions at one point's branch: ``residuals(x)``, ``jacobian(x)``
    (sympy's derivative), ``cost = sum r^2`` and ``grad = 2 J^T r``."""

    problem: Problem
    residuals: object
    jacobian: object

    def cost(self, x):
        r = self.residuals(x)
        return float(r @ r)

    def grad(self, x):
        return 2.0 * self.jacobian(x).T @ self.residuals(x)

    def grad_without(self, x, i):
        """The gradient with residual ``i``'s term dropped (a planted bug)."""
        r, jac = self.residuals(x), self.jacobian(x)
        r = r.copy()
        r[i] = 0.0
        return 2.0 * jac.T @ r


@functools.cache
def compile_problem(number: int, branch: int = 0) -> Compiled:
    """``PROBLEMS``' problem ``number`` lambdified (``branch``: the helical valley's
    ``x1 < 0`` offset, 0 or 1; ignored elsewhere)."""
    s = _sympy()
    problem = next(p for p in PROBLEMS if p.number == number)
    xs = s.symbols(f"x0:{problem.n}", real=True)
    if problem.number == 7:
        res = problem.residuals(list(xs), branch)
    else:
        res = problem.residuals(list(xs))
    res = [s.sympify(r) for r in res]
    jac = [[s.diff(r, x) for x in xs] for r in res]
    f_r = s.lambdify([xs], res, modules="numpy", cse=True)
    f_j = s.lambdify([xs], jac, modules="numpy", cse=True)
    m = len(res)

    def residuals(x):
        return np.array([float(v) for v in np.broadcast_to(np.array(f_r(tuple(x)),
                                                                    dtype=object), (m,))])

    def jacobian(x):
        rows = f_j(tuple(x))
        return np.array([[float(v) for v in row] for row in rows]).reshape(m, problem.n)

    return Compiled(problem, residuals, jacobian)


def compiled_at(problem: Problem, x) -> Compiled:
    branch = 1 if problem.number == 7 and x[0] < 0 else 0
    return compile_problem(problem.number, branch)


@functools.cache
def minimiser(number: int) -> tuple:
    """The minimiser: the paper's closed form where it gives one, else scipy's least_squares
    from ``x0`` with sympy's Jacobian (tolerances at float64's limit)."""
    from scipy.optimize import least_squares

    problem = next(p for p in PROBLEMS if p.number == number)
    if problem.xstar is not None:
        return problem.xstar
    c = compile_problem(number)
    fit = least_squares(c.residuals, np.array(problem.x0), jac=c.jacobian, method="lm",
                        xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=20000)
    return tuple(float(v) for v in fit.x)
