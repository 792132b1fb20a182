"""The same checks on a terminal and in a pipe: the same bits.

On a terminal the progress bar is on by default; it must not change what a check computes. A
fresh interpreter runs every engine x mode x method combination (``terminal_checks.py``) with
its stdout/stderr on a pseudo-terminal (``pty``), once with the default progress setting and
once with the bar forced on, and once more piped; every result must be equal field for field
(numbers to the bit, nfev, verdicts, diagnoses; ``CheckResult.__eq__`` ignores only seconds).
"""

import os
import pickle
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "terminal_checks.py"


def _run(tmp_path, name, progress, terminal):
    out = tmp_path / f"{name}.pkl"
    cmd = [sys.executable, str(SCRIPT), str(out), progress]
    env = dict(os.environ, NO_COLOR="")
    if not terminal:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        screen = run.stderr
    else:
        master, slave = pty.openpty()
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        chunks = []

        def drain():  # a full pty buffer would block the child: read as it writes
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO once the child has closed the terminal
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        code = proc.wait(timeout=600)
        reader.join(timeout=10)
        os.close(master)
        screen = b"".join(chunks).decode(errors="replace")
        assert code == 0, screen[-2000:]
    with open(out, "rb") as f:
        data = pickle.load(f)
    assert data["stderr_isatty"] is terminal
    return data["results"], screen


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("terminal")
    return {
        "pipe": _run(tmp, "pipe", "none", terminal=False),
        "tty": _run(tmp, "tty", "none", terminal=True),
        "tty-bar": _run(tmp, "tty-bar", "true", terminal=True),
    }


def test_the_bar_is_drawn_on_the_terminal_only(runs):
    assert "fastgc [" in runs["tty-bar"][1]  # the forced bar really ran between chunks
    assert "fastgc [" not in runs["pipe"][1]


@pytest.mark.parametrize("where", ["tty", "tty-bar"])
def test_terminal_and_pipe_give_identical_results(runs, where):
    piped, on_terminal = runs["pipe"][0], runs[where][0]
    assert list(piped) == list(on_terminal)
    for combination, expected in piped.items():
        got = on_terminal[combination]
        assert got == expected, combination
        # spelled out, the list: verdicts, per-block differences and error estimates
        # to the last bit, and evaluation counts
        assert got.nfev == expected.nfev
        assert [(b.passed, b.difference, b.noise) for b in got.blocks.values()] == [
            (b.passed, b.difference, b.noise) for b in expected.blocks.values()]


def test_the_checks_found_the_wrong_entry(runs):
    # The comparison above is only worth something if the checks did real work: every
    # combination sees the 1% error (a failing block, diagnosed).
    for combination, result in runs["pipe"][0].items():
        assert not result.passed, combination
        assert any(not b.passed and b.diagnosis for b in result.blocks.values()), combination
