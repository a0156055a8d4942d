"""Save and load models as one self-describing ``.safetensors`` file. Never a pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from rnnchat.core.atomic import atomic_path, clean_stale
from rnnchat.store.checkpoint_fields import DIST_NAME
from rnnchat.store.checkpoint_meta import FORMAT_VERSION, read_checkpoint
from rnnchat.core.errors import CheckpointError, PluginError, RnnchatError, first_line
from rnnchat.engine.model import CharRNN, ModelConfig
from rnnchat.plugins.manager import get_host
from rnnchat.core.vocab import Vocab

def serialize(tensors: dict, metadata: dict) -> bytes:
    """Serialize in memory: the only file written is our own temp file (safetensors' own
    writer makes a temp file of its own, which a kill -9 would leave behind)."""
    return save(tensors, metadata=metadata)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Loaded:
    model: CharRNN
    vocab: Vocab
    meta: dict
    path: Path


def build_meta(model: CharRNN, vocab: Vocab, **extra) -> dict:
    c = model.config
    host = get_host()
    meta = {"format": FORMAT_VERSION, "cell": c.cell, "cell_options": c.cell_options, "layers": c.layers,
            "hidden": c.hidden, "embedding": c.embedding, "dropout": c.dropout, "vocab": vocab.chars,
            "parameters": model.num_parameters(), "cell_plugin": host.dist_of("cells", c.cell)}
    meta.update(extra)
    meta.setdefault("chat", {"template": "{text}", "stop": ["\n\n"]})
    return meta


def save_checkpoint(path, model: CharRNN, meta: dict, dtype: str = "float32",
                    extra_tensors: dict | None = None) -> Path:
    """Write weights + metadata atomically. ``dtype`` is the storage type; compute stays fp32."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu", DTYPES[dtype]).contiguous() for k, v in model.state_dict().items()}
    tensors.update(extra_tensors or {})
    meta = dict(meta, storage_dtype=dtype)
    try:
        data = serialize(tensors, metadata={"rnnchat": json.dumps(meta, ensure_ascii=False)})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
    except (OSError, SafetensorError) as exc:
        why = getattr(exc, "strerror", None) or first_line(exc)
        raise CheckpointError(f"could not save {path}: {why}; the previous file is unchanged") from None
    clean_stale(path.parent)
    return path


def model_from_meta(meta: dict, path, device: str | torch.device | None = None) -> CharRNN:
    """The model ``meta`` describes (its fields already checked by ``parse_meta``); on the ``meta``
    device nothing is allocated, which is how the shapes are compared before a real build."""
    host = get_host()
    cell = meta["cell"]
    host.verify_cells()
    if cell not in host.cells and cell not in host.failed_cells:  # a failed plugin's cell: its error, below
        hint = meta.get("cell_plugin")
        how = ""
        if isinstance(hint, str) and DIST_NAME.match(hint) and hint != "rnnchat":
            how = f" (it comes from the plugin {hint}: run `rnnchat install {hint}`)"
        raise CheckpointError(f"{path} needs the cell {cell!r}, which is not installed{how}")
    config = ModelConfig(cell=cell, vocab_size=len(meta["vocab"]), hidden=meta["hidden"], layers=meta["layers"],
                         embedding=meta["embedding"], dropout=float(meta.get("dropout", 0.0)),
                         cell_options=dict(meta["cell_options"]))
    try:
        cell_class = host.cell(cell).load()
        if device is None:
            return CharRNN(config, cell_class)
        with torch.device(device):
            return CharRNN(config, cell_class)
    except (RnnchatError, TypeError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise CheckpointError(f"{path}: cannot build the model its metadata describes: {first_line(exc)}") from None


def _check_against(meta: dict, header, path) -> list[str]:
    """Build the described model on the meta device (no memory) and compare every tensor shape with the
    header; only then may the real model be built. Returns the names of the model's tensors."""
    skeleton = model_from_meta(meta, path, device="meta")
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    del skeleton
    found = {k: t.shape for k, t in header.tensors.items() if k in expected}
    missing = sorted(set(expected) - set(found))
    if missing:
        raise CheckpointError(f"{path}: tensors missing for a {meta['cell']} model: {', '.join(missing[:4])}")
    for name, shape in expected.items():
        if found[name] != shape:
            raise CheckpointError(f"{path}: tensor {name} has shape {list(found[name])}, but the metadata "
                                  f"(vocabulary {len(meta['vocab'])}, hidden {meta['hidden']}) implies {list(shape)}")
    return list(expected)


def load_checkpoint(path, device: torch.device | str = "cpu") -> Loaded:
    """Read the file once, validate its header and metadata from those bytes, compare the described
    model's shapes with the header, and only then build the model and load the very same bytes."""
    header, data = read_checkpoint(path)
    meta = header.meta
    names = _check_against(meta, header, path)
    try:
        tensors = load(data)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path} is corrupt: {first_line(exc)}") from None
    del data
    state = {k: tensors[k].float() for k in names}
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise CheckpointError(f"{path} contains NaN or infinite weights")
    model = model_from_meta(meta, path)
    model.load_state_dict(state, strict=True)
    model.eval()
    return Loaded(model.to(device), Vocab(meta["vocab"]), meta, Path(path))


__all__ = ["Loaded", "build_meta", "save_checkpoint", "load_checkpoint", "PluginError"]
