"""Layout: a parameter structure as one float64 vector, and back, with every entry named.

References: ``np.concatenate`` of C-order ravels in the structure's own order, the exercise's
``dictionary_to_vector`` order, and ``np.unravel_index`` for names.
"""

from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest

import fastgc
from fastgc._core.layout import Layout
from fastgc._errors import Float32Warning


def _exercise_params(seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(size=(5, 4)), "b1": rng.normal(size=(5, 1)),
            "W2": rng.normal(size=(3, 5)), "b2": rng.normal(size=(3, 1)),
            "W3": rng.normal(size=(1, 3)), "b3": rng.normal(size=(1, 1))}


def test_flat_order_is_the_structures_order_in_c_order():
    rng = np.random.default_rng(1)
    # a Fortran-ordered and a non-contiguous block: the flat order is still C order
    params = {"z": rng.normal(size=(3, 2)).copy(order="F"), "a": rng.normal(size=(4, 6))[:, ::2],
              "s": np.array(1.5)}
    layout, flat = Layout.of(params)
    expected = np.concatenate([params["z"].ravel(order="C"), params["a"].ravel(order="C"), [1.5]])
    np.testing.assert_array_equal(flat, expected)
    assert flat.dtype == np.float64 and flat.flags.c_contiguous
    assert layout.kind == "dict" and layout.size == 6 + 12 + 1
    assert [b.name for b in layout.blocks] == ["z", "a", "s"]
    assert [b.offset for b in layout.blocks] == [0, 6, 18]
    assert [b.stop for b in layout.blocks] == [6, 18, 19]
    assert [b.shape for b in layout.blocks] == [(3, 2), (4, 3), ()]
    assert [b.size for b in layout.blocks] == [6, 12, 1]


def test_exercise_dict_order_matches_dictionary_to_vector():
    from fastgc.gc_utils import dictionary_to_vector

    params = _exercise_params()
    _, flat = Layout.of(params)
    vector, _ = dictionary_to_vector(params)
    np.testing.assert_array_equal(flat, vector.ravel())


def test_flat_is_a_copy():
    params = {"W": np.ones((2, 2))}
    _, flat = Layout.of(params)
    flat[:] = 7.0
    np.testing.assert_array_equal(params["W"], 1.0)


def test_unflatten_gives_views_in_the_same_structure():
    params = _exercise_params(2)
    layout, flat = Layout.of(params)
    back = layout.unflatten(flat)
    assert list(back) == list(params)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])
        assert back[k].shape == params[k].shape
        assert np.shares_memory(back[k], flat)  # views: perturbing flat moves them
    flat[0] += 1.0
    assert back["W1"][0, 0] == params["W1"][0, 0] + 1.0


@pytest.mark.parametrize("container", [list, tuple])
def test_sequences(container):
    params = container([np.zeros((2, 3)), np.ones(4)])
    layout, flat = Layout.of(params)
    assert layout.kind == "sequence"
    assert [b.name for b in layout.blocks] == ["[0]", "[1]"]
    assert [b.key for b in layout.blocks] == [0, 1]
    back = layout.unflatten(flat)
    assert type(back) is container and len(back) == 2
    assert layout.coordinate_name(5) == "[0][1, 2]"
    assert layout.coordinate_name(6) == "[1][0]"


def test_namedtuple_round_trip():
    Params = collections.namedtuple("Params", "w b")
    params = Params(np.arange(3.0), np.array(2.0))
    layout, flat = Layout.of(params)
    back = layout.unflatten(flat)
    assert isinstance(back, Params)
    np.testing.assert_array_equal(back.w, params.w)
    assert float(back.b) == 2.0


def test_single_array_and_scalar():
    layout, flat = Layout.of(np.arange(6.0).reshape(2, 3))
    assert layout.kind == "array" and [b.name for b in layout.blocks] == ["params"]
    assert layout.coordinate_name(4) == "params[1, 1]"
    assert layout.unflatten(flat).shape == (2, 3)

    layout, flat = Layout.of(2.5)
    assert layout.size == 1 and layout.coordinate_name(0) == "params"
    assert layout.unflatten(flat).shape == ()
    np.testing.assert_array_equal(flat, [2.5])


def test_every_coordinate_is_named_like_numpy_indexes_it():
    params = {"T": np.zeros((2, 3, 4)), "b": np.zeros(5), "s": np.zeros(())}
    layout, _ = Layout.of(params)
    names = [layout.coordinate_name(i) for i in range(layout.size)]
    expected = [f"T[{i}, {j}, {k}]" for i, j, k in zip(*np.unravel_index(np.arange(24), (2, 3, 4)),
                                                        strict=True)]
    expected += [f"b[{i}]" for i in range(5)] + ["s"]
    assert names == expected
    np.testing.assert_array_equal(layout.block_index(np.arange(layout.size)),
                                  [0] * 24 + [1] * 5 + [2])


def test_non_string_keys():
    params = {0: np.ones(2), ("a", 1): np.ones(1)}
    layout, _ = Layout.of(params)
    assert [b.name for b in layout.blocks] == ["0", "('a', 1)"]
    assert [b.key for b in layout.blocks] == [0, ("a", 1)]
    flat, ignored = layout.flatten_gradient({0: np.array([1.0, 2.0]), ("a", 1): np.array([3.0])})
    np.testing.assert_array_equal(flat, [1.0, 2.0, 3.0])
    assert ignored == []


