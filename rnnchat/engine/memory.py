"""How much memory a training step needs, checked against what the device has before anything is built."""

from __future__ import annotations

import os

import torch

from rnnchat.engine.train_config import ConfigError, TrainConfig

ACTIVATIONS_PER_UNIT = 12  # floats kept for backward per time step and hidden unit (LSTM gates, cell, dropout)
LOGIT_COPIES = 4           # logits, their float copy, softmax, gradient


def parameter_count(cfg: TrainConfig, vocab_size: int) -> int:
    """The model's parameters, counted on the meta device (nothing allocated); an LSTM's count if the
    cell cannot be built there."""
    from rnnchat.engine.model import CharRNN, registered_cell

    cell_class = registered_cell(cfg.cell)
    try:
        with torch.device("meta"):
            model = CharRNN(cfg.model_config(vocab_size), cell_class)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # a plugin cell that cannot live on the meta device: assume LSTM-sized layers
        sizes = [cfg.embedding] + [cfg.hidden] * cfg.layers
        cells = sum(4 * cfg.hidden * (sizes[i] + cfg.hidden + 2) for i in range(cfg.layers))
        return vocab_size * cfg.embedding + cells + (cfg.hidden + 1) * vocab_size


def step_bytes(cfg: TrainConfig, vocab_size: int, params: int) -> int:
    """Bytes of one training step: weights, gradients and AdamW moments, activations kept for
    backward, logits, the batch."""
    tokens = cfg.batch_size * cfg.seq_len
    weights = 16 * params
    activations = 4 * tokens * (cfg.embedding + cfg.layers * cfg.hidden * ACTIVATIONS_PER_UNIT)
    logits = 4 * tokens * vocab_size * LOGIT_COPIES
    batch = 16 * cfg.batch_size * (cfg.seq_len + 1)
    return int(1.2 * (weights + activations + logits + batch))


def available_bytes(device: torch.device) -> tuple[int | None, str]:
    """(free bytes, where) on ``device``: the GPU's free memory, else the machine's available memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"GPU {device}"
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh.read(65536).decode("ascii", "replace").splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "this machine"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine"
    except (ValueError, OSError, AttributeError):
        return None, "this machine"


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def check_memory(cfg: TrainConfig, vocab_size: int, device: torch.device, world: int = 1) -> int:
    """Refuse a configuration whose step needs more memory than the device has; returns the estimate."""
    need = step_bytes(cfg, vocab_size, parameter_count(cfg, vocab_size))
    free, where = available_bytes(device)
    if device.type != "cuda" and world > 1:
        free = free // world if free else free  # the processes of a machine share its memory
    if free is not None and need > free:
        raise ConfigError("a training step needs about {need} of memory and {where} has {free} available: "
                          "reduce {batch_size}, {seq_len}, {hidden} or {layers} (or the vocabulary)",
                          need=human(need), where=where, free=human(free))
    return need
