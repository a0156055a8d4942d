"""rnnchat's own int8 kernel against fbgemm's op on the same weights, one kernel at a time.

    .venv/bin/python benchmarks/int8_kernel.py [--repeats 7] [--calls 300]

For the bundled model's two product shapes (2048 x 512: the first layer's recurrent matrix;
2048 x 1024: the second layer's ``[x | h]``) and K = 1, 2, 4, 8, 16 input rows: microseconds per
product of rnnchat's kernel (``Linear.row``: one row on the row-major weights, several on the
packed copy) on 1 and 2 threads, and of fbgemm's op (torch's threads, as set before the run),
with the min and the median of the repeats, and the int8 products per second they reach
(2 threads, min). Each kernel runs alone in a tight loop, as it does in generation; the
interleaved table of ``benchmarks/kernels.py`` runs every candidate in turn instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rnnchat.engine.quant import X_SCALE, Linear  # noqa: E402


def timed(f, calls: int, repeats: int) -> tuple[float, float]:
    for _ in range(100):
        f()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        runs.append((time.perf_counter() - t0) / calls * 1e6)
    return min(runs), statistics.median(runs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"# us per product, min/median of {args.repeats} x {args.calls} calls; torch threads "
          f"{torch.get_num_threads()}; load avg {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{'shape':<11} {'K':>3} {'rnnchat 1t':>13} {'rnnchat 2t':>13} {'fbgemm':>13} {'GMAC/s 2t':>9}")
    for n, d in ((2048, 512), (2048, 1024)):
        lin = Linear((rng.standard_normal((n, d)) * 0.1).astype(np.float32), "int8", bounded=True)
        if lin.row is None:
            print("rnnchat's int8 kernel is not built here, or the CPU lacks AVX-512 VNNI")
            return 1
        for k in (1, 2, 4, 8, 16):
            x = np.ascontiguousarray(rng.uniform(-1, 1, (k, lin.cols)).astype(np.float32))
            add, out = np.zeros(n, np.float32), np.empty((k, n), np.float32)
            ours = [timed(lambda th=th: lin.row(x, add, out, th), args.calls, args.repeats) for th in (1, 2)]
            xt = torch.from_numpy(x)
            theirs = timed(lambda: lin._op(xt, X_SCALE, 128, lin.packed), args.calls, args.repeats)
            cells = " ".join(f"{lo:>6.1f}/{med:<6.1f}" for lo, med in (*ours, theirs))
            print(f"{n} x {d:<4} {k:>3} {cells} {n * lin.cols * k / ours[1][0] / 1e3:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
