"""The ``fastgc`` command: ``fastgc demo``, ``fastgc bench`` (and ``python -m fastgc``).

``fastgc bench`` runs the benchmark suite of a repository checkout (``python -m bench``).

Importing this module is cheap: numba and scipy are imported only by the subcommands.
"""

from __future__ import annotations

import argparse
import sys

from fastgc._version import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastgc",
        description="Check hand-written gradients against finite differences of the cost.",
    )
    parser.add_argument("--version", action="version", version=f"fastgc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the gradient-checking exercise end to end")
    demo.add_argument("--repeat", type=int, default=5,
                      help="timing repetitions for the loop-vs-fastgc comparison (default 5)")
    bench = sub.add_parser(
        "bench", help="run the benchmark suite of a fastgc checkout (python -m bench)",
        add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``fastgc`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # every option after it is the suite's (python -m bench)
        return _bench(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        if args.repeat < 1:
            parser.error(f"--repeat must be at least 1, not {args.repeat}")
        from fastgc._exercise.demo import run_demo

        return run_demo(repeat=args.repeat)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover (argparse catches it)
    return 2


def _bench(bench_args) -> int:
    # The benchmark harness is not installed with fastgc: it lives in the repository's bench/.
    # Run from a checkout, this hands over to it; elsewhere it says how to get it.
    import os
    import pathlib
    import subprocess

    checkout = pathlib.Path.cwd()
    if not (checkout / "bench" / "__main__.py").is_file():
        print("fastgc bench: the benchmark suite is not part of the installed package. Clone "
              "the fastgc repository and run `python -m bench` (or `fastgc bench`) from its "
              "root; `pip install -e '.[bench]'` installs the peers it compares against.",
              file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(checkout), os.environ.get("PYTHONPATH")])))
    return subprocess.call([sys.executable, "-m", "bench", *bench_args], cwd=checkout, env=env)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
