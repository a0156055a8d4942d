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

Not every CPU runs bf16 recurrent layers at all: on an x86-64 CPU without AVX512-BF16 or
AMX, PyTorch still hands a bf16 LSTM to oneDNN, which cannot build it ("could not create a
primitive descriptor for the LSTM forward propagation primitive"). :func:`cpu_bf16_problem`
finds out once per process by running the built-in recurrent kernels on tiny tensors; where
they fail, ``auto`` picks fp32 and an explicit bf16 is a one-line :class:`SettingError`
(:func:`check_precision`) rather than a traceback in the middle of the work. To run as on such
a CPU on one that has bf16, limit oneDNN before torch is imported: ``ONEDNN_MAX_CPU_ISA=AVX2``
(tests/reliability/README.md).
"""

from __future__ import annotations

import functools

import torch

from rnnchat.core.errors import SettingError


def cpu_bf16_native() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX) and oneDNN
    may use them (``ONEDNN_MAX_CPU_ISA`` can forbid it)."""
    try:
        hardware = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return bool(hardware and torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


BUILTIN_KINDS = ("lstm", "gru", "rnn")


def cpu_bf16_problem(kinds: tuple[str, ...] = BUILTIN_KINDS) -> str | None:
    """None where bf16 autocast runs the built-in recurrent layers of ``kinds`` (forward and
    backward) on this CPU, else why not, in one line naming the layer. Each kind is probed once
    per process, on 4-wide tensors."""
    for kind in kinds:
        problem = _probe(kind)
        if problem:
            return f"{kind}: {problem}"
    return None


@functools.cache
def _probe(kind: str) -> str | None:
    from rnnchat.engine.cells import GRUCell, LSTMCell, RNNCell
    from rnnchat.core.errors import first_line

    cls = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}[kind]
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
            cell = cls(4, 4)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y, _ = cell(torch.ones(1, 3, 4), cell.initial_state(1))
            y.float().sum().backward()
    except RuntimeError as exc:
        return first_line(exc).split(". ")[0]
    return None


def cpu_bf16_fast() -> bool:
    """True where bf16 is native on this CPU and runs the recurrent layers (the ``auto`` choice)."""
    return cpu_bf16_native() and cpu_bf16_problem() is None


def check_precision(precision: str, device, what: str = "--precision", cell: str | None = None) -> str:
    """``precision`` if ``device`` can run it, else a one-line SettingError: bf16 on a CPU whose
    oneDNN cannot run that built-in layer in bf16 (``cell``; any of them for other cells)."""
    if precision == "bf16" and torch.device(device).type == "cpu":
        problem = cpu_bf16_problem((cell,) if cell in BUILTIN_KINDS else BUILTIN_KINDS)
        if problem:
            raise SettingError(f"{what} bf16 does not run on this CPU ({problem}); use fp32 or auto")
    return precision


def auto_precision(device: torch.device, fp16_ok: bool = False) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp16" if fp16_ok else "fp32"
    if device.type == "cpu" and cpu_bf16_fast():
        return "bf16"
    return "fp32"
