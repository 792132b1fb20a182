"""The HTML repr in a real Jupyter kernel: a notebook executed by nbclient (an ipykernel
started for it, as JupyterLab would), whose output's ``text/html`` is parsed back.

What the kernel sends is what a notebook shows: this catches a repr that IPython does not pick
up (a ``_repr_html_`` shadowed, a mimebundle with the wrong keys) or that only works in the
test process. One kernel, two cells: a few seconds.
"""

from pathlib import Path

import pytest
from display_cases import Page

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

SETUP = f"""\
import sys
sys.path[:0] = [{str(ROOT)!r}, {str(HERE)!r}]  # this checkout's fastgc and the test cases
import fastgc, display_cases
fastgc.__file__
"""
SHOW = """\
result, _ = display_cases.failing_check()
result
"""


def test_a_failing_check_displays_as_escaped_html_in_a_jupyter_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(SHOW)]
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    imported = nb.cells[0].outputs[0]["data"]["text/plain"]
    assert str(ROOT / "fastgc") in imported  # the kernel ran this checkout's fastgc
    (out,) = nb.cells[1].outputs
    assert out["output_type"] == "execute_result"
    data = out["data"]
    page = Page(data["text/html"])  # parses, tags nest
    assert "script" not in page.tags  # the block named "<script>..." arrived escaped
    assert "&lt;script&gt;" in data["text/html"]
    opened = [summary for is_open, summary, _ in page.details if is_open]
    # the failing blocks' diagnoses, first and open
    assert "is 2 x the numeric gradient" in opened[0]
    assert "1 of 2 entries disagree: c[1]" in opened[1]
    # text/plain is the report (what an untrusted or text-only front end shows)
    assert data["text/plain"].startswith("fastgc check FAILED: 2 of 3 blocks fail")
    assert "CheckResult(" not in data["text/plain"]
