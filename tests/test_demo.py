"""``fastgc demo``: the exercise end to end, every verdict as expected."""

import subprocess
import sys


def test_demo_runs_the_exercise_and_exits_0():
    run = subprocess.run([sys.executable, "-m", "fastgc", "demo", "--repeat", "1"],
                         capture_output=True, text=True, timeout=300)
    out = run.stdout
    assert run.returncode == 0, run.stderr
    assert "relative difference ||g - a|| / (||g|| + ||a||) = 2.919e-10" in out
    assert "db1 is 4 x the numeric gradient" in out
    assert "dW2 is 2 x the numeric gradient" in out
    assert "difference = 0.2850931567761623" in out  # the exercise's numbers, to the bit
    assert "difference = 1.1890913024229996e-07" in out
    assert "fastgc check passed" in out
    assert "the exercise's loop (2P forward passes)" in out
    assert "All verdicts as expected." in out
    assert "\033[" not in out  # no colour when stdout is not a terminal
