"""Weight formats for generation: fp32, bf16, or int8 with a scale per row.

A character at batch 1 reads every weight once, so its cost is the bytes of the
weights (docs/performance.md). Smaller formats read fewer bytes, and change
the text a little; the products are accumulated in fp32 (int8 on VNNI: exactly,
in int32). ``benchmarks/kernels.py`` compares the candidate kernels:

====== ====================================================================
fp32   the weights as trained. One stream: OpenBLAS through NumPy
       (``np.dot``, as the single-stream NumPy path); several: oneDNN's fp32
       matrix product on weights reordered once into its blocked layout
       (``mkldnn::_linear_pointwise``; OpenBLAS re-packed the whole matrix on
       every call and ran 1.6-2.5x slower at 4-8 streams).
bf16   bf16 weights reordered once for oneDNN (the same op): the input rounded
       to bf16, fp32 accumulation (AVX512-BF16 where the CPU has it), a bf16
       result widened to fp32 before the bias is added. (torch's plain bf16
       ``linear`` reordered the weights on every call: 1.6-2x slower.)
int8   int8 weights, one scale per output row (``max |w| / 127``, rounded
       up to a bf16 value so that it is exact in either kernel). Two kernels:

       ``vnni`` (where the input is known to lie in [-1, 1], i.e. every
       product of the built-in cells except a relu RNN's, on a CPU with VNNI):
       fbgemm's int8 GEMM (``quantized::linear_with_input_q_dq_qweight_dq_
       output_fp32``): the input quantised to 8 bits with the fixed scale
       1/127 (zero point 128), integer products summed exactly in int32
       (VNNI), then scaled to fp32 -- one call per product, the input
       converted inside it. At one row (a single stream) rnnchat's own C
       kernel (``rnnchat/engine/_int8.c``, AVX-512 VNNI, its rows split over
       :func:`set_threads` threads) computes the same numbers bit for bit
       with a fraction of fbgemm's fixed cost; ``kernel`` is then
       ``vnni+rnnchat``.

       ``bf16-input`` (elsewhere): ``torch._weight_int8pack_mm`` with the
       input rounded to bf16, each weight widened to fp32 and multiplied in
       fp32, a bf16 result.
====== ====================================================================

No kernel's result depends on the thread count (``tests/speed`` and
``benchmarks/kernels.py`` check it). The int8 kernels also compute each output
from one row of the input alone with a fixed scale, so a row's result does not
depend on how many rows (streams) are computed together either (the ``vnni``
sums are exact integers, whose order cannot matter); oneDNN's fp32 and bf16
products may differ in the last bits with the number of rows. The biases, the
first layer's table over the vocabulary and a head of at most :data:`SMALL`
bytes in fp32 stay fp32 (:mod:`rnnchat.engine.batched`).

``auto`` is fp32 unless the checkpoint's metadata records a measured loss cost
below :data:`AUTO_MAX_COST` nats/char for a smaller format (``weights_cost``:
an object such as ``{"int8": 0.004, "bf16": 0.0002}``, or that object as a JSON string, as printed by
``benchmarks/generate_speed.py --quality``); then the smallest such format.
No checkpoint records one yet, so ``auto`` is fp32 everywhere today.
"""

from __future__ import annotations

import functools
import json
import math
import warnings

import numpy as np
import torch

from rnnchat.core.errors import SettingError

FORMATS = ("fp32", "bf16", "int8")
SETTINGS = ("auto",) + FORMATS
AUTO_MAX_COST = 0.002  # nats/char: the most a format may cost to be chosen by ``auto``
COST_KEY = "weights_cost"
BYTES = {"fp32": 4, "bf16": 2, "int8": 1}
F32 = np.float32
SMALL = 256 * 1024  # fp32 bytes: a matrix this small costs less read in fp32 by OpenBLAS than
# the fixed cost of a torch kernel call (measured ~10-15 us for fbgemm and oneDNN, 2-5 us for np.dot)
X_SCALE, X_ZERO = 1.0 / 127, 128  # the vnni kernel's fixed input quantisation: [-128/127, 1] in 255 steps
_THREADS = [1]  # threads of rnnchat's own int8 kernel (set_threads)


def set_threads(n: int) -> None:
    """The thread count of the bf16/int8 kernels: torch's, and rnnchat's own int8 kernel's."""
    torch.set_num_threads(n)
    _THREADS[0] = max(1, min(int(n), 8))


