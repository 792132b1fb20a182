"""The ``fastgc`` command and the weight of ``import fastgc``.

``fastgc demo`` is tested elsewhere; here: ``--help``, ``--version``, that neither the command
nor ``import fastgc`` loads numba or scipy, and that CI runs the README's test command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastgc
from fastgc._cli import main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numba", "scipy")


def _run(*argv, code=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, *(["-c", code] if code is not None else argv)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_module_help():
    proc = _run("-m", "fastgc", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: fastgc")
    assert "demo" in proc.stdout and "--version" in proc.stdout


def test_module_version():
    proc = _run("-m", "fastgc", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"fastgc {fastgc.__version__}"


def test_version_is_the_packages():
    from fastgc._version import __version__

    assert fastgc.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", __version__)


def test_main_version_exits_zero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastgc {fastgc.__version__}"


def test_main_without_command_prints_help(capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("usage: fastgc")


def test_main_unknown_command_exits_two(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


_LOADED = (
    "import sys\n"
    "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'scipy'})))\n"
)


def test_import_fastgc_is_light():
    proc = _run(code="import fastgc\nfastgc.__version__\ndir(fastgc)\n" + _LOADED)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"import fastgc loaded {proc.stdout.strip()}"


def test_help_is_light():
    code = ("from fastgc._cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "import fastgc\nprint('-' * 3)\n" + _LOADED)
    proc = _run(code=code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rsplit("---", 1)[1].strip() == ""


def _quickstart_commands(readme: str) -> list[str]:
    """The command lines of the fenced blocks in the README's Quickstart section."""
    match = re.search(r"^#+\s*Quickstart\s*$(.*?)(?=^#+\s|\Z)", readme,
                      flags=re.MULTILINE | re.DOTALL | re.IGNORECASE)
    assert match, "README.md has no Quickstart section"
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", match.group(1), flags=re.MULTILINE | re.DOTALL)
    lines = [line.strip().removeprefix("$ ") for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.skipif(not (ROOT / "README.md").exists() or not (ROOT / ".ci" / "run").exists(),
                    reason="README.md or .ci/run does not exist yet")
def test_ci_runs_the_readmes_test_command():
    commands = _quickstart_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) >= 2, commands
    assert commands[1] == 'pip install ".[test]" && pytest'
    ci_lines = [line.strip() for line in
                (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert commands[1] in ci_lines, ".ci/run does not run the README's test command verbatim"
