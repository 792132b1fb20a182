"""fastgc._core.validate: the shared validators, and that every front end words a mistake the
same way through them (TypeError for a wrong type, ValueError for a wrong value)."""

import numpy as np
import pytest

import fastgc
from fastgc._core import validate


# ---- the validators ------------------------------------------------------------------------
@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3)])
def test_integer_accepts_python_and_numpy_ints(value):
    out = validate.integer(value, "n")
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [True, np.bool_(True), 2.0, "2", None, [2]])
def test_integer_refuses_bools_floats_and_strings_with_a_type_error(value):
    with pytest.raises(TypeError, match=r"^n must be an int \(things\), not "):
        validate.integer(value, "n", "things")


def test_integer_below_the_minimum_is_a_value_error():
    with pytest.raises(ValueError, match=r"^n must be at least 1 \(things\), not 0$"):
        validate.integer(0, "n", "things")
    assert validate.integer(0, "n", minimum=0) == 0
    with pytest.raises(ValueError, match=r"^n must be at least 3, not 2$"):
        validate.integer(2, "n", minimum=3)


@pytest.mark.parametrize("value", [1e-3, 2, np.float32(0.5), np.int64(4)])
def test_positive_float_accepts_positive_reals(value):
    out = validate.positive_float(value, "x")
    assert out == float(value) and type(out) is float


@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf, -np.inf])
def test_positive_float_refuses_non_positive_or_non_finite_values(value):
    with pytest.raises(ValueError, match=r"^x must be a positive finite float, not "):
        validate.positive_float(value, "x")


@pytest.mark.parametrize("value", [True, "1e-3", [1.0], 1j])
def test_positive_float_refuses_other_types(value):
    with pytest.raises(TypeError, match=r"^x must be a positive float, not "):
        validate.positive_float(value, "x")
    with pytest.raises(TypeError, match=r"^x must be a positive float or None, not "):
        validate.positive_float(value, "x", none=True)


def test_positive_float_none():
    assert validate.positive_float(None, "x", none=True) is None
    with pytest.raises(TypeError, match="x must be a positive float, not NoneType"):
        validate.positive_float(None, "x")


def test_count_or_fraction():
    assert validate.count_or_fraction(np.int64(5), "subset", "columns") == 5
    assert validate.count_or_fraction(0.25, "subset", "columns") == 0.25
    assert validate.count_or_fraction(1.0, "subset", "columns") == 1.0
    with pytest.raises(ValueError, match=r"subset must be at least 1 \(columns\), not 0"):
        validate.count_or_fraction(0, "subset", "columns")
    for fraction in (0.0, 1.5, np.nan):
        with pytest.raises(ValueError, match=r"subset as a fraction must lie in \(0, 1\]"):
            validate.count_or_fraction(fraction, "subset", "columns")
    for wrong in (True, "3", None):
        with pytest.raises(TypeError, match=r"subset must be an int \(a count\) or a float"):
            validate.count_or_fraction(wrong, "subset", "columns")


def test_one_of():
    assert validate.one_of("b", "kind", ("a", "b")) == "b"
    assert validate.one_of("b", "kind", {"a": 1, "b": 2}) == "b"  # a dict's keys
    for wrong in ("c", None, 3, np.zeros(2), ["a"]):
        with pytest.raises(ValueError, match=r"^kind must be one of \('a', 'b'\), not "):
            validate.one_of(wrong, "kind", ("a", "b"))


def test_bool_flag():
    assert validate.bool_flag(np.bool_(True), "flag") is True
    assert validate.bool_flag(None, "flag", none=True) is None
    for wrong in (1, 0, "yes", None):
        with pytest.raises(TypeError, match=r"^flag must be True or False, not "):
            validate.bool_flag(wrong, "flag")
    with pytest.raises(TypeError, match=r"^flag must be True, False or None, not 'yes'"):
        validate.bool_flag("yes", "flag", none=True)


def test_random_generator():
    rng = np.random.default_rng(5)
    assert validate.random_generator(rng) is rng
    assert validate.random_generator(3).integers(1 << 30) == np.random.default_rng(
        3).integers(1 << 30)
    with pytest.raises(TypeError, match="seed must be an int, a SeedSequence or a Generator"):
        validate.random_generator("x")


# ---- the front ends word each mistake the same way -------------------------------------------
def _quadratic():
    x = np.array([1.0, -2.0, 0.5])
    return (lambda v: 0.5 * float(v @ v)), (lambda v: v.copy()), (lambda v, t: t.copy()), x


