"""The README's measured numbers are bench/results.json's, not typed.

The Performance section's table, machine line, evaluation counts, targets and start-up, and the
Architecture section's accuracy table, are generated blocks (``<!-- bench:NAME -->``) written
by ``python bench/readme_numbers.py --write``; this test regenerates them from the JSON and
compares. Outside the blocks, the Performance section may not quote a time or a speed-up.
"""

import json
import re
from pathlib import Path

import pytest

from bench.harness.report import README_BLOCKS, readme_blocks, update_readme

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DATA = json.loads((ROOT / "bench" / "results.json").read_text())


def _block(name):
    m = re.search(rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->", README, re.S)
    assert m, f"README has no generated block {name!r}"
    return m.group(1).rstrip("\n")


@pytest.mark.parametrize("name", list(README_BLOCKS))
def test_readme_block_is_generated_from_results_json(name):
    assert _block(name) == readme_blocks(DATA)[name]


def test_readme_is_up_to_date_with_results_json():
    assert update_readme(README, DATA) == README


def test_performance_section_quotes_no_time_outside_the_generated_blocks():
    section = README.split("## Performance", 1)[1].split("\n## ", 1)[0]
    prose = re.sub(r"<!-- bench:(\S+) -->.*?<!-- /bench:\1 -->", "", section, flags=re.S)
    times = re.findall(r"\b\d[\d.,]*\s?(?:ms|us|s|h|min)\b", prose)
    speedups = re.findall(r"\b\d[\d.,]*x\b", prose)
    assert not times and not speedups, (times, speedups)


def test_results_json_states_machine_and_spread():
    assert DATA["machine"]["cpu"] and DATA["machine"]["cores"]
    assert "shared" in DATA.get("note", "") or "load" in DATA.get("note", "")
    timed = [r for r in DATA["rows"] if r["status"] == "ok"]
    assert all(len(r["times"]) >= 1 for r in timed)
    assert "(1 call)" in _block("performance-table") or all(len(r["times"]) > 1 for r in timed)
    assert len(DATA["cold_demo"]["seconds"]) >= 3


def test_accuracy_rows_show_the_network_engine_below_the_loop():
    # the claim the Architecture section makes from the table: same cost, same step, the
    # network engine's difference carries less rounding than the loop's
    rows = DATA["accuracy"]["rows"]
    assert rows["engine='network'"][0] < rows["engine='loop'"][0]
