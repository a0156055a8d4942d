"""Weight formats for generation: fp32, bf16, or int8 with a scale per row.

A character at batch 1 reads every weight once, so its cost is the bytes of the
weights (docs/performance.md). Smaller formats read fewer bytes, and change
the text a little; the products are always accumulated in fp32:

====== ====================================================================
fp32   OpenBLAS through NumPy (``np.dot``: a matrix-vector product for one
       stream, ``W @ x^T`` for several), the weights as trained.
bf16   bf16 weights; torch's bf16 ``linear`` (oneDNN) with the input rounded
       to bf16 and a bf16 result, widened to fp32 before the bias is added.
int8   int8 weights, one scale per output row (``max |w| / 127``, rounded
       up to a bf16 value so that it is exact in the kernel);
       ``torch._weight_int8pack_mm`` with the input rounded to bf16, each
       weight widened to fp32 and multiplied in fp32, a bf16 result.
====== ====================================================================

Both torch kernels compute every output from one row in a fixed order, split
between threads by output rows: a result depends neither on the thread count
nor on how many rows (streams) are computed together (``tests/speed`` checks
both). The biases and the first layer's table over the vocabulary stay fp32.

``auto`` is fp32 unless the checkpoint's metadata records a measured loss cost
below :data:`AUTO_MAX_COST` nats/char for a smaller format (``weights_cost``:
an object such as ``{"int8": 0.004, "bf16": 0.0002}``, or that object as a JSON string, as printed by
``benchmarks/generate_speed.py --quality``); then the smallest such format.
No checkpoint records one yet, so ``auto`` is fp32 everywhere today.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from rnnchat.core.errors import SettingError

FORMATS = ("fp32", "bf16", "int8")
SETTINGS = ("auto",) + FORMATS
AUTO_MAX_COST = 0.002  # nats/char: the most a format may cost to be chosen by ``auto``
COST_KEY = "weights_cost"
BYTES = {"fp32": 4, "bf16": 2, "int8": 1}
F32 = np.float32


def recorded_costs(meta) -> dict[str, float]:
    """The measured loss cost per format recorded in checkpoint metadata (untrusted: anything
    malformed counts as not recorded)."""
    data = meta.get(COST_KEY) if isinstance(meta, dict) else None
    if isinstance(data, str) and len(data) <= 1000:
        try:
            data = json.loads(data)
        except ValueError:
            return {}
    if not isinstance(data, dict) or len(data) > 16:
        return {}
    return {k: float(v) for k, v in data.items()
            if k in FORMATS and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def resolve(setting: str, meta=None, what: str = "weights") -> str:
    """The format a setting means for a checkpoint: ``auto`` -> the smallest format whose recorded
    cost is below AUTO_MAX_COST, else fp32."""
    if setting not in SETTINGS:
        raise SettingError(f"{what} must be one of {', '.join(SETTINGS)}, not {setting!r}")
    if setting != "auto":
        return setting
    costs = recorded_costs(meta or {})
    for fmt in ("int8", "bf16"):
        if fmt in costs and abs(costs[fmt]) < AUTO_MAX_COST:
            return fmt
    return "fp32"


def padded(n: int) -> int:
    """Columns padded to 16 (64 bytes of fp32; the int8 kernel reads 16 at a time)."""
    return (n + 15) // 16 * 16


def bf16_scales(w: np.ndarray) -> np.ndarray:
    """Per-row int8 scales that are exact bf16 values and never smaller than ``max|w|/127``."""
    s = np.abs(w).max(axis=1) / 127.0
    s = np.where(s > 0, s, 1.0).astype(F32)
    # rounding s * (1 + 2^-8) to the nearest bf16 gives a value >= s (bf16 rounding errs by <= 2^-9)
    up = torch.from_numpy(s * F32(1 + 2 ** -8)).to(torch.bfloat16)
    out = up.float().numpy()
    assert (out >= s).all()
    return out


class Linear:
    """``out[K, N] = x[K, cols] @ W^T + add`` for a weight matrix ``W[N, D]`` in one format
    (``cols`` = D padded to 16; the padding columns of ``x`` must be zero)."""

    def __init__(self, w: np.ndarray, fmt: str) -> None:
        if fmt not in FORMATS:
            raise SettingError(f"weights must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.fmt = fmt
        n, d = w.shape
        self.rows, self.cols = n, padded(d)
        full = np.zeros((n, self.cols), F32)
        full[:, :d] = w
        if fmt == "fp32":
            self.w = full
        elif fmt == "bf16":
            self.w = torch.from_numpy(full).to(torch.bfloat16)
        else:
            scales = bf16_scales(full)
            q = np.clip(np.rint(full / scales[:, None]), -127, 127).astype(np.int8)
            self.w = torch.from_numpy(q)
            self.scales = torch.from_numpy(scales).to(torch.bfloat16)
        self.nbytes = n * self.cols * BYTES[fmt] + (n * 2 if fmt == "int8" else 0)

    def dequantised(self) -> np.ndarray:
        """The weights this format computes with, as fp32 ``[N, cols]`` (for tests and figures)."""
        if self.fmt == "fp32":
            return self.w.copy()
        if self.fmt == "bf16":
            return self.w.float().numpy()
        return self.w.float().numpy() * self.scales.float().numpy()[:, None]

    def __call__(self, x: np.ndarray, add, out: np.ndarray) -> np.ndarray:
        """``x`` float32 ``[K, cols]`` C-contiguous; ``add`` broadcasts to ``[K, N]``; ``out`` float32
        ``[K, N]`` C-contiguous, written and returned."""
        if self.fmt == "fp32":
            if x.shape[0] == 1:
                np.dot(self.w, x[0], out=out[0])
                np.add(out, add, out=out)
            else:  # W @ x^T: measured 1.1-1.9x faster here than x @ W^T (OpenBLAS, small K)
                np.add(np.dot(self.w, x.T).T, add, out=out)
            return out
        xb = torch.from_numpy(x).to(torch.bfloat16)
        if self.fmt == "bf16":
            y = torch.nn.functional.linear(xb, self.w)
        else:
            y = torch._weight_int8pack_mm(xb, self.w, self.scales)
        add_t = torch.from_numpy(add) if isinstance(add, np.ndarray) else add
        torch.add(y, add_t, out=torch.from_numpy(out))
        return out
