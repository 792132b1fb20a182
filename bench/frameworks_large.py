"""The issue's large case, once per process: a hand-written torch LayerNorm on (32, 256)
float64, right and with a 1e-3 error on one entry, checked by fastgc.torch.check and by
torch.autograd.gradcheck (slow mode). Each checker runs in its own process, so its peak
resident memory (``ru_maxrss``) is its own; the time is the wall time of the
check call (imports done before it).

Usage: ``python bench/frameworks_large.py`` (torch needed; about a minute, most of it
gradcheck's). Prints one line per run and a ratio table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {ops!r})
import torch
import torch_ops
checker, bug, rows, cols = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
fn = torch_ops.make_layernorm(None if bug == "none" else bug).apply
x = torch.randn(rows, cols, dtype=torch.float64, requires_grad=True)
g = (1 + 0.1 * torch.randn(cols, dtype=torch.float64)).requires_grad_()
b = (0.1 * torch.randn(cols, dtype=torch.float64)).requires_grad_()
import fastgc.torch as ft
from torch.autograd.gradcheck import GradcheckError, gradcheck
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if checker == "fastgc":
    passed = bool(ft.check(fn, x, g, b).passed)
else:
    try:
        passed = bool(gradcheck(fn, (x, g, b)))
    except GradcheckError:
        passed = False
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(checker=checker, bug=bug, passed=passed, seconds=seconds,
                      peak_mib=peak / 1024, above_start_mib=(peak - base) / 1024)))
"""


def main(rows=32, cols=256):
    ops = str(Path(__file__).resolve().parents[1] / "tests" / "frontends")
    out = []
    for bug in ("none", "entry 1e-3"):
        for checker in ("fastgc", "gradcheck"):
            run = subprocess.run([sys.executable, "-c", CHILD.format(ops=ops), checker, bug,
                                  str(rows), str(cols)], capture_output=True, text=True)
            if run.returncode:
                sys.exit(run.stderr)
            out.append(json.loads(run.stdout.splitlines()[-1]))
            print(out[-1])
    print(f"\nLayerNorm ({rows}, {cols}) float64, one run each:")
    print("bug          checker     verdict  seconds  peak MiB  above start MiB")
    for r in out:
        print(f"{r['bug']:<12} {r['checker']:<10} {'pass' if r['passed'] else 'FAIL':<8} "
              f"{r['seconds']:7.2f}  {r['peak_mib']:8.0f}  {r['above_start_mib']:8.0f}")
    for bug in ("none", "entry 1e-3"):
        f, t = (next(r for r in out if r["bug"] == bug and r["checker"] == c)
                for c in ("fastgc", "gradcheck"))
        print(f"{bug}: gradcheck / fastgc time {t['seconds'] / f['seconds']:.1f}x, memory above "
              f"start {t['above_start_mib'] / max(f['above_start_mib'], 1):.1f}x")


if __name__ == "__main__":
    main()
