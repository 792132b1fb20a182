"""Adding a method is one Scheme class and one SCHEMES entry; adding an engine is one module and
one _ENGINE_CLASSES line: nothing else in fastgc changes (docs/explanation/architecture.md)."""

import numpy as np
import pytest

import fastgc
from fastgc._core import schemes as _scheme
from fastgc._core.noise import NOISE_NFEV
from fastgc._engines import registry as _objective


class ForwardDifference(_scheme.Scheme):
    """(J(theta + h e_k) - J(theta)) / h: one evaluation per coordinate, first order."""

    name = "forward"
    description = "forward differences"
    default_threshold = 1e-4

    def estimate(self, objective, theta, index, eps):
        step = _scheme.coordinate_steps(theta, index, eps, relative=1e-7)
        d = objective.at_coordinates(index, step)
        return _scheme.Estimate(d.values / step, d.noise / step, step)

    def black_box_kinks(self, objective, index, estimate, suspects, analytic, threshold):
        return np.zeros(len(index), dtype=bool)


def _problem():
    rng = np.random.default_rng(2)
    params = {"w": rng.standard_normal(5), "V": rng.standard_normal((2, 3))}

    def cost(p):
        return float(np.sum(np.sin(p["w"])) + np.sum(p["V"] ** 2))

    grads = {"w": np.cos(params["w"]), "V": 2 * params["V"]}
    return cost, params, grads


def test_a_new_scheme_is_one_class_and_one_registry_line(monkeypatch):
    monkeypatch.setitem(_scheme.SCHEMES, "forward", ForwardDifference())
    cost, params, grads = _problem()
    result = fastgc.check(cost, grads, params, method="forward")
    assert result.passed and result.method == "forward" and result.threshold == 1e-4
    # one evaluation per coordinate, the base point, and the cost's noise measured once
    assert result.nfev == 11 + 1 + NOISE_NFEV
    assert "forward differences" in str(result)
    grads["V"] = 3 * params["V"]
    wrong = fastgc.check(cost, grads, params, method="forward")
    assert not wrong.passed and wrong.blocks["V"].diagnosis == "dV is 1.5 x the numeric gradient"


def test_a_new_engine_is_one_module_and_one_registry_line(monkeypatch):
    monkeypatch.setitem(_objective._ENGINE_CLASSES, "copying",
                        ("extension_engine", "CopyingObjective"))
    cost, params, grads = _problem()
    for options in ({}, {"subset": 4}, {"directions": 2}, {"method": "richardson"}):
        result = fastgc.check(cost, grads, params, engine="copying", **options)
        reference = fastgc.check(cost, grads, params, engine="loop", **options)
        assert result.engine == "copying" and result.passed, options
        # the same arithmetic as the loop engine: the same result, engine name aside
        assert (result.difference, result.nfev) == (reference.difference, reference.nfev)
    with pytest.raises(NotImplementedError, match="copying engine does not support"):
        fastgc.check(cost, grads, params, engine="copying", method="complex")
