"""fastgc's pytest plugin (the ``pytest11`` entry point ``fastgc``): a ``gradcheck`` fixture and
command-line options that make a run stricter without editing its tests.

pytest loads every installed plugin in every run of the environment, so this module imports
nothing but the standard library and pytest at import time: numpy and the checks are imported
when a test first uses the fixture.

Options (in the ``fastgc`` group of ``pytest --help``):

``--fastgc-method=M``
    The difference method of every ``gradcheck`` call of coordinates that does not name one
    (``"richardson"``: an error estimate from a Richardson ladder, tighter thresholds); calls
    along directions keep their own extrapolation.
``--fastgc-directions=N``
    Calls that check along random directions use at least ``N`` of them.
``--fastgc-full``
    Calls that check a subset of coordinates or along directions check every coordinate.
``--fastgc-seed=S``
    Mixed into every test's seed (default 0: the seed is the test's own): a nightly job that
    passes the date explores new points, and a failure names the seed that reproduces it.
"""

from __future__ import annotations

import zlib

import pytest

_GROUP = "fastgc"


def pytest_addoption(parser):
    group = parser.getgroup(_GROUP, "fastgc gradient checks (the gradcheck fixture)")
    group.addoption("--fastgc-method", default=None, metavar="METHOD",
                    help="difference method of gradcheck calls that name none "
                         "(central, richardson, complex, ...)")
    group.addoption("--fastgc-directions", default=None, type=int, metavar="N",
                    help="gradcheck calls along random directions use at least N of them")
    group.addoption("--fastgc-full", action="store_true", default=False,
                    help="gradcheck calls with subset= or directions= check every coordinate")
    group.addoption("--fastgc-seed", default=0, type=int, metavar="S",
                    help="mixed into every test's gradcheck seed (default 0)")


def pytest_report_header(config):
    settings = _settings(config)
    if not any(v for k, v in settings.items() if k != "seed"):
        return None
    shown = ", ".join(f"{k}={v}" for k, v in settings.items() if v)
    return f"fastgc: {shown}"


def _settings(config) -> dict:
    directions = config.getoption("--fastgc-directions")
    if directions is not None and directions < 1:
        raise pytest.UsageError(f"--fastgc-directions must be >= 1, not {directions}")
    return {"method": config.getoption("--fastgc-method"), "directions": directions,
            "full": bool(config.getoption("--fastgc-full")),
            "seed": int(config.getoption("--fastgc-seed"))}


def node_seed(nodeid: str, salt: int = 0) -> int:
    """A seed from a test's node id: the same in every run and on every machine (CRC-32 of the
    UTF-8 id, unlike ``hash``, which Python salts per process), different between tests."""
    return (zlib.crc32(nodeid.encode("utf-8")) ^ (int(salt) & 0xFFFFFFFF)) & 0xFFFFFFFF


class GradCheck:
    """The ``gradcheck`` fixture: :func:`fastgc.check` and :func:`fastgc.assert_gradients_close`
    with this test's seed and the run's command-line settings.

    Attributes
    ----------
    seed : int
        The test's seed: CRC-32 of its node id, mixed with ``--fastgc-seed``. Used for every
        call that passes no ``seed=``.
    nodeid : str
        The test's node id.
    settings : dict
        ``method``, ``directions``, ``full``, ``seed`` from the command line.

    A call's own keyword arguments win over ``--fastgc-method`` (a test that names a method
    knows why), which applies to checks of coordinates only (directions mode has its own
    extrapolation); ``--fastgc-directions`` only raises a call's ``directions=``, and
    ``--fastgc-full`` turns a call's ``subset=`` or ``directions=`` into a full check.
    """

    def __init__(self, nodeid: str, settings: dict):
        self.nodeid = nodeid
        self.settings = dict(settings)
        self.seed = node_seed(nodeid, settings.get("seed", 0))

    def __repr__(self) -> str:
        return f"<gradcheck seed={self.seed} for {self.nodeid}>"

    @property
    def rng(self):
        """A fresh ``numpy.random.Generator`` seeded with :attr:`seed` (for the test's data)."""
        import numpy as np

        return np.random.default_rng(self.seed)

    def options(self, **options) -> dict:
        """The keyword arguments a call with ``options`` is made with."""
        out = dict(options)
        out.setdefault("seed", self.seed)
        if self.settings.get("full"):
            out.pop("subset", None)
            out.pop("directions", None)
        elif self.settings.get("directions") and out.get("directions") is not None:
            out["directions"] = max(int(out["directions"]), int(self.settings["directions"]))
        # directions mode runs its own extrapolation: the method is for coordinate checks
        if (self.settings.get("method") and "method" not in options
                and out.get("directions") is None):
            out["method"] = self.settings["method"]
        return out

    def check(self, cost, grad, params, *args, **options):
        """:func:`fastgc.check` with this test's seed and the run's settings."""
        from fastgc._check import check

        return check(cost, grad, params, *args, **self.options(**options))

    def assert_close(self, cost, grad, params, *args, **options):
        """:func:`fastgc.assert_gradients_close` with this test's seed and the run's settings;
        the failure message names the seed and options that reproduce it."""
        __tracebackhide__ = True  # the failure points at the test's line, not this one
        from fastgc._check import check

        used = self.options(**options)
        result = check(cost, grad, params, *args, **used)
        if not result.passed:
            shown = ", ".join(f"{k}={v!r}" for k, v in sorted(used.items())
                              if k in ("seed", "method", "subset", "directions"))
            raise AssertionError(f"gradient check failed (reproduce with {shown})\n"
                                 + result.report(color=False))
        return result


@pytest.fixture
def gradcheck(request) -> GradCheck:
    """fastgc's checks seeded from this test's node id, with the run's ``--fastgc-*``
    settings (see :class:`GradCheck`)."""
    return GradCheck(request.node.nodeid, _settings(request.config))
