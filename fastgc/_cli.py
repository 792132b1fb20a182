"""The ``fastgc`` command: ``fastgc demo``, ``fastgc bench`` (and ``python -m fastgc``).

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
    bench = sub.add_parser("bench", help="time fastgc against the exercise's loop and peers")
    bench.add_argument("--workloads", default="exercise,medium,mnist,large",
                       help="comma-separated: exercise, medium, mnist, large (default: all)")
    bench.add_argument("--repeat", type=int, default=3, help="timed calls per row (median)")
    bench.add_argument("--full", action="store_true",
                       help="larger caps and subsets: fewer extrapolated rows, slower")
    bench.add_argument("--contenders", default=None,
                       help="comma-separated contender names (default: all installed)")
    bench.add_argument("--no-startup", action="store_true",
                       help="skip the import / JIT compile / first-check subprocess rows")
    bench.add_argument("--blas-threads", type=int, default=1,
                       help="OPENBLAS_NUM_THREADS for the timed process (default 1; 0 keeps "
                            "the BLAS default)")
    bench.add_argument("--workers", metavar="N,N,...", default=None,
                       help="instead of the table: time one check against workers= (e.g. "
                            "1,2,4) for a black-box numpy cost and the network engine")
    bench.add_argument("--json", metavar="FILE", help="write the raw numbers")
    bench.add_argument("--plot", metavar="FILE.png", help="log-log time vs parameters "
                       "(needs matplotlib)")
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
    if args.command == "bench":
        if args.repeat < 1:
            parser.error(f"--repeat must be at least 1, not {args.repeat}")
        if args.blas_threads > 0 and "numpy" not in sys.modules:
            import os  # before numpy loads: OpenBLAS reads it once

            for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, str(args.blas_threads))
        if args.workers is not None:
            try:
                counts = [int(w) for w in args.workers.split(",")]
            except ValueError:
                counts = [0]
            if min(counts) < 1:
                parser.error(f"--workers: positive ints separated by commas, not "
                             f"{args.workers!r}")
            from ._bench.scaling import format_scaling, scaling_rows

            print(format_scaling(scaling_rows(counts, repeat=args.repeat)))
            return 0
        from ._bench import CONTENDERS, WORKLOADS
        from ._bench import main as bench_main

        workloads = args.workloads.split(",")
        contenders = args.contenders and args.contenders.split(",")
        for option, asked, known in (("--workloads", workloads, [w.name for w in WORKLOADS]),
                                     ("--contenders", contenders or [],
                                      [c.name for c in CONTENDERS])):
            unknown = [name for name in asked if name not in known]
            if unknown:
                parser.error(f"{option}: unknown {', '.join(unknown)}; choose from "
                             f"{', '.join(known)}")
        return bench_main(workloads=workloads, repeat=args.repeat, full=args.full,
                          json_path=args.json, plot_path=args.plot, contenders=contenders,
                          startup=not args.no_startup)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover (argparse catches it)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