def kernel_threads() -> int:
    """The thread count of rnnchat's own int8 kernel (:func:`set_threads`)."""
    return _THREADS[0]


@functools.cache
def compiled():
    """rnnchat's compiled module (``rnnchat/engine/_int8.c``), or None where it was not built (no
    C compiler at install) or the CPU lacks AVX-512 VNNI."""
    try:
        from rnnchat.engine import _int8
    except ImportError:
        return None
    if not _int8.available():
        return None
    # the LSTM step (Matrix.lstm, lstm_cell) computes tanh with NumPy's own float32 loop
    _int8.fused_lstm = bool(_int8.set_tanh(np.tanh))
    return _int8


@functools.cache
def dense_module():
    """rnnchat's fixed-order fp32 product (``rnnchat/engine/_dense.c``, for a bf16/int8 model's head),
    or None where it was not built or the CPU lacks AVX-512F."""
    try:
        from rnnchat.engine import _dense
    except ImportError:
        return None
    return _dense if _dense.available() else None


def own_int8_kernel():
    """The compiled module for int8 products, or None: not built here, or
    ``RNNCHAT_INT8_KERNEL=fbgemm`` (fbgemm's op then; the same numbers)."""
    from rnnchat.core import env

    return None if env.int8_kernel() == "fbgemm" else compiled()


