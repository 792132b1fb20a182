"""Front end: ``fastgc.check_scipy``, the callables of ``scipy.optimize.minimize`` checked as
``minimize`` would call them.

``minimize(fun, x0, args=(), jac=None, hess=None, hessp=None)`` calls ``fun(x, *args)`` with a
flat float64 ``x``; ``jac=True`` means ``fun`` returns ``(f, g)``; ``hess(x, *args)`` returns a
dense array, a sparse matrix or a LinearOperator; ``hessp(x, p, *args)`` returns ``H p``. Each
callable given is checked at ``x0`` and at a few seeded points nearby (a Hessian bug often
shows only away from the point it was tested at), the gradient first at each point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fastgc._check import check
from fastgc._core.display import Display
from fastgc._core.result import CheckResult, _paint, _seconds, _use_color
from fastgc._core.second_order_result import same_result
from fastgc._core.validate import integer, positive_float, random_generator
from fastgc._second_order import check_hessian, check_hvp

__all__ = ["ScipyCheckResult", "check_scipy"]

# scipy's finite-difference and quasi-Newton choices: nothing hand-written to check.
_SCIPY_STRINGS = ("2-point", "3-point", "cs")
# jac is checked at every coordinate up to this size, else along random directions.
_FULL_LIMIT = 2000


@dataclass
class ScipyCheckResult(Display):
    """What :func:`fastgc.check_scipy` returns.

    Attributes
    ----------
    passed : bool
        Every section passes at every point.
    message : str
        One line: which callables were checked, and where the first failure is.
    points : ndarray, shape (n_points, n)
        The points checked: ``x0`` first, then the seeded nearby ones.
    sections : dict of str to list
        ``"jac"`` (:class:`CheckResult` per point), ``"hess"`` and ``"hessp"``
        (:class:`HessianResult` per point; None where the gradient failed at that point, so
        the Hessian was not checked), for the callables given.
    notes : list of str
        What was not checked and why (``jac="2-point"``, a ``HessianUpdateStrategy``).
    seconds : float

    Two results compare equal when every field but ``seconds`` is equal.
    """

    passed: bool
    message: str
    points: np.ndarray
    sections: dict
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.passed)

    def __eq__(self, other) -> bool:
        if not isinstance(other, ScipyCheckResult):
            return NotImplemented
        return same_result(self, other)

    __hash__ = None

    def report(self, color: bool | None = None) -> str:
        """The readable report, ``str(result)``: one section per callable, one line per point.

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
        if color is None:
            color = _use_color()
        ok = _paint("passed", "32", color) if self.passed else _paint("FAILED", "31", color)
        lines = [f"fastgc scipy.optimize check {ok}: {self.message} ({_seconds(self.seconds)})"]
        for name, results in self.sections.items():
            lines.append(f"  {name}:")
            for k, r in enumerate(results):
                where = "x0" if k == 0 else f"point {k}"
                if r is None:
                    lines.append(f"    {where}: not checked (jac fails there)")
                    continue
                verdict = _paint("ok", "32", color) if r.passed else _paint("FAIL", "31", color)
                if isinstance(r, CheckResult):
                    text = (f"difference {r.difference:.2e}" if r.passed
                            else "; ".join(b.diagnosis for b in r.blocks.values()
                                           if not b.passed))
                else:
                    text = (f"difference {r.difference:.2e}" if r.passed else r.message)
                lines.append(f"    {where}: {verdict}  {text}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _flat_output(value, n, what) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{what} must return a real array, not dtype {array.dtype}")
    if array.shape != (n,) and array.size != n:
        raise ValueError(f"{what} returned shape {array.shape}, but x0 has shape ({n},)")
    return array.astype(np.float64).reshape(n)


