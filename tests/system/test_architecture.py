"""The folders are the architecture: checks on the package's import graph and on what ships.

The import graph is read from the source with ``ast`` (every ``import`` and ``from ... import``,
function-local ones included), not by importing fastgc, so a cycle hidden in a function body is
found too.
"""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "fastgc"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict:
    """``{module: set of fastgc modules it imports}``: ``from a import b`` counts as an import
    of ``a.b`` when that is a module, else of ``a``."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules
                           else source for alias in node.names]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def _find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_reader_sees_imports_of_every_form():
    graph = import_graph()
    # top-level, from-a-package-import-a-module, and function-local imports are all read
    assert "fastgc._core.estimators" in graph["fastgc._core.schemes"]
    assert "fastgc._network.state" in graph["fastgc._network"]  # from fastgc._network import state
    assert "fastgc._check" in graph["fastgc._exercise.checks"]  # inside gradient_check_n
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_has_no_cycle():
    assert _find_cycle(import_graph()) is None


def test_the_pipeline_imports_only_itself_and_the_errors():
    graph = import_graph()
    core = [m for m in graph if m.startswith("fastgc._core")]
    assert len(core) > 10
    for module in core:
        outside = {d for d in graph[module]
                   if not (d.startswith("fastgc._core") or d == "fastgc._errors")}
        assert not outside, f"{module} imports {sorted(outside)}"


def test_the_errors_module_is_the_bottom_of_the_graph():
    assert import_graph()["fastgc._errors"] == set()


def test_engines_do_not_import_front_ends():
    graph = import_graph()
    front_ends = {"fastgc._check", "fastgc._layers", "fastgc._model", "fastgc._second_order",
                  "fastgc._taylor", "fastgc._scipy_check", "fastgc.torch", "fastgc.jax"}
    for module, deps in graph.items():
        if module.startswith(("fastgc._engines", "fastgc._network", "fastgc._core")):
            assert not deps & front_ends, f"{module} imports {sorted(deps & front_ends)}"


def test_no_benchmark_tooling_in_the_package():
    assert not (PACKAGE / "_bench").exists()
    for path in PACKAGE.rglob("*.py"):
        assert "bench" not in path.relative_to(PACKAGE).parts[0], path


@pytest.mark.skipif(subprocess.run([sys.executable, "-c", "import setuptools"],
                                   capture_output=True).returncode != 0,
                    reason="building the wheel offline needs setuptools in this environment")
def test_the_wheel_holds_the_package_only(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    (wheel,) = tmp_path.glob("fastgc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"fastgc", next(t for t in top if t.endswith(".dist-info"))}, sorted(top)
    assert not [n for n in names if "bench" in n], [n for n in names if "bench" in n]
    assert "fastgc/_core/schemes.py" in names and "fastgc/py.typed" in names
