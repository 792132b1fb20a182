"""The Examples sections of the public docstrings run (doctest)."""

import doctest
import importlib

import pytest

MODULES = ["fastgc._check", "fastgc._engines.registry", "fastgc._exercise.checks",
           "fastgc._network.mlp",
           "fastgc._second_order", "fastgc._taylor", "fastgc._scipy_check",
           "fastgc._layers", "fastgc._model"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