def check_scipy(fun, x0, args=(), jac=None, hess=None, hessp=None, *, points=2, radius=0.1,
                seed=0, method="central"):
    """Check the callables written for ``scipy.optimize.minimize``, with its conventions.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args) -> float``, or ``-> (float, ndarray)`` with ``jac=True``.
    x0 : array_like, shape (n,)
        The starting point (``np.atleast_1d(x0)`` must be 1-D, as ``minimize`` requires).
    args : tuple
        Extra arguments for every callable (a non-tuple is wrapped, as ``minimize`` does).
    jac : callable, bool or str, optional
        ``jac(x, *args) -> ndarray`` of shape (n,), or True (``fun`` returns ``(f, g)``).
        A finite-difference choice (``"2-point"``, ``"3-point"``, ``"cs"``) is not checked.
    hess : callable, optional
        ``hess(x, *args)``: a dense (n, n) array, a scipy sparse matrix or a LinearOperator
        (checked with :func:`fastgc.check_hessian`). A string or a ``HessianUpdateStrategy``
        is scipy's own and is not checked.
    hessp : callable, optional
        ``hessp(x, p, *args) -> ndarray`` of shape (n,) (checked with
        :func:`fastgc.check_hvp`).
    points : int
        Seeded points checked besides ``x0`` (default 2), at ``x0 + radius x max(1, |x0|) z``
        with standard normal ``z``.
    radius : float
        Their distance from ``x0``, relative to ``max(1, |x0_i|)`` (default 0.1).
    seed : int, SeedSequence or Generator
        Seed of the nearby points and of every check's directions.
    method : {"central", "two-step", "richardson"}
        The scheme of the Hessian checks (see :func:`fastgc.check_hvp`).

    Returns
    -------
    ScipyCheckResult
        One section per callable given (``"jac"``, ``"hess"``, ``"hessp"``), one result per
        point; ``passed``; ``report()``.

    Raises
    ------
    TypeError, ValueError
        Invalid arguments: ``x0`` not 1-D, ``hess``/``hessp`` without a ``jac`` to check them
        against, a callable returning the wrong shape.

    Notes
    -----
    At each point ``jac`` is checked first; a Hessian is checked only where ``jac`` passes
    (differences of a wrong gradient are not the Hessian). ``minimize``'s Newton-CG and trust
    methods need ``jac`` too.

    Examples
    --------
    >>> import numpy as np, fastgc
    >>> from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod
    >>> x0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])
    >>> result = fastgc.check_scipy(rosen, x0, jac=rosen_der, hess=rosen_hess,
    ...                             hessp=rosen_hess_prod)
    >>> result.passed, list(result.sections), len(result.points)
    (True, ['jac', 'hess', 'hessp'], 3)
    >>> def fun_and_grad(x):
    ...     return rosen(x), rosen_der(x)
    >>> fastgc.check_scipy(fun_and_grad, x0, jac=True).passed
    True
    """
    start = time.perf_counter()
    if not callable(fun):
        raise TypeError(f"fun must be callable, fun(x, *args); got {type(fun).__name__}")
    if not isinstance(args, tuple):
        args = (args,)
    x0 = np.atleast_1d(np.asarray(x0))
    if x0.ndim != 1:
        raise ValueError(f"x0 must be 1-D (scipy.optimize.minimize requires it), not shape "
                         f"{x0.shape}")
    if x0.dtype.kind not in "fiu":
        raise TypeError(f"x0 must be real, not dtype {x0.dtype}")
    x0 = x0.astype(np.float64)
    if not np.all(np.isfinite(x0)):
        raise ValueError("x0 has non-finite entries")
    points = integer(points, "points", "points besides x0", minimum=0)
    radius = positive_float(radius, "radius")
    n = x0.size
    notes = []
    # -- which callables there are ----------------------------------------------------------
    if jac is True:
        def both(x):
            value = fun(np.array(x), *args)
            if not (isinstance(value, tuple) and len(value) == 2):
                raise TypeError("with jac=True, fun must return (f, g) (scipy's convention), "
                                f"not {type(value).__name__}")
            return value

        def cost(p):
            return both(p["x"])[0]

        def grad_x(x):
            return _flat_output(both(x)[1], n, "fun(x)[1] (jac=True)")
    elif callable(jac):
        def cost(p):
            return fun(np.array(p["x"]), *args)

        def grad_x(x):
            return _flat_output(jac(np.array(x), *args), n, "jac(x)")
    elif jac is None or jac is False:
        cost, grad_x = None, None
    elif isinstance(jac, str) and jac in _SCIPY_STRINGS:
        cost, grad_x = None, None
        notes.append(f"jac={jac!r} is scipy's finite-difference gradient: not checked")
    else:
        raise TypeError(f"jac must be a callable, True, None or one of {_SCIPY_STRINGS}, "
                        f"not {jac!r}")
    if hess is not None and not callable(hess):
        notes.append(f"hess={hess!r} is scipy's own (finite differences or a quasi-Newton "
                     "update): not checked")
        hess = None
    if hessp is not None and not callable(hessp):
        raise TypeError(f"hessp must be callable, hessp(x, p, *args); got "
                        f"{type(hessp).__name__}")
    if (hess is not None or hessp is not None) and grad_x is None:
        raise ValueError("hess= and hessp= are checked against differences of the gradient: "
                         "pass jac= as a callable or jac=True (minimize's Newton-CG and trust "
                         "methods require it as well)")
    if grad_x is None:
        raise ValueError("nothing to check: pass jac= (a callable or True), and hess= or "
                         "hessp= if you have them")
    method_seed = random_generator(seed)
    z = method_seed.standard_normal((int(points), n))
    pts = np.vstack([x0, x0 + radius * np.maximum(1.0, np.abs(x0)) * z])

    def grad(p):
        return {"x": grad_x(p["x"])}

    def hess_p(p):
        H = hess(np.array(p["x"]), *args)
        shape = getattr(H, "shape", None)
        if shape is not None and tuple(shape) != (n, n):
            raise ValueError(f"hess(x) returned shape {tuple(shape)}, but x0 has shape ({n},): "
                             f"hess must return a ({n}, {n}) matrix")
        return H

    def hvp_p(p, v):
        return {"x": _flat_output(hessp(np.array(p["x"]), np.array(v["x"]), *args), n,
                                  "hessp(x, p)")}

    sections = {"jac": []}
    if hess is not None:
        sections["hess"] = []
    if hessp is not None:
        sections["hessp"] = []
    for k, x in enumerate(pts):
        params = {"x": x}
        options = {"seed": k} if n <= _FULL_LIMIT else {"seed": k, "directions": 4}
        g = check(cost, grad, params, **options)
        sections["jac"].append(g)
        if "hess" in sections:
            sections["hess"].append(check_hessian(grad, hess_p, params, method=method, seed=k)
                                    if g.passed else None)
        if "hessp" in sections:
            sections["hessp"].append(check_hvp(grad, hvp_p, params, method=method, seed=k)
                                     if g.passed else None)
    failures = [(name, k) for name, results in sections.items()
                for k, r in enumerate(results) if r is not None and not r.passed]
    passed = not failures
    names = ", ".join(sections)
    if passed:
        message = f"{names} agree with finite differences at x0 and {int(points)} nearby points"
    else:
        name, k = failures[0]
        message = (f"{name} fails at {'x0' if k == 0 else f'point {k}'}"
                   + (f" (and {len(failures) - 1} more point/section failures)"
                      if len(failures) > 1 else ""))
    return ScipyCheckResult(passed, message, pts, sections, notes,
                            time.perf_counter() - start)
