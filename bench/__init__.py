"""fastgc's benchmark suite (pytest-benchmark files ``bench/test_*.py``), the comparison
harness behind ``python -m bench`` (``bench.harness``) and the scripts that generate the
README's numbers. It lives in the repository, not in the wheel."""
