"""The documentation's measured numbers are bench/results.json's, not typed.

The benchmarks page's table, machine line, evaluation counts, targets, start-up, 16-core and CNN
runs, the network engine page's accuracy table and the directions page's seed sweep are
generated blocks (``<!-- bench:NAME -->``) written by ``python bench/readme_numbers.py --write``
into the pages of ``GENERATED_PAGES``; this test regenerates them from the JSON and compares.
Outside the blocks, the benchmarks page may not quote a time or a speed-up, and the README
(the site's front page) holds no generated block.
"""

import json
import re
from pathlib import Path

import pytest

from bench.harness.report import GENERATED_PAGES, README_BLOCKS, readme_blocks, update_readme

ROOT = Path(__file__).resolve().parents[2]
PAGES = {page: (ROOT / page).read_text() for page in GENERATED_PAGES}
DATA = json.loads((ROOT / "bench" / "results.json").read_text())
BENCHMARKS = PAGES["docs/explanation/benchmarks.md"]


def _blocks(name):
    pattern = rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->"
    return [m.group(1).rstrip("\n") for text in PAGES.values()
            for m in re.finditer(pattern, text, re.S)]


@pytest.mark.parametrize("name", list(README_BLOCKS))
def test_block_is_generated_from_results_json(name):
    found = _blocks(name)
    assert len(found) == 1, f"block {name!r} is in {len(found)} of {GENERATED_PAGES}, not one"
    assert found[0] == readme_blocks(DATA)[name]


@pytest.mark.parametrize("page", GENERATED_PAGES)
def test_page_is_up_to_date_with_results_json(page):
    assert update_readme(PAGES[page], DATA) == PAGES[page]


def test_readme_quotes_no_generated_block():
    assert "<!-- bench:" not in (ROOT / "README.md").read_text()


def test_benchmarks_page_quotes_no_time_outside_the_generated_blocks():
    prose = re.sub(r"<!-- bench:(\S+) -->.*?<!-- /bench:\1 -->", "", BENCHMARKS, flags=re.S)
    times = re.findall(r"\b\d[\d.,]*\s?(?:ms|us|s|h|min)\b", prose)
    speedups = re.findall(r"\b\d[\d.,]*x\b", prose)
    assert not times and not speedups, (times, speedups)


def test_results_json_states_machine_and_spread():
    assert DATA["machine"]["cpu"] and DATA["machine"]["cores"]
    assert "shared" in DATA.get("note", "") or "load" in DATA.get("note", "")
    timed = [r for r in DATA["rows"] if r["status"] == "ok"]
    assert all(len(r["times"]) >= 1 for r in timed)
    assert ("(1 call)" in _blocks("performance-table")[0]
            or all(len(r["times"]) > 1 for r in timed))
    assert len(DATA["cold_demo"]["seconds"]) >= 3


def test_accuracy_rows_show_the_network_engine_below_the_loop():
    # the claim the network engine page makes from the table: same cost, same step, the
    # network engine's difference carries less rounding than the loop's
    rows = DATA["accuracy"]["rows"]
    assert rows["engine='network'"][0] < rows["engine='loop'"][0]