def _fronts():
    cost, grad, hvp, x = _quadratic()
    affine = (lambda z, w: z @ w, lambda dout, z, w: (dout @ w.T, z.T @ dout))
    layers = [(affine[0], lambda dout, cache: (dout, dout), (np.ones((3, 2)),))]
    return {
        "check": lambda **kw: fastgc.check(cost, grad, x, **kw),
        "check_hvp": lambda **kw: fastgc.check_hvp(grad, hvp, x, **kw),
        "check_hessian": lambda **kw: fastgc.check_hessian(grad, lambda v: np.eye(3), x, **kw),
        "taylor_test": lambda **kw: fastgc.taylor_test(cost, grad, x, **kw),
        "check_scipy": lambda **kw: fastgc.check_scipy(cost, x, jac=grad, **kw),
        "check_model": lambda **kw: fastgc.check_model(layers, np.ones((2, 3)), **kw),
    }


# (front ends, argument, a wrong type, a wrong value, the value's message)
RULES = [
    (("check", "check_hvp", "check_hessian"), "eps", "1e-6", 0.0,
     r"eps must be a positive finite float, not 0.0"),
    (("check", "check_hvp", "check_hessian"), "threshold", "1e-6", -1.0,
     r"threshold must be a positive finite float, not -1.0"),
    (("check", "check_hvp"), "directions", 2.0, 0,
     r"directions must be at least 1 \(directions per block\), not 0"),
    (("check",), "budget", "a", -1,
     r"budget must be at least 0 \(evaluations per failing block\), not -1"),
    (("check",), "max_memory", "1", 0, r"max_memory must be at least 1 \(bytes\), not 0"),
    (("check_scipy",), "points", 2.0, -1, r"points must be at least 0 \(points besides x0\)"),
    (("check_scipy",), "radius", "0.1", 0, r"radius must be a positive finite float, not 0.0"),
    (("taylor_test",), "max_halvings", 8.0, 1, r"max_halvings must be at least 3"),
    (("check_model",), "input_subset", 2.5, 0, r"input_subset must be at least 1"),
    (("check_model",), "chain_rtol", "1e-8", 0.0,
     r"chain_rtol must be a positive finite float, not 0.0"),
]


@pytest.mark.parametrize("fronts, name, wrong_type, wrong_value, message", RULES,
                         ids=[r[1] for r in RULES])
def test_every_front_end_raises_type_error_for_a_type_and_value_error_for_a_value(
        fronts, name, wrong_type, wrong_value, message):
    calls = _fronts()
    for front in fronts:
        with pytest.raises(TypeError, match=rf"^{name} must be "):
            calls[front](**{name: wrong_type})
        with pytest.raises(TypeError, match=rf"^{name} must be .*, not bool"):
            calls[front](**{name: True})
        with pytest.raises(ValueError, match=message):
            calls[front](**{name: wrong_value})


def test_subset_is_worded_alike_in_check_and_check_hessian():
    calls = _fronts()
    for front, unit in (("check", "coordinates"), ("check_hessian", "columns")):
        with pytest.raises(TypeError, match=r"subset must be an int \(a count\) or a float"):
            calls[front](subset="3")
        with pytest.raises(ValueError, match=rf"subset must be at least 1 \({unit}\), not 0"):
            calls[front](subset=0)
        with pytest.raises(ValueError, match=r"subset as a fraction must lie in \(0, 1\]"):
            calls[front](subset=1.5)


def test_workers_and_seed_are_validated_alike():
    calls = _fronts()
    with pytest.raises(TypeError, match="workers must be None, an int"):
        calls["check"](workers=2.0)
    with pytest.raises(ValueError, match="workers must be a positive int or -1"):
        calls["check"](workers=0)
    for front in ("check", "check_hvp", "taylor_test", "check_scipy"):
        with pytest.raises(TypeError, match="seed must be an int, a SeedSequence"):
            calls[front](seed="x")


def test_non_negative_float():
    assert validate.non_negative_float(0, "tol") == 0.0
    assert validate.non_negative_float(np.float32(1e-3), "tol") == pytest.approx(1e-3)
    for wrong in (-1e-9, np.inf, np.nan):
        with pytest.raises(ValueError, match=r"^tol must be a non-negative finite float, not"):
            validate.non_negative_float(wrong, "tol")
    for wrong in (True, "0", None):
        with pytest.raises(TypeError, match=r"^tol must be a non-negative float, not "):
            validate.non_negative_float(wrong, "tol")


def test_framework_options_through_the_same_validators():
    from fastgc._framework import validate as framework_options

    with pytest.raises(TypeError, match="nondet_tol must be a non-negative float, not str"):
        framework_options({}, "auto", "auto", "0", "torch")
    with pytest.raises(ValueError, match="nondet_tol must be a non-negative finite float"):
        framework_options({}, "auto", "auto", -1.0, "torch")
    with pytest.raises(ValueError, match=r"batching must be one of \('auto', "):
        framework_options({}, "auto", "fast", 0.0, "torch")
    framework_options({}, "auto", "loop", 0, "torch")  # valid: nothing raised
