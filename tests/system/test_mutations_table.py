"""bench/mutations.py's table is well formed: every mutation applies to today's code (its text
occurs exactly once in its file, and the mutated text differs), names guard tests that exist,
and the table spans the pipeline. The mutation run itself (``python bench/mutations.py``, a few
minutes) is not part of the default test run."""

import ast
from pathlib import Path

import pytest

from bench import mutations

ROOT = Path(mutations.ROOT)


@pytest.mark.parametrize("m", mutations.MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_applies_once_and_names_its_guards(m):
    text = (ROOT / m.file).read_text()
    assert text.count(m.old) == 1, (f"{m.name}: its text occurs {text.count(m.old)} times in "
                                    f"{m.file}; update the mutation in bench/mutations.py")
    assert m.new != m.old
    mutated = text.replace(m.old, m.new)
    ast.parse(mutated)  # a plausible bug, not a syntax break
    assert m.tests, m.name
    for test in m.tests:
        path, _, node = test.partition("::")
        assert (ROOT / path).is_file(), test
        if node:
            assert f"def {node.split('[')[0]}(" in (ROOT / path).read_text(), test


def test_the_table_spans_the_pipeline():
    names = [m.name for m in mutations.MUTATIONS]
    assert len(names) == len(set(names))
    assert len(names) >= 20
    assert len({m.file for m in mutations.MUTATIONS}) >= 8
    for pin in mutations.CONSTANT_PINS + mutations.KNOWN_FAILING:
        path, _, node = pin.partition("::")
        assert f"def {node}(" in (ROOT / path).read_text(), pin
