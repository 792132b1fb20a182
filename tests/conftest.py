"""Hypothesis profiles (no global seeding: every test seeds its own generators).

``ci`` (the default) is small and derandomized, so CI runs the same examples every time;
``dev`` digs deeper. Pick one with ``FASTGC_HYPOTHESIS_PROFILE=dev pytest``.
"""

import os
import pathlib
import sys

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("FASTGC_HYPOTHESIS_PROFILE", "ci"))

# The benchmark harness (bench/) is not installed with fastgc; tests that check it import it
# from the checkout. Appended, not prepended: fastgc itself still comes from the installed
# package, as a user has it.
sys.path.append(str(pathlib.Path(__file__).resolve().parents[1]))
