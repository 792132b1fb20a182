"""Sphinx configuration for fastgc's documentation site.

Build it with ``pip install ".[docs]"`` and
``sphinx-build -W --keep-going -b html docs docs/_build/html`` (what ``.ci/run`` runs).
Pages are MyST Markdown; tutorials are MyST-NB text notebooks executed at build time.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's fastgc (and bench/, for the generated pages)

import fastgc  # noqa: E402

project = "fastgc"
author = "the fastgc authors"
copyright = "fastgc authors"  # noqa: A001
release = fastgc.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]

# -- sources --------------------------------------------------------------------------------------
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "jupyter_execute"]
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# -- cross-references: every reference must resolve (warnings are errors in CI) -------------------
nitpicky = True
# No intersphinx: CI reaches no documentation server. References into other projects are
# therefore not resolvable here; these (and only these) are ignored.
nitpick_ignore_regex = [
    ("py:.*", r"(numpy|np|scipy|torch|jax|numba|matplotlib|concurrent|distributed|loky)\..*"),
]

# -- API reference --------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False   # a module's page lists its __all__
templates_path = ["_templates"]
autodoc_default_options = {"members": True}
autodoc_typehints = "none"   # the numpydoc sections carry the types
numpydoc_show_class_members = False   # autosummary tables would duplicate the member list
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# numpydoc's own validation runs in tests/system/test_docs.py (the checks it enforces are listed
# there); during the build it would only repeat them.
numpydoc_validation_checks = set()

# -- executed tutorials ---------------------------------------------------------------------------
nb_execution_mode = os.environ.get("FASTGC_DOCS_EXECUTE", "force")
nb_execution_timeout = 120
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# Pages with wide code, reports or tables: they get the on-page contents' width.
WIDE_PAGES = ["tutorials/exercise", "tutorials/numpy-layers", "tutorials/model",
             "tutorials/torch-op", "tutorials/scipy-newton-cg", "tutorials/taylor",
             "howto/notebooks-and-plots", "howto/kinks", "howto/large-models",
             "explanation/benchmarks"]

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "fastgc"
html_static_path = ["_static"]
html_css_files = ["fastgc.css"]
# Command-line options stay "--repeat", not an en dash; quotes and ellipses are still curled.
smartquotes_action = "qe"
# A plain ``` block (a report, a folder tree) is text, not Python.
highlight_language = "none"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": {"**": ["page-toc"], **{page: [] for page in WIDE_PAGES}},
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"index": []}
html_show_sourcelink = False

# docs/guide/ is filled by the front ends' own pages; an empty glob there is not an error.
suppress_warnings = ["toc.empty_glob"]