# ---- gradients matched to parameters ---------------------------------------------------------
def test_gradient_keys_in_any_order_and_either_spelling():
    params = _exercise_params(3)
    layout, _ = Layout.of(params)
    grad = {("d" + k if k.startswith("W") else k): np.full(v.shape, i, dtype=np.float64)
            for i, (k, v) in enumerate(params.items())}
    grad = dict(reversed(list(grad.items())))  # the gradient's own order does not matter
    grad["dZ2"], grad["dA1"] = np.zeros(7), np.zeros(1)
    flat, ignored = layout.flatten_gradient(grad)
    expected = np.concatenate([np.full(v.size, i, dtype=np.float64)
                               for i, v in enumerate(params.values())])
    np.testing.assert_array_equal(flat, expected)
    assert sorted(ignored) == ["dA1", "dZ2"]


def test_parameter_named_like_a_gradient_alias():
    # Parameters "W" and "dW": the gradient's "dW" belongs to parameter "dW", not to "W".
    layout, _ = Layout.of({"W": np.zeros(2), "dW": np.zeros(1)})
    flat, _ = layout.flatten_gradient({"W": np.array([1.0, 2.0]), "dW": np.array([3.0])})
    np.testing.assert_array_equal(flat, [1.0, 2.0, 3.0])
    flat, _ = layout.flatten_gradient({"W": np.array([1.0, 2.0]), "ddW": np.array([3.0])})
    np.testing.assert_array_equal(flat, [1.0, 2.0, 3.0])


def test_gradient_sequence_and_array():
    layout, _ = Layout.of([np.zeros(2), np.zeros((1, 2))])
    flat, ignored = layout.flatten_gradient((np.array([1.0, 2.0]), [[3.0, 4.0]]))
    np.testing.assert_array_equal(flat, [1.0, 2.0, 3.0, 4.0])
    assert ignored == []

    layout, _ = Layout.of(np.zeros((2, 2)))
    flat, _ = layout.flatten_gradient(np.arange(4.0, dtype=np.float32).reshape(2, 2))
    assert flat.dtype == np.float64
    np.testing.assert_array_equal(flat, [0.0, 1.0, 2.0, 3.0])


def test_gradient_flat_is_a_copy():
    layout, _ = Layout.of({"W": np.zeros(3)})
    grad = {"dW": np.ones(3)}
    flat, _ = layout.flatten_gradient(grad)
    flat[:] = 5.0
    np.testing.assert_array_equal(grad["dW"], 1.0)


def test_gradient_shape_must_match_exactly():
    layout, _ = Layout.of({"b": np.zeros((3, 1))})
    with pytest.raises(ValueError, match=r"grad\['db'\] has shape \(3,\) but parameter 'b' has "
                                         r"shape \(3, 1\)"):
        layout.flatten_gradient({"db": np.zeros(3)})


def test_argname_appears_in_messages():
    with pytest.raises(ValueError, match=r"theta has a non-finite value nan at w\[1\]"):
        Layout.of({"w": np.array([0.0, np.nan])}, "theta")
    layout, _ = Layout.of({"w": np.zeros(2)})
    with pytest.raises(ValueError, match=r"backprop has no gradient for parameter 'w'"):
        layout.flatten_gradient({}, "backprop")


# ---- float32 ----------------------------------------------------------------------------------
def test_float32_is_upcast_with_a_warning_naming_the_blocks():
    params = {"W": np.ones((2, 2), dtype=np.float32), "b": np.ones(2, dtype=np.float32),
              "c": np.ones(1)}
    with pytest.warns(Float32Warning, match=r"params\['W'\], params\['b'\] are float32: upcast"):
        layout, flat = Layout.of(params)
    assert flat.dtype == np.float64
    assert issubclass(Float32Warning, UserWarning)


def test_float32_exact_values_survive_the_upcast():
    x = np.array([0.1, 1 / 3], dtype=np.float32)
    with pytest.warns(Float32Warning):
        _, flat = Layout.of(x)
    np.testing.assert_array_equal(flat, x.astype(np.float64))  # exact: no rounding to decimal


def test_float64_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Layout.of({"W": np.ones(2)})
        fastgc.check(lambda v: np.sum(v), np.ones(2), np.zeros(2))


@pytest.mark.parametrize("spelling", ["", "d"])
def test_an_excluded_entrys_gradient_in_either_spelling_is_not_read(spelling):
    # The exercise's gradient dict spells every key "d" + name: the excluded entry's gradient
    # arrives as "drunning_mean" and must be ignored like "running_mean", not reported as a
    # key that matches no parameter.
    rng = np.random.default_rng(0)
    W, x = rng.standard_normal((3, 4)), rng.standard_normal(4)

    def cost(p):
        return float(np.sum(np.sin(p["W"] @ x)) + np.sum(p["running_mean"]))

    params = {"W": W, "running_mean": np.zeros(3)}
    grad = {"dW": np.cos(W @ x)[:, None] * x[None, :],
            spelling + "running_mean": np.full(3, np.nan)}  # never read: NaN would be refused
    result = fastgc.check(cost, grad, params, exclude="running_mean")
    assert result.passed, result.report()
    assert list(result.blocks) == ["W"]
    assert result.notes[-1] == "excluded (not checked): running_mean"
