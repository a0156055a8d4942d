"""The contract checks of a trained checkpoint (see ``rnnchat.testing``)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from rnnchat.testing.common import _close, available_devices

# ---- checkpoints ----------------------------------------------------------------------------------------


@dataclass
class CheckpointCase:
    name: str
    path: Path
    loaded: Any

    def where(self) -> str:
        return f"checkpoint {self.name!r}"

    def ids(self, length: int = 24, batch: int = 2, seed: int = 5) -> torch.Tensor:
        return torch.randint(0, len(self.loaded.vocab), (batch, length), generator=torch.Generator().manual_seed(seed))


def _checkpoint_case(model) -> CheckpointCase:
    from rnnchat.engine.checkpoint import load_checkpoint
    from rnnchat.core.errors import ModelNotFound, RnnchatError
    from rnnchat.plugins.resolve import resolve_model

    try:
        ref = resolve_model(model)
    except ModelNotFound as exc:
        raise AssertionError(str(exc)) from None
    path, name = ref.path, ref.name or ref.path.name
    assert path.is_file(), f"{model!r}: {path} is not a file"
    try:
        loaded = load_checkpoint(path, "cpu")
    except RnnchatError as exc:
        raise AssertionError(f"checkpoint {name!r} does not load: {exc}") from None
    return CheckpointCase(name, path, loaded)


def check_checkpoint_metadata(case: CheckpointCase) -> None:
    """The metadata describes the model that loads: vocabulary, sizes, chat framing, validation loss."""
    meta, model = case.loaded.meta, case.loaded.model
    assert len(case.loaded.vocab) == model.head.out_features, f"{case.where()}: vocabulary and head disagree"
    chat = meta.get("chat") or {}
    template, stop = chat.get("template"), chat.get("stop")
    assert isinstance(template, str) and "{text}" in template, \
        f"{case.where()}: chat template {template!r} must be a string containing {{text}}"
    assert isinstance(stop, list) and stop and all(isinstance(s, str) and s for s in stop), \
        f"{case.where()}: chat stop must be a list of non-empty strings, not {stop!r}"
    loss = meta.get("val_loss")
    assert loss is None or (isinstance(loss, (int, float)) and loss == loss and loss >= 0), \
        f"{case.where()}: val_loss {loss!r} is not a number >= 0"
    assert all(c in case.loaded.vocab for c in template.replace("{text}", "")), \
        f"{case.where()}: the chat template uses characters the vocabulary lacks"


def check_checkpoint_forward_matches_step(case: CheckpointCase) -> None:
    """Reading a prompt in one forward call gives the logits of feeding it one character at a time."""
    model = case.loaded.model.eval()
    ids = case.ids()
    with torch.no_grad():
        logits, final = model(ids)
        state, outs = model.initial_state(ids.shape[0]), []
        for t in range(ids.shape[1]):
            out, state = model.step(ids[:, t], state)
            outs.append(out)
    _close(f"{case.where()}: logits of forward and of repeated step", logits, torch.stack(outs, 1), 1e-3)
    _close(f"{case.where()}: state after forward and after repeated step", final, state, 1e-3)


def check_checkpoint_save_load(case: CheckpointCase) -> None:
    """Saving the loaded model again (in its storage dtype) and loading it gives the same weights and metadata."""
    from rnnchat.engine.checkpoint import load_checkpoint, save_checkpoint

    meta = case.loaded.meta
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "again.safetensors"
        save_checkpoint(path, case.loaded.model, meta, dtype=meta.get("storage_dtype", "float32"))
        again = load_checkpoint(path, "cpu")
    assert again.meta == meta, f"{case.where()}: metadata changed in a save/load round trip"
    ref = case.loaded.model.state_dict()
    for name, t in again.model.state_dict().items():
        assert torch.equal(t, ref[name]), f"{case.where()}: tensor {name} changed in a save/load round trip"


def check_checkpoint_device_move(case: CheckpointCase, devices: Iterable | None = None) -> None:
    """The model gives the same logits on every available device."""
    from rnnchat.engine.checkpoint import load_checkpoint

    ids = case.ids()
    with torch.no_grad():
        ref = case.loaded.model(ids)[0]
    for device in devices or available_devices():
        device = torch.device(device)
        loaded = load_checkpoint(case.path, device)
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            with torch.no_grad():
                out = loaded.model(ids.to(device))[0]
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
        assert out.device.type == device.type, f"{case.where()}: loaded onto {device}, computed on {out.device}"
        _close(f"{case.where()}: logits on {device} and on cpu", out, ref, 1e-3)


def check_checkpoint_same_seed(case: CheckpointCase) -> None:
    """The chat framing of a short text, then sampling with one seed, gives the same reply twice."""
    from rnnchat.engine.generate import Engine
    from rnnchat.core.params import SamplingParams

    engine = Engine(case.loaded, "cpu")
    chat = case.loaded.meta.get("chat") or {"template": "{text}", "stop": ["\n\n"]}
    sample = "".join(c for c in case.loaded.vocab.chars[:8] if c.isprintable() and c.strip()) or "a"
    prompt = chat["template"].replace("{text}", sample)
    replies = []
    for _ in range(2):
        logits, state = engine.feed(engine.encode(prompt).ids, engine.initial_state())
        params = SamplingParams(temperature=0.8, seed=1234, max_chars=60, stop=tuple(chat["stop"])).validate()
        replies.append("".join(t.char for t in engine.stream(logits, state, params)))
    assert replies[0] == replies[1], f"{case.where()}: the same seed generated {replies[0]!r} then {replies[1]!r}"


CHECKPOINT_CHECKS: dict[str, Callable[[CheckpointCase], None]] = {
    "metadata": check_checkpoint_metadata,
    "forward_matches_step": check_checkpoint_forward_matches_step,
    "save_load": check_checkpoint_save_load,
    "device_move": check_checkpoint_device_move,
    "same_seed": check_checkpoint_same_seed,
}


def check_checkpoint(model: str | os.PathLike, *, only: Iterable[str] | None = None, skip: Iterable[str] = ()) -> None:
    """Run the checkpoint contract checks on ``model`` (a registered name or a file path)."""
    names = list(only) if only is not None else list(CHECKPOINT_CHECKS)
    unknown = [n for n in [*names, *skip] if n not in CHECKPOINT_CHECKS]
    if unknown:
        raise ValueError(f"unknown checkpoint check(s) {unknown}; known: {', '.join(CHECKPOINT_CHECKS)}")
    case = _checkpoint_case(model)
    for name in names:
        if name not in skip:
            CHECKPOINT_CHECKS[name](case)
