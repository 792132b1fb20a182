"""The ``fastgc`` command: ``fastgc demo`` (and ``python -m fastgc``).

Importing this module is cheap: numba and scipy are imported only by the subcommands.
"""

from __future__ import annotations

import argparse
import sys

from ._version import __version__


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
    return parser


def main(argv=None) -> int:
    """Entry point of the ``fastgc`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        if args.repeat < 1:
            parser.error(f"--repeat must be at least 1, not {args.repeat}")
        from ._demo import run_demo

        return run_demo(repeat=args.repeat)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover (argparse catches it)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
