"""Choose the autocast precision for training on a device.

Measured with ``benchmarks/train_overhead.py`` (figures in docs/performance.md):
on a CPU with native bf16 matrix instructions (AVX512-BF16 or AMX), bf16
autocast raises training chars/s of a 2x384 / 2x512 LSTM by 1.6-2.3x, and at a
fixed time budget the extra steps give an equal or lower validation loss, so
``auto`` picks it there. Weights, optimizer state and the loss stay fp32
(autocast only runs the matrix products in bf16).

On CUDA, bf16 where the GPU supports it (Ampere and later). fp16 needs loss
scaling (``torch.amp.GradScaler``) to train safely; it is chosen only where the
caller says it scales the loss (``fp16_ok=True``), otherwise fp32.
"""

from __future__ import annotations

import torch


def cpu_bf16_fast() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def auto_precision(device: torch.device, fp16_ok: bool = False) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp16" if fp16_ok else "fp32"
    if device.type == "cpu" and cpu_bf16_fast():
        return "bf16"
    return "fp32"
