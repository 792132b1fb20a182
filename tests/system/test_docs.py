"""The documentation covers the public API: every public name has a page in the API reference,
and its docstring passes numpydoc's validation.

A public name is one in ``fastgc.__all__`` (``__version__`` aside), a public function of a
public module (``fastgc.gc_utils``, ``fastgc.torch``, ``fastgc.jax`` where they import), and a
public method or property of a public class. The API reference lists them in its autosummary
directives (docs/reference/api.md); Sphinx generates one page per entry.

numpydoc's validation (``numpydoc.validate.validate``) runs every check it has; ENFORCED is the
subset that fails this test. Checks left out, and why:

- ES01 (no extended summary), SA01 (no See Also), EX01 (no Examples): a short method or an
  exception class is fully said by its summary; the front ends, which need examples, are held
  to EX01 separately (FRONT_ENDS below).
- PR01/PR02 on classes: the result classes are dataclasses that fastgc builds, documented
  under Attributes; users do not call their constructors.
- GL08 on dataclass fields: documented in the class's Attributes section.
- RT01 on properties, SS05 (summary starts with a verb in the infinitive): a property's
  summary names what it is; "Check ..." and "Checks ..." both read well.
- GL06/GL07 on modules: a public module's docstring lists its names in a "Public API"
  section (fastgc's convention, as ``fastgc/__init__.py`` does), which numpydoc does not know.
"""

import inspect
import re
import warnings
from pathlib import Path

import pytest

import fastgc

numpydoc_validate = pytest.importorskip("numpydoc.validate", reason="pip install '.[docs]'")

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "reference" / "api.md"

# Every numpydoc check but those named in the module docstring.
IGNORED = {"ES01", "SA01", "EX01", "SS05"}
ENFORCED = sorted(set(numpydoc_validate.ERROR_MSGS) - IGNORED)
CLASS_IGNORED = {"PR01", "PR02"}
PROPERTY_IGNORED = {"RT01"}
MODULE_IGNORED = {"GL06", "GL07"}
MODULES = ("gc_utils", "torch", "jax")
# Public functions whose docstrings must have a runnable Examples section.
FRONT_ENDS = ("check", "assert_gradients_close", "check_vjp", "check_jvp", "check_layer",
              "check_module", "check_model", "check_hvp", "check_hessian", "taylor_test",
              "check_scipy", "gradient_check", "gradient_check_n", "batched")


def _module(name):
    try:
        return getattr(fastgc, name)
    except ImportError as exc:  # torch or jax not installed, or fastgc.jax not written yet
        pytest.skip(f"fastgc.{name} does not import here: {exc}")


def _public_names():
    """``(dotted name, kind)`` for every public object: kind is function, class, module,
    method or property."""
    names = []
    for name in fastgc.__all__:
        if name == "__version__":
            continue
        if name in MODULES:
            names.append((f"fastgc.{name}", "module"))
            continue
        obj = getattr(fastgc, name)
        if inspect.isclass(obj):
            names.append((f"fastgc.{name}", "class"))
            for member, value in inspect.getmembers(obj):
                if member.startswith("_") or issubclass(obj, BaseException):
                    continue
                if isinstance(inspect.getattr_static(obj, member), property):
                    names.append((f"fastgc.{name}.{member}", "property"))
                elif inspect.isfunction(value):
                    names.append((f"fastgc.{name}.{member}", "method"))
        else:
            names.append((f"fastgc.{name}", "function"))
    return names


def _module_functions(module_name):
    module = _module(module_name)
    return [f"fastgc.{module_name}.{name}" for name in module.__all__]


def _api_entries():
    text = API.read_text()
    entries, current = set(), "fastgc"
    for block in re.findall(r"```\{eval-rst\}\n(.*?)```", text, re.S):
        m = re.search(r"\.\. currentmodule:: (\S+)", block)
        if m:
            current = m.group(1)
        if ".. autosummary::" not in block:
            continue
        for line in block.split(".. autosummary::", 1)[1].splitlines()[1:]:
            line = line.strip()
            if line and not line.startswith(":"):
                entries.add(f"{current}.{line}")
    return entries


@pytest.mark.parametrize("name", [n for n in fastgc.__all__ if n != "__version__"])
def test_every_public_name_has_a_page(name):
    if name in MODULES:
        _module(name)
    assert f"fastgc.{name}" in _api_entries(), (
        f"fastgc.{name} is public but docs/reference/api.md does not list it")


@pytest.mark.parametrize("module", MODULES)
def test_every_function_of_a_public_module_has_a_page(module):
    missing = sorted(set(_module_functions(module)) - _api_entries())
    assert not missing, f"docs/reference/api.md does not list {missing}"


def test_the_api_page_lists_no_private_or_missing_name():
    public = {n for n, _ in _public_names()} | {
        f for m in MODULES if m != "jax" or "fastgc.jax" in _api_entries()
        for f in _module_functions(m)}
    extra = sorted(_api_entries() - public)
    assert not extra, f"docs/reference/api.md lists names that are not public: {extra}"


def _errors(name, kind):
    if kind == "module":
        _module(name.removeprefix("fastgc."))
    with warnings.catch_warnings():
        # a module's "Public API" section (see MODULE_IGNORED) is also warned about
        warnings.filterwarnings("ignore", "Unknown section", UserWarning)
        result = numpydoc_validate.validate(name)
    ignored = set()
    if kind == "class":
        ignored |= CLASS_IGNORED
    if kind == "property":
        ignored |= PROPERTY_IGNORED
    if kind == "module":
        ignored |= MODULE_IGNORED
    errors = [(code, msg) for code, msg in result["errors"]
              if code in ENFORCED and code not in ignored]
    if name.removeprefix("fastgc.") in FRONT_ENDS and "EX01" in {c for c, _ in result["errors"]}:
        errors.append(("EX01", "a front end needs an Examples section"))
    return errors


@pytest.mark.parametrize("name, kind", _public_names(), ids=lambda v: v if "." in v else "")
def test_docstring_passes_numpydoc_validation(name, kind):
    errors = _errors(name, kind)
    assert not errors, f"{name}: " + "; ".join(f"{c} {m}" for c, m in errors)


@pytest.mark.parametrize("module", MODULES)
def test_module_functions_pass_numpydoc_validation(module):
    failures = {}
    for name in _module_functions(module):
        errors = _errors(name, "function")
        if errors:
            failures[name] = "; ".join(f"{c} {m}" for c, m in errors)
    assert not failures, failures


def test_readme_is_a_landing_page_whose_links_reach_pages():
    # the README is the site's front page (docs/index.md includes it): short, and every link
    # into docs/ names a page that exists (the build would fail on a broken one, later)
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 10, links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing
    index = (ROOT / "docs" / "index.md").read_text()
    assert "```{include} ../README.md" in index


def test_readme_report_is_what_check_prints():
    # the landing page's report is fastgc's real output on the exercise's buggy backprop
    # (the time aside), so a change of the report shows up on the front page too
    from fastgc._exercise.original import (
        backward_propagation_n,
        exercise_data,
        forward_propagation_n,
    )

    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"the report reads:\n\n```\n(.*?)```", readme, re.S).group(1).rstrip()
    X, Y, parameters = exercise_data()
    _, cache = forward_propagation_n(X, Y, parameters)
    result = fastgc.check(fastgc.MLP([4, 5, 3, 1], "relu", "bce"),
                          backward_propagation_n(X, Y, cache), parameters, X, Y)
    printed = result.report(color=False)
    untimed = re.compile(r"(cost evaluations), [^\n]*")
    assert untimed.sub(r"\1", shown) == untimed.sub(r"\1", printed)
