"""Library hygiene: fastgc prints nothing (the command line, the demo and the exercise's opt-in
``print_msg`` aside), logs to ``logging.getLogger("fastgc")`` with only a NullHandler, and warns
only with its own categories, which ``-W error::fastgc.<Warning>`` turns into errors.

The source checks read the code with ``ast`` (every call, in function bodies too), not by
running it, so a print on a rarely taken path is found as well.
"""

import ast
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastgc
from fastgc import _errors

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "fastgc"
# Where output is the point: the command line, the exercise's demo, and the exercise's own
# gradient_check(print_msg=True) (off by default, as in the exercise).
MAY_PRINT = {"fastgc/_cli.py", "fastgc/_exercise/demo.py", "fastgc/_exercise/checks.py"}
# The progress bar writes to the stream it is given (stderr by default).
MAY_WRITE_STREAMS = {"fastgc/_cli.py", "fastgc/_engines/progress.py"}


def _calls(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            yield node


def _sources():
    return {str(p.relative_to(ROOT)): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_stream_write(call):
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr in ("write", "writelines")
            and isinstance(f.value, ast.Attribute) and f.value.attr in ("stdout", "stderr")
            and isinstance(f.value.value, ast.Name) and f.value.value.id == "sys")


def test_nothing_prints_outside_the_command_line_and_the_exercise():
    printing, writing = set(), set()
    for name, path in _sources().items():
        for call in _calls(path):
            if isinstance(call.func, ast.Name) and call.func.id == "print":
                printing.add(name)
            if _is_stream_write(call):
                writing.add(name)
    assert printing <= MAY_PRINT, f"print() in {sorted(printing - MAY_PRINT)}"
    assert writing <= MAY_WRITE_STREAMS, f"sys.stdout/stderr written in {sorted(writing)}"
    assert "fastgc/_cli.py" in printing  # the scan sees prints where they are


def test_every_warning_has_a_fastgc_category():
    found = []
    for name, path in _sources().items():
        for call in _calls(path):
            f = call.func
            if isinstance(f, ast.Attribute) and f.attr == "warn" and (
                    isinstance(f.value, ast.Name) and f.value.id == "warnings"):
                category = call.args[1] if len(call.args) > 1 else next(
                    (k.value for k in call.keywords if k.arg == "category"), None)
                assert isinstance(category, ast.Name), f"{name}: warnings.warn without category"
                found.append((name, category.id))
    assert found  # the Float32Warning of fastgc/_core/layout.py at least
    for name, category in found:
        cls = getattr(_errors, category, None)
        assert cls is not None and issubclass(cls, fastgc.FastgcWarning), (name, category)
    assert issubclass(fastgc.FastgcWarning, UserWarning)
    assert fastgc.Float32Warning.__module__ == "fastgc._errors"


def test_the_fastgc_logger_has_only_a_null_handler():
    # a fresh interpreter: the state import leaves, before any test configures logging
    code = ("import logging, fastgc; log = logging.getLogger('fastgc'); "
            "print([type(h).__name__ for h in log.handlers], log.level, log.propagate)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "['NullHandler'] 0 True"


def _quadratic(n):
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal(n)}
    return (lambda p: float(np.sum(p["w"] ** 2))), {"w": 2 * params["w"]}, params


def test_a_check_logs_its_plan_step_and_chunks_at_debug_and_prints_nothing(caplog, capfd):
    cost, grad, params = _quadratic(600)
    with caplog.at_level(logging.DEBUG, logger="fastgc"):
        result = fastgc.check(cost, grad, params, engine="loop")
    assert result.passed
    records = [r for r in caplog.records if r.name.startswith("fastgc")]
    text = [r.getMessage() for r in records]
    assert any(t.startswith("plan full: 600 coordinates of 600 parameters in 1 blocks; "
                            "scheme central; threshold 1e-06") for t in text), text
    assert any(t.startswith("step: ") for t in text)
    chunks = [t for t in text if "evaluations in" in t]
    # central differences: one request of 2 x 600 points, cut in chunks of at least 256
    assert any(t.startswith("at_coordinates: 1200 evaluations in 5 chunk(s), engine loop")
               for t in chunks), chunks
    assert all(r.levelno == logging.DEBUG for r in records)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_stacked_engine_logs_its_chunk_size(caplog):
    from fastgc import batched

    @batched
    def cost(p):
        return np.sum(p["w"] ** 2, axis=-1)

    params = {"w": np.arange(1.0, 5.0)}
    with caplog.at_level(logging.DEBUG, logger="fastgc"):
        fastgc.check(cost, {"w": 2 * params["w"]}, params, engine="stacked", max_memory=64)
    assert any(r.getMessage().startswith("stacked engine: 2 points per call (max_memory 64 "
                                          "bytes, 4 parameters)") for r in caplog.records)


def test_a_check_without_debug_logging_emits_no_records(caplog):
    cost, grad, params = _quadratic(5)
    with caplog.at_level(logging.INFO, logger="fastgc"):
        fastgc.check(cost, grad, params)
    assert not [r for r in caplog.records if r.name.startswith("fastgc")]


FLOAT32_TEST = """
import numpy as np, fastgc

def test_float32():
    x = np.arange(1.0, 4.0, dtype=np.float32)
    fastgc.check(lambda x: float(np.sum(x.astype(np.float64) ** 2)), 2 * x, x)
"""


@pytest.mark.parametrize("flag, outcome", [
    (None, "passed"),
    ("error::fastgc.Float32Warning", "failed"),
    ("error::fastgc.FastgcWarning", "failed"),  # the base class catches every fastgc warning
    ("ignore::fastgc.Float32Warning", "passed"),
])
def test_pytest_W_filters_fastgc_warnings_by_category(pytester, monkeypatch, flag, outcome):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_f32=FLOAT32_TEST)
    args = ["-p", "no:cacheprovider"] + (["-W", flag] if flag else [])
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(**{outcome: 1}, warnings=1 if flag is None else 0)
    text = "\n".join(result.outlines)
    if outcome == "failed":
        assert "fastgc._errors.Float32Warning: params is float32: upcast" in text
    elif flag is None:
        assert "Float32Warning: params is float32: upcast" in text
