"""One product ``x[K, D] @ W^T`` per kernel candidate, timed side by side, and checked for the two
properties generation needs: a row's result does not depend on the other rows (K = 1 vs K = 8)
nor on the thread count (1 vs 2), bit for bit.

    .venv/bin/python benchmarks/kernels.py [--rows 2048] [--cols 1040] [--repeats 5] [--calls 200]

The default shape is the bundled model's second layer (``[x | h]`` of a 2 x 512 LSTM, 4 gates).
Microseconds per call, medians of the repeats; each repeat runs every candidate in turn.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rnnchat.engine.blas import set_blas_threads  # noqa: E402
from rnnchat.engine import quant  # noqa: E402
from rnnchat.engine.quant import Linear, vnni_kernel  # noqa: E402

KS = (1, 4, 8)


def candidates(w: np.ndarray) -> dict:
    """name -> ``f(x[K, D] float32 numpy) -> [K, N]`` (anything array-like)."""
    out = {}
    wt = torch.from_numpy(w)
    out["fp32 numpy W@x^T"] = lambda x: np.dot(w, x.T).T
    mkl_w = {k: torch.ops.mkl._mkl_reorder_linear_weight(wt, k) for k in KS}
    out["fp32 mkl packed"] = lambda x: torch.ops.mkl._mkl_linear(torch.from_numpy(x), mkl_w[x.shape[0]], wt, None,
                                                                 x.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dnn_w = torch.ops.mkldnn._reorder_linear_weight(wt, None)
        wb = wt.to(torch.bfloat16)
        dnn_wb = torch.ops.mkldnn._reorder_linear_weight(wb, None)
    out["fp32 onednn packed"] = lambda x: torch.ops.mkldnn._linear_pointwise(torch.from_numpy(x), dnn_w, None,
                                                                            "none", [], "")
    out["bf16 linear"] = lambda x: torch.nn.functional.linear(torch.from_numpy(x).to(torch.bfloat16), wb)
    out["bf16 onednn packed"] = lambda x: torch.ops.mkldnn._linear_pointwise(
        torch.from_numpy(x).to(torch.bfloat16), dnn_wb, None, "none", [], "")
    lin8 = Linear(w, "int8")
    out["int8 int8pack (bf16 in)"] = lambda x: torch._weight_int8pack_mm(torch.from_numpy(x).to(torch.bfloat16),
                                                                         lin8.w, lin8.scales)
    if vnni_kernel():
        linv = Linear(w, "int8", bounded=True)
        out["int8 fbgemm vnni"] = lambda x: torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
            torch.from_numpy(x), 1.0 / 127, 128, linv.packed)
        if linv.row is not None:  # rnnchat's own kernel (one row: row-major weights; several: packed)
            zero = np.zeros(w.shape[0], np.float32)
            out["int8 rnnchat vnni"] = lambda x: linv.row(x, zero, np.empty((x.shape[0], w.shape[0]), np.float32),
                                                          quant.kernel_threads())
    return out


def as_np(y) -> np.ndarray:
    return (y.float().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).astype(np.float32)


def set_threads(n: int) -> None:
    quant.set_threads(n)  # torch's and rnnchat's int8 kernel's
    set_blas_threads(n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=1040)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((args.rows, args.cols)) / np.sqrt(args.cols)).astype(np.float32)
    x8 = rng.uniform(-1, 1, (8, args.cols)).astype(np.float32)
    cands = candidates(w)
    # properties: row r of a K=8 product == the K=1 product of row r; 1 thread == 2 threads
    props = {}
    for name, f in cands.items():
        res = {}
        for th in (1, 2):
            set_threads(th)
            res[th] = (as_np(f(x8)), np.stack([as_np(f(np.ascontiguousarray(x8[r:r + 1])))[0] for r in range(8)]))
        rows_ok = all(np.array_equal(a, b) for a, b in res.values())
        threads_ok = np.array_equal(res[1][0], res[2][0]) and np.array_equal(res[1][1], res[2][1])
        err = float(np.abs(res[1][0] - x8 @ w.T).max())
        props[name] = (rows_ok, threads_ok, err)
    times: dict = {}
    for _ in range(args.repeats):
        for th in (1, 2):
            set_threads(th)
            for k in KS:
                x = np.ascontiguousarray(x8[:k])
                for name, f in cands.items():
                    f(x)
                    t0 = time.perf_counter()
                    for _ in range(args.calls):
                        f(x)
                    times.setdefault((name, k, th), []).append((time.perf_counter() - t0) / args.calls * 1e6)
    import os

    print(f"# W {args.rows} x {args.cols}, {args.repeats} repeats x {args.calls} calls; us per call (medians); "
          f"load avg {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    head = f"{'kernel':<26}" + "".join(f" {f'K={k} 1t':>8} {f'K={k} 2t':>8}" for k in KS) + \
        f" {'rows==':>6} {'thr==':>6} {'max err':>8}"
    print(head)
    print("-" * len(head))
    for name in cands:
        cells = "".join(f" {statistics.median(times[(name, k, th)]):>8.1f}" for k in KS for th in (1, 2))
        rows_ok, threads_ok, err = props[name]
        print(f"{name:<26}{cells} {str(rows_ok):>6} {str(threads_ok):>6} {err:>8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
