"""Verdicts on the Moré-Garbow-Hillstrom problems (tests/mgh_problems.py, from the paper):
at x0, 10 x0, 100 x0 and the minimisers, with the default method and Richardson.

- every correct gradient (sympy's) passes, and no coordinate of these smooth costs is
  reported as a kink;
- every planted bug that is detectable in principle fails: an offset of 1e-3 on the first
  coordinate at the minimiser (where the gradient is ~0), the gradient scaled by 1 + 1e-4, and
  the term of one residual dropped (the one whose term is largest). "Detectable in principle":
  the bug moves the gradient by at least 1e-5 of its norm and by at least 1e-6 absolute (a
  scaling of a gradient of 1e-15 at a minimiser is below what any difference of a float64 cost
  resolves; so is a dropped residual that is 0 there).

At a minimiser the gradient is ~0 and the finite differences are dominated by curvature
(the one-sided slopes are +-h J''/2) and truncation (h^2 J'''/6): these are the points where
curvature passes for a kink and a correct gradient fails against the truncation error, and
where a zero-residual cost was once read as low-precision.
"""

import numpy as np
import pytest

pytest.importorskip("sympy")

from mgh_problems import PROBLEMS, compiled_at, minimiser  # noqa: E402

import fastgc  # noqa: E402

# Known wrong verdicts, named so that a fix shows (the test then asks to remove them): Brown's
# badly scaled function (J ~ 1e12 at x0) gets a rounding estimate ~24x too high at the
# default step, so its error term allows a 1e-4 scaling.
KNOWN = {
    ("brown-badly-scaled", "x0", "central", "scale"),
    ("brown-badly-scaled", "10x0", "central", "scale"),
    ("brown-badly-scaled", "x0", "richardson", "scale"),
}


def _points(problem):
    x0 = np.array(problem.x0)
    points = {"x0": x0}
    if np.any(x0):
        points.update({"10x0": 10 * x0, "100x0": 100 * x0})
    points["xstar"] = np.array(minimiser(problem.number))
    return points


def _cases():
    cases = []
    for problem in PROBLEMS:
        for name, x in _points(problem).items():
            c = compiled_at(problem, x)
            with np.errstate(all="ignore"):
                if not np.isfinite(c.cost(x)):
                    continue  # overflows in float64 (Jennrich-Sampson at 100 x0)
            cases.append((problem, name))
    return cases


CASES = _cases()


def _variants(problem, x):
    """The correct gradient and the planted bugs detectable in principle."""
    c = compiled_at(problem, x)
    g = c.grad(x)
    out = {"correct": g}

    def detectable(bug):
        d = np.linalg.norm(bug - g)
        return d >= 1e-5 * np.linalg.norm(g) and d >= 1e-6

    candidates = {"scale": g * (1 + 1e-4)}
    if np.linalg.norm(g) < 1e-4:  # at a minimiser
        offset = g.copy()
        offset[0] += 1e-3
        candidates["offset"] = offset
    r, jac = c.residuals(x), c.jacobian(x)
    candidates["dropped"] = c.grad_without(x, int(np.argmax(np.linalg.norm(jac * r[:, None],
                                                                           axis=1))))
    out.update({k: v for k, v in candidates.items() if detectable(v)})
    return c, out


def test_the_transcription_reaches_the_papers_minima():
    # A slip in a residual changes the minimum: the paper's f* (6 digits) is reached from x0
    # (least squares with sympy's Jacobian); the closed-form minimisers are zeros of every
    # residual.
    for problem in PROBLEMS:
        x = np.array(minimiser(problem.number))
        f = compiled_at(problem, x).cost(x)
        if problem.fstar == 0.0:
            assert f < 1e-25, problem.name
        else:
            assert f == pytest.approx(problem.fstar, rel=5e-6), problem.name  # 6 digits


def _five_point(f, x):
    """A plain-numpy 4th-order central difference (reference for the lambdified gradient)."""
    g = np.empty(len(x))
    for k in range(len(x)):
        h = 1e-3 * max(1e-2, abs(x[k]))
        e = np.zeros(len(x))
        e[k] = h
        g[k] = (f(x - 2 * e) - 8 * f(x - e) + 8 * f(x + e) - f(x + 2 * e)) / (12 * h)
    return g


def test_sympys_gradient_agrees_with_an_independent_finite_difference():
    # the lambdified gradient is the gradient of the lambdified cost (loose enough for the
    # stencil's own h^4 truncation and rounding)
    for problem in PROBLEMS:
        x = np.array(problem.x0)
        c = compiled_at(problem, x)
        g = c.grad(x)
        reference = _five_point(c.cost, x)
        assert np.linalg.norm(g - reference) <= 1e-5 * np.linalg.norm(g) + 1e-7, problem.name


@pytest.mark.parametrize("method", ["central", "richardson"])
@pytest.mark.parametrize("problem, point", CASES,
                         ids=[f"{p.number}-{p.name}-{n}" for p, n in CASES])
def test_mgh_verdicts(problem, point, method):
    x = _points(problem)[point]
    c, variants = _variants(problem, x)
    wrong, reports = set(), []
    for bug, grad in variants.items():
        result = fastgc.check(c.cost, grad, x, method=method)
        right = result.passed == (bug == "correct") and result.kinks == []
        # a pass is never bought with a threshold that no difference can exceed
        right &= not (result.passed and result.threshold >= 0.1)
        if not right:
            wrong.add(bug)
            reports.append(f"{bug}:\n{result.report(color=False)}")
    known = {k[3] for k in KNOWN if k[:3] == (problem.name, point, method)}
    assert wrong <= known, "\n".join(reports)
    # a known wrong verdict that is now right: take it out of KNOWN
    assert wrong == known, f"now right: {sorted(known - wrong)}"
