"""``fastgc demo``: the gradient-checking exercise end to end, then the same check by fastgc."""

from __future__ import annotations

import time

import numpy as np

from fastgc._exercise import original as ref


def _median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_demo(repeat: int = 5) -> int:
    """Print the demo; returns 0 when every step gave the expected verdict, 1 otherwise."""
    import fastgc

    ok = True
    print("1. The 1-D check, J(theta) = theta * x at x=2, theta=4")
    difference = fastgc.gradient_check(2, 4)
    print(f"   relative difference ||g - a|| / (||g|| + ||a||) = {difference:.3e}")
    print("   (the exercise's cell prints -2.919e-10: it divides by sum(g^2) - sum(a^2), which is"
          " not the relative difference)\n")
    ok &= difference < 2e-7

    X, Y, parameters = ref.exercise_data()
    cost, cache = ref.forward_propagation_n(X, Y, parameters)
    buggy = ref.backward_propagation_n(X, Y, cache)
    fixed = ref.backward_propagation_n(X, Y, cache, fixed=True)
    net = fastgc.MLP([4, 5, 3, 1], "relu", "bce")

    print("2. The exercise's network (LINEAR->RELU->LINEAR->RELU->LINEAR->SIGMOID, 47 "
          "parameters)\n   with its buggy backprop, checked by fastgc.check(net, grads, params, "
          "X, Y):")
    result = fastgc.check(net, buggy, parameters, X, Y)
    print(_indent(result.report()))
    if result.seconds > 1:
        print("   (that time includes compiling fastgc's numba kernels: once per machine, then "
              "they load from cache)")
    ok &= not result.passed
    ok &= not result.blocks["W2"].passed and not result.blocks["b1"].passed
    exercise = fastgc.gradient_check_n(parameters, buggy, X, Y)
    print(f"   the exercise's own metric (eps 1e-7, loop): difference = {exercise!r}\n")

    print("3. The fixed backprop (dW2 without * 2, db1 with 1./m):")
    result = fastgc.check(net, fixed, parameters, X, Y)
    print(_indent(result.report()))
    ok &= result.passed
    exercise = fastgc.gradient_check_n(parameters, fixed, X, Y)
    print(f"   the exercise's own metric (eps 1e-7, loop): difference = {exercise!r}\n")

    print(f"4. Time of one full check of the exercise network (median of {repeat}):")
    rows = [
        ("the exercise's loop (2P forward passes)",
         lambda: ref.gradient_check_n_loop(parameters, fixed, X, Y)),
        ("fastgc, loop engine",
         lambda: fastgc.check(net, fixed, parameters, X, Y, engine="loop")),
        ("fastgc, network engine",
         lambda: fastgc.check(net, fixed, parameters, X, Y, engine="network")),
    ]
    rows[2][1]()  # compile (or load from cache) outside the timing
    baseline = None
    for label, fn in rows:
        seconds = _median_seconds(fn, repeat)
        baseline = baseline or seconds
        print(f"   {label:<42} {seconds * 1e3:8.3f} ms   x{baseline / seconds:6.1f}")
    print("\nAll verdicts as expected." if ok else "\nUNEXPECTED VERDICT: see above.")
    return 0 if ok else 1


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
