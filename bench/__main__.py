"""``python -m bench``: time fastgc against the exercise's loop and the installed peers.

Run from a checkout of the repository (the harness is not part of the installed package)::

    python -m bench --workloads exercise,medium --json results.json
    python -m bench --workers 1,2,4
"""

from __future__ import annotations

import argparse
import os
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time fastgc against the exercise's loop and the installed peers.",
    )
    parser.add_argument("--workloads", default="exercise,medium,mnist,large",
                        help="comma-separated: exercise, medium, mnist, large (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per row (median)")
    parser.add_argument("--full", action="store_true",
                        help="larger caps and subsets: fewer extrapolated rows, slower")
    parser.add_argument("--contenders", default=None,
                        help="comma-separated contender names (default: all installed)")
    parser.add_argument("--no-startup", action="store_true",
                        help="skip the import / JIT compile / first-check subprocess rows")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="OPENBLAS_NUM_THREADS for the timed process (default 1; 0 keeps "
                             "the BLAS default)")
    parser.add_argument("--workers", metavar="N,N,...", default=None,
                        help="instead of the table: time one check against workers= (e.g. "
                             "1,2,4) for a black-box numpy cost and the network engine")
    parser.add_argument("--json", metavar="FILE", help="write the raw numbers")
    parser.add_argument("--plot", metavar="FILE.png", help="log-log time vs parameters "
                        "(needs matplotlib)")
    return parser


def main(argv=None) -> int:
    """Run the benchmark table (or the workers scaling); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")
    if args.blas_threads > 0 and "numpy" not in sys.modules:
        for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads
            os.environ.setdefault(var, str(args.blas_threads))
    if args.workers is not None:
        try:
            counts = [int(w) for w in args.workers.split(",")]
        except ValueError:
            counts = [0]
        if min(counts) < 1:
            parser.error(f"--workers: positive ints separated by commas, not {args.workers!r}")
        from bench.harness.scaling import format_scaling, scaling_rows

        print(format_scaling(scaling_rows(counts, repeat=args.repeat)))
        return 0
    from bench.harness import CONTENDERS, WORKLOADS
    from bench.harness import main as bench_main

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


if __name__ == "__main__":
    sys.exit(main())
