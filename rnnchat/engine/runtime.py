"""Open a model by name or path on the chosen device: what the CLI and the chat session call."""

from __future__ import annotations

from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.device import pick_device, set_cpu_threads
from rnnchat.engine.generate import Engine
from rnnchat.plugins.resolve import ModelRef, resolve_model


def open_engine(model: "str | ModelRef | None", device: str | None = None, weights: str | None = None):
    """``model``: a registered name, a path, None (the default model) or one already resolved
    (:mod:`rnnchat.plugins.resolve`). ``weights``: auto (default), fp32, bf16 or int8
    (:mod:`rnnchat.engine.quant`). Returns (the Engine, the checkpoint's path)."""
    dev = pick_device(device)
    if dev.type == "cpu":
        set_cpu_threads()
    path = (model if isinstance(model, ModelRef) else resolve_model(model)).path
    loaded = load_checkpoint(path, dev)
    return Engine(loaded, dev, weights=weights), path
