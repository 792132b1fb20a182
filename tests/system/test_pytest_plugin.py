"""The pytest plugin (``fastgc._pytest_plugin``, entry point ``pytest11: fastgc``): the
``gradcheck`` fixture, its node-id seed, the ``--fastgc-*`` options, and that loading it costs
nothing (every pytest run in the environment loads it).

Inner runs use pytester in a subprocess (an inline run forgets the modules it imported, and
numpy's and scipy's extension modules cannot be loaded twice in a process), with plugin
autoloading disabled and the plugin named with ``-p``, so they test this checkout's module
whatever is installed in the environment.
"""

import subprocess
import sys
import zlib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

# An inner test module: a cubic cost whose gradient is right or (WRONG) off in one entry; it
# prints what the fixture did so that the outer test can read it back.
INNER = """
import numpy as np

WRONG = {wrong}

def cost(x):
    return float(np.sum(x ** 3))

def grad(x):
    g = 3 * x ** 2
    if WRONG:
        g[4] += 1e-3
    return g

def test_cubic(gradcheck):
    x = gradcheck.rng.standard_normal(9)
    used = gradcheck.options(directions=2)
    print(f"SEED={{gradcheck.seed}} USED={{sorted(used.items())}}")
    result = gradcheck.assert_close(cost, grad, x, directions=2)
    print(f"MODE={{result.mode}} METHOD={{result.method}} NFEV={{result.nfev}}")

def test_other(gradcheck):
    print(f"SEED={{gradcheck.seed}}")
"""


def _isolate(monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


@pytest.fixture
def run(pytester, monkeypatch):
    _isolate(monkeypatch)

    def run(*options, wrong=False):
        pytester.makepyfile(test_inner=INNER.format(wrong=wrong))
        return pytester.runpytest_subprocess("-p", "fastgc._pytest_plugin", "-rP",
                                             "-p", "no:cacheprovider", *options)

    return run


def _printed(result, key):
    return [line.split(f"{key}=", 1)[1].split(" ")[0] for line in result.outlines
            if f"{key}=" in line]


def test_the_fixture_seed_is_the_crc32_of_the_node_id_and_stable(run):
    first = run()
    first.assert_outcomes(passed=2)
    seeds = _printed(first, "SEED")
    expected = [zlib.crc32(f"test_inner.py::{name}".encode()) for name in
                ("test_cubic", "test_other")]
    assert [int(s) for s in seeds] == expected
    assert seeds[0] != seeds[1]
    again = run()
    assert _printed(again, "SEED") == seeds  # the same in a new session
    salted = run("--fastgc-seed", "7")
    assert [int(s) for s in _printed(salted, "SEED")] == [s ^ 7 for s in expected]


def test_options_make_the_run_stricter_without_editing_the_test(run):
    plain = run()
    plain.assert_outcomes(passed=2)
    assert _printed(plain, "MODE") == ["directions"]
    assert _printed(plain, "METHOD") == ["two-step"]
    nightly = run("--fastgc-method", "richardson", "--fastgc-directions", "6")
    nightly.assert_outcomes(passed=2)
    line = next(x for x in nightly.outlines if "USED=" in x)
    # more directions; the method is for coordinate checks (directions extrapolate their own)
    assert "('directions', 6)" in line and "method" not in line
    full = run("--fastgc-full", "--fastgc-method", "richardson")
    full.assert_outcomes(passed=2)
    assert _printed(full, "MODE") == ["full"]
    assert _printed(full, "METHOD") == ["richardson"]
    assert "fastgc: " in "\n".join(nightly.outlines[:8])  # the header says what was changed


def test_a_failure_names_the_seed_that_reproduces_it_and_hides_fastgc_frames(run):
    failed = run("--fastgc-directions", "4", wrong=True)
    failed.assert_outcomes(passed=1, failed=1)
    text = "\n".join(failed.outlines)
    seed = zlib.crc32(b"test_inner.py::test_cubic")
    assert f"gradient check failed (reproduce with directions=4, seed={seed})" in text
    # the traceback ends at the test's line: the plugin's frames are hidden
    assert "result = gradcheck.assert_close(cost, grad, x, directions=2)" in text
    assert "_pytest_plugin.py" not in text
    assert "raise AssertionError" not in text
    full = run("--fastgc-full", wrong=True)
    assert "[4]" in "\n".join(full.outlines)  # a full check's report names the wrong entry


def test_assert_gradients_close_hides_its_frame(pytester, monkeypatch):
    _isolate(monkeypatch)
    pytester.makepyfile(test_assert="""
import numpy as np, fastgc

def test_wrong():
    x = np.arange(1.0, 4.0)
    fastgc.assert_gradients_close(lambda x: float(np.sum(x ** 3)), lambda x: 2 * x ** 2, x)
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = "\n".join(result.outlines)
    assert "fastgc.assert_gradients_close(lambda x" in text
    assert "_check.py" not in text and "raise AssertionError" not in text


def test_a_bad_option_value_is_a_usage_error(run):
    result = run("--fastgc-directions", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--fastgc-directions must be >= 1, not 0" in "\n".join(result.errlines)


def test_loading_the_plugin_imports_nothing_heavy():
    code = ("import sys, fastgc._pytest_plugin; "
            "print(sorted(m for m in ('numpy', 'numba', 'scipy', 'matplotlib', 'torch', 'jax') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_entry_point_is_declared_and_resolves():
    text = (ROOT / "pyproject.toml").read_text()
    assert '[project.entry-points.pytest11]\nfastgc = "fastgc._pytest_plugin"' in text
    from importlib.metadata import entry_points

    installed = [ep for ep in entry_points(group="pytest11") if ep.name == "fastgc"]
    if installed:  # an install of this checkout (CI's): the entry point names the module
        assert installed[0].value == "fastgc._pytest_plugin"

