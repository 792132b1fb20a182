"""``fastgc demo``: the exercise end to end, every verdict as expected."""

import subprocess
import sys

from exercise_cells import (
    backward_propagation_n,
    exercise_setup,
    forward_propagation_n,
    gradient_check_n,
)


def _exercise_differences():
    """The exercise's metric for its buggy and its fixed backprop, computed here, on this
    machine, by the exercise's own loop (``exercise_cells``, no fastgc): the last bit depends
    on the machine's BLAS kernels, so no literal can be the reference."""
    X, Y, parameters = exercise_setup()
    _, cache = forward_propagation_n(X, Y, parameters)
    return [float(gradient_check_n(parameters, backward_propagation_n(X, Y, cache, fixed), X, Y,
                                   1e-7))
            for fixed in (False, True)]


def test_demo_runs_the_exercise_and_exits_0():
    run = subprocess.run([sys.executable, "-m", "fastgc", "demo", "--repeat", "1"],
                         capture_output=True, text=True, timeout=300)
    out = run.stdout
    assert run.returncode == 0, run.stderr
    # the 1-D check, J = theta * x at x=2, theta=4: the relative difference of the exercise's
    # quotient (scalar IEEE arithmetic, the same on every machine), computed here
    approx = ((4 + 1e-7) * 2 - (4 - 1e-7) * 2) / (2 * 1e-7)
    one_d = abs(2 - approx) / (2 + abs(approx))
    assert f"relative difference ||g - a|| / (||g|| + ||a||) = {one_d:.3e}\n" in out
    assert "db1 is 4 x the numeric gradient" in out
    assert "dW2 is 2 x the numeric gradient" in out
    # the exercise's numbers, to the bit: the demo prints repr() of the exercise's metric
    for reference in _exercise_differences():
        assert f"the exercise's own metric (eps 1e-7, loop): difference = {reference!r}\n" in out
    assert "fastgc check passed" in out
    assert "the exercise's loop (2P forward passes)" in out
    assert "All verdicts as expected." in out
    assert "\033[" not in out  # no colour when stdout is not a terminal