def onednn_kernel() -> bool:
    """Whether oneDNN's matrix product on pre-reordered weights is available (torch's CPU builds)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def vnni_kernel() -> bool:
    """Whether the int8 ``vnni`` kernel runs here: fbgemm's quantised linear op and a CPU whose
    int8 dot products sum without saturating (VNNI; fbgemm's AVX2 path saturates 16-bit pairs)."""
    ops = getattr(torch.ops, "quantized", None)
    return (hasattr(ops, "linear_with_input_q_dq_qweight_dq_output_fp32")
            and "fbgemm" in torch.backends.quantized.supported_engines and torch.cpu._is_vnni_supported())


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


@functools.cache
def bf16_weights_problem() -> str | None:
    """None where oneDNN's bf16 products run here, else why not in one line (a CPU without AVX-512
    or AVX-NE-CONVERT: oneDNN refuses to reorder bf16 weights). Tried once per process."""
    if not onednn_kernel():
        return "torch was built without oneDNN (mkldnn)"
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(16, 16, dtype=torch.bfloat16), None)
    except RuntimeError as exc:
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return None


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
    (``cols`` = D padded to 16; the padding columns of ``x`` must be zero). ``bounded``: every
    input value lies in [-1, 1] (outputs of tanh, sigmoid x tanh, convex mixes of them), which
    lets int8 weights use the ``vnni`` kernel. ``fixed_order`` (a small fp32 matrix): every output
    summed in one fixed order whatever the number of rows (rnnchat's ``Dense``, ``_dense.c``, where
    it is built; BLAS's one-row and several-row kernels sum differently). ``kernel`` names the kernel
    in use."""

    def __init__(self, w: np.ndarray, fmt: str, bounded: bool = False, fixed_order: bool = False) -> None:
        if fmt not in FORMATS:
            raise SettingError(f"weights must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.fmt = fmt
        self.kernel = {"fp32": "openblas", "bf16": "onednn"}.get(fmt, "bf16-input")
        n, d = w.shape
        self.rows, self.cols = n, padded(d)
        full = np.zeros((n, self.cols), F32)
        full[:, :d] = w
        if fmt == "fp32":
            self.w = full
            if fixed_order and n * self.cols * 4 <= SMALL and dense_module() is not None:
                self.kernel = "rnnchat-fp32"  # sums in one order at any row count (a bf16/int8 model's head)
                self.dense = dense_module().Dense(full)
            elif onednn_kernel() and n * self.cols * 4 > SMALL:
                self.kernel = "openblas+onednn"  # one row: OpenBLAS; several: oneDNN
                self.packed = torch.ops.mkldnn._reorder_linear_weight(torch.from_numpy(full), None)
                self._op = torch.ops.mkldnn._linear_pointwise.default  # an overload: no lookup per call
        elif fmt == "bf16":
            problem = bf16_weights_problem()
            if problem:
                raise SettingError(f"bf16 weights do not run on this CPU ({problem}); use --weights fp32 or int8")
            self.packed = torch.ops.mkldnn._reorder_linear_weight(torch.from_numpy(full).to(torch.bfloat16), None)
            self._op = torch.ops.mkldnn._linear_pointwise.default
        else:
            scales = bf16_scales(full)
            q = np.clip(np.rint(full / scales[:, None]), -127, 127).astype(np.int8)
            self.w = torch.from_numpy(q)
            self.scales = torch.from_numpy(scales).to(torch.bfloat16)
            if bounded and vnni_kernel():
                self.kernel = "vnni"
                self.packed = _fbgemm_pack(self.w, scales)
                op = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32.default
                # the C++ operator itself: the overload's Python wrapper checks every call for
                # FakeScriptObjects (tracing only), which cost more than a small product here
                self._op = getattr(op, "_op", op)
                self.row = _row_kernel(q, scales)
                if self.row is not None:
                    self.kernel = "vnni+rnnchat"
        self.nbytes = n * self.cols * BYTES[fmt] + (n * 2 if fmt == "int8" else 0)

    def dequantised(self) -> np.ndarray:
        """The weights this format computes with, as fp32 ``[N, cols]`` (for tests and figures)."""
        if self.fmt == "fp32":
            return self.w.copy()
        if self.fmt == "bf16":
            return self.packed.to_dense().float().numpy()
        return self.w.float().numpy() * self.scales.float().numpy()[:, None]

    def __call__(self, x: np.ndarray, add, out: np.ndarray) -> np.ndarray:
        """``x`` float32 ``[K, cols]`` C-contiguous; ``add`` broadcasts to ``[K, N]``; ``out`` float32
        ``[K, N]`` C-contiguous, written and returned."""
        if self.fmt == "fp32":
            if self.kernel == "rnnchat-fp32":
                self.dense(x, add, out)
            elif x.shape[0] == 1:
                np.dot(self.w, x[0], out=out[0])
                np.add(out, add, out=out)
            elif self.kernel == "openblas":  # a small matrix: one matrix-vector product per row
                # (OpenBLAS's matrix-matrix product summed differently on 1 and 2 threads at 16 rows)
                w = self.w
                for r in range(x.shape[0]):
                    np.dot(w, x[r], out=out[r])
                np.add(out, add, out=out)
            else:
                y = self._op(torch.from_numpy(x), self.packed, None, "none", [], "")
                np.add(y.numpy(), add, out=out)
            return out
        if self.kernel == "vnni+rnnchat":
            self.row(x, add, out, _THREADS[0])
            return out
        if self.kernel.startswith("vnni"):
            y = self._op(torch.from_numpy(x), X_SCALE, X_ZERO, self.packed)
            np.add(y.numpy(), add, out=out)
            return out
        xb = torch.from_numpy(x).to(torch.bfloat16)
        if self.fmt == "bf16":
            y = self._op(xb, self.packed, None, "none", [], "")
        else:
            y = torch._weight_int8pack_mm(xb, self.w, self.scales)
        add_t = torch.from_numpy(add) if isinstance(add, np.ndarray) else add
        torch.add(y, add_t, out=torch.from_numpy(out))
        return out


def _row_kernel(q: np.ndarray, scales: np.ndarray):
    """rnnchat's one-row kernel over int8 rows ``q`` (columns padded to 64 with zeros), or None."""
    mod = own_int8_kernel()
    if mod is None:
        return None
    n, d = q.shape
    w = np.zeros((n, (d + 63) // 64 * 64), np.int8)
    w[:, :d] = q
    wsum = w.astype(np.int32).sum(axis=1, dtype=np.int32)
    mult = (F32(X_SCALE) * scales).astype(F32)  # fbgemm's combined scale, computed as it does (float)
    return mod.Matrix(w, wsum, mult, X_SCALE)


def _fbgemm_pack(q: torch.Tensor, scales: np.ndarray):
    """fbgemm's packed form of int8 rows ``q`` with per-row ``scales`` (the very same integers:
    the quantised tensor is made from them, not re-rounded)."""
    n = q.shape[0]
    with warnings.catch_warnings():  # torch 2.13 marks quantised tensor creation as deprecated
        warnings.simplefilter("ignore", UserWarning)
        qt = torch._make_per_channel_quantized_tensor(
            q, torch.from_numpy(scales.astype(np.float64)), torch.zeros(n, dtype=torch.long), 0)
        return torch.ops.quantized.linear_prepack(qt, None)
