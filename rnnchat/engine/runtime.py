"""Open a model by name or path on the chosen device: what the CLI and the chat session call."""

from __future__ import annotations

from rnnchat.engine.checkpoint import load_checkpoint, resolve_model
from rnnchat.engine.device import pick_device, set_cpu_threads
from rnnchat.engine.generate import Engine


def open_engine(name_or_path: str | None, device: str | None = None, weights: str | None = None):
    """``weights``: auto (default), fp32, bf16 or int8 (:mod:`rnnchat.engine.quant`)."""
    dev = pick_device(device)
    if dev.type == "cpu":
        set_cpu_threads()
    path = resolve_model(name_or_path)
    loaded = load_checkpoint(path, dev)
    return Engine(loaded, dev, weights=weights), path
