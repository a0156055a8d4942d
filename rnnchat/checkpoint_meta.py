"""Read and validate a checkpoint's header and metadata without torch.

A checkpoint is one ``.safetensors`` file. Its string metadata key ``rnnchat``
holds JSON describing the model (see ``docs/checkpoints.md``). This module
checks the file's structure before anything else touches it: a pickle is
refused by its first bytes and never unpickled, the header is bounded, every
tensor's offsets must lie inside the file and not overlap.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from rnnchat.errors import CheckpointError

FORMAT_VERSION = 1
MAX_HEADER = 16 * 1024 * 1024  # a real header is a few KB; a larger one is refused unread
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}
REQUIRED = {"format": int, "cell": str, "cell_options": dict, "layers": int, "hidden": int,
            "embedding": int, "vocab": list}


@dataclass
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    offsets: tuple[int, int]


@dataclass
class Header:
    path: Path
    meta: dict
    tensors: dict[str, TensorInfo]
    data_start: int
    size: int

    @property
    def parameters(self) -> int:
        return sum(math.prod(t.shape) for t in self.tensors.values())


def _refuse_foreign(path: Path, head: bytes) -> None:
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise CheckpointError(f"{path} is a Python pickle, not a safetensors file; refusing to load it "
                              "(pickles can run code). Convert it with a trusted tool first")
    if head[:4] == b"PK\x03\x04":
        raise CheckpointError(f"{path} is a zip/torch.save archive (pickle inside), not safetensors; "
                              "refusing to load it")


def read_header(path: str | os.PathLike) -> Header:
    """Validate the file's structure and metadata; raise CheckpointError with one line on any fault."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            _refuse_foreign(path, head)
            if len(head) < 8:
                raise CheckpointError(f"{path} is not a safetensors file (too short: {size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or n < 2:
                raise CheckpointError(f"{path} is not a valid safetensors file (header length {n} is out of range)")
            if 8 + n > size:
                raise CheckpointError(f"{path} is truncated: its header says {n} bytes but the file has {size}")
            raw = fh.read(n)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a checkpoint file") from None
    except PermissionError:
        raise CheckpointError(f"cannot read {path}: permission denied") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is not a valid safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a valid safetensors file (header is not an object)")
    data_start = 8 + n
    body = size - data_start
    tensors = _tensors(path, header, body)
    meta_block = header.get("__metadata__") or {}
    if not isinstance(meta_block, dict) or "rnnchat" not in meta_block:
        raise CheckpointError(f"{path} has no rnnchat metadata; it was not written by rnnchat")
    meta = parse_meta(path, meta_block["rnnchat"])
    return Header(path, meta, tensors, data_start, size)


def _tensors(path: Path, header: dict, body: int) -> dict[str, TensorInfo]:
    out: dict[str, TensorInfo] = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            if dtype not in DTYPE_SIZES or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise ValueError
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry") from None
        if end - start != math.prod(shape) * DTYPE_SIZES[dtype]:
            raise CheckpointError(f"{path}: tensor {name!r} size does not match its shape {shape}")
        if end > body:
            raise CheckpointError(f"{path} is truncated or corrupt: tensor {name!r} lies past the end of the file")
        out[name] = TensorInfo(dtype, tuple(shape), (start, end))
        spans.append((start, end, name))
    spans.sort()
    for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
        if s2 < e1:
            raise CheckpointError(f"{path} is corrupt: tensors {n1!r} and {n2!r} overlap")
    return out


def parse_meta(path, text) -> dict:
    try:
        meta = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: rnnchat metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: rnnchat metadata is not an object")
    for key, kind in REQUIRED.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise CheckpointError(f"{path}: metadata field {key!r} is missing or not a {kind.__name__}")
    if meta["format"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} uses checkpoint format {meta['format']}; this rnnchat reads up to "
                              f"{FORMAT_VERSION}: upgrade rnnchat")
    vocab = meta["vocab"]
    if not vocab or any(not isinstance(c, str) or len(c) != 1 for c in vocab) or len(set(vocab)) != len(vocab):
        raise CheckpointError(f"{path}: metadata vocabulary must be distinct single characters")
    for key in ("layers", "hidden", "embedding"):
        if not 1 <= meta[key] <= 1_000_000:
            raise CheckpointError(f"{path}: metadata field {key!r} is out of range")
    chat = meta.setdefault("chat", {"template": "{text}", "stop": ["\n\n"]})
    if not isinstance(chat, dict) or "{text}" not in str(chat.get("template", "")):
        raise CheckpointError(f"{path}: chat template must be a string containing {{text}}")
    return meta


def describe(path) -> dict:
    """A summary for listings: cell, size on disk, parameters, validation loss."""
    h = read_header(path)
    m = h.meta
    return {"cell": m["cell"], "layers": m["layers"], "hidden": m["hidden"], "embedding": m["embedding"],
            "vocab_size": len(m["vocab"]), "parameters": h.parameters, "size_bytes": h.size,
            "val_loss": m.get("val_loss"), "corpus": (m.get("corpus") or {}).get("name"),
            "path": str(path)}
