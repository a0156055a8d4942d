"""Read and validate a checkpoint's header and metadata without torch.

A checkpoint is one ``.safetensors`` file. Its string metadata key ``rnnchat``
holds JSON describing the model (see ``docs/checkpoints.md``). This module
checks the file's structure before anything else touches it: only a regular
file is opened (never a FIFO or a device), a pickle is refused by its first
bytes and never unpickled, the header is bounded, every tensor's offsets must
lie inside the file and not overlap, every metadata field is checked
(``checkpoint_fields``) and the model's dimensions must match the tensor shapes.

``read_checkpoint`` reads the whole file once and validates the header from those
very bytes, so the tensors loaded afterwards are the ones that were checked.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from rnnchat.store.checkpoint_fields import FORMAT_VERSION, REQUIRED, check_shapes, parse_meta, text_field
from rnnchat.core.errors import CheckpointError
from rnnchat.core.safe_files import FileTooLarge, NotRegularFile, open_regular, read_bounded

MAX_HEADER = 16 * 1024 * 1024  # a real header is a few KB; a larger one is refused unread
MAX_CHECKPOINT = 8 << 30  # bytes: a larger file is refused (it is read into memory whole)
MAX_DIMS = 8
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}

__all__ = ["FORMAT_VERSION", "REQUIRED", "Header", "TensorInfo", "read_header", "read_checkpoint", "parse_meta",
           "describe"]


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


def _header_length(path: Path, head: bytes, size: int) -> int:
    _refuse_foreign(path, head)
    if len(head) < 8:
        raise CheckpointError(f"{path} is not a safetensors file (too short: {size} bytes)")
    (n,) = struct.unpack("<Q", head[:8])
    if n > MAX_HEADER or n < 2:
        raise CheckpointError(f"{path} is not a valid safetensors file (header length {n} is out of range)")
    if 8 + n > size:
        raise CheckpointError(f"{path} is truncated: its header says {n} bytes but the file has {size}")
    return n


class _Reading:
    """Turn the ways opening a file fails into one CheckpointError line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        path = self.path
        if exc is None or isinstance(exc, CheckpointError):
            return False
        if isinstance(exc, FileNotFoundError):
            raise CheckpointError(f"checkpoint {path} does not exist") from None
        if isinstance(exc, (IsADirectoryError,)):
            raise CheckpointError(f"{path} is a folder, not a checkpoint file") from None
        if isinstance(exc, (NotRegularFile, FileTooLarge)):
            raise CheckpointError(str(exc)) from None
        if isinstance(exc, PermissionError):
            raise CheckpointError(f"cannot read {path}: permission denied") from None
        if isinstance(exc, OSError):
            raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
        return False


def read_header(path: str | os.PathLike) -> Header:
    """Validate the file's structure and metadata from its header alone (listings, inspect);
    raise CheckpointError with one line on any fault."""
    path = Path(path)
    with _Reading(path), open_regular(path, "checkpoint") as (fh, size):
        head = fh.read(8)
        n = _header_length(path, head, size)
        raw = fh.read(n)
    if len(raw) != n:
        raise CheckpointError(f"{path} is truncated: its header says {n} bytes but fewer could be read")
    return _parse(path, raw, size)


def read_checkpoint(path: str | os.PathLike) -> tuple[Header, bytes]:
    """Read the whole file once; validate it from those bytes. Returns (header, bytes)."""
    path = Path(path)
    with _Reading(path), open_regular(path, "checkpoint") as (fh, size):
        head = fh.read(8)
        n = _header_length(path, head, size)
        if size > MAX_CHECKPOINT:
            raise CheckpointError(f"{path} is {size / 2**30:.1f} GiB; the limit for a checkpoint is "
                                  f"{MAX_CHECKPOINT >> 30} GiB")
        data = head + read_bounded(fh, MAX_CHECKPOINT - 8, path, "checkpoint")
    _header_length(path, data[:8], len(data))  # the bytes actually read, not the size stat gave
    return _parse(path, data[8:8 + n], len(data)), data


def _parse(path: Path, raw: bytes, size: int) -> Header:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path} is not a valid safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a valid safetensors file (header is not an object)")
    data_start = 8 + len(raw)
    tensors = _tensors(path, header, size - data_start)
    meta_block = header.get("__metadata__") or {}
    if not isinstance(meta_block, dict) or "rnnchat" not in meta_block:
        raise CheckpointError(f"{path} has no rnnchat metadata; it was not written by rnnchat")
    meta = parse_meta(path, meta_block["rnnchat"])
    check_shapes(path, meta, {k: t.shape for k, t in tensors.items()})
    return Header(path, meta, tensors, data_start, size)


def _is_dim(d) -> bool:
    return isinstance(d, int) and not isinstance(d, bool) and d >= 0


def _tensors(path: Path, header: dict, body: int) -> dict[str, TensorInfo]:
    out: dict[str, TensorInfo] = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            if dtype not in DTYPE_SIZES or not isinstance(shape, list) or len(shape) > MAX_DIMS \
                    or not all(_is_dim(d) for d in shape):
                raise ValueError
            if not (_is_dim(start) and _is_dim(end) and start <= end):
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


check_tensors = _tensors  # (where, header dict, data length) -> {name: TensorInfo}; st_bytes.split uses it


def describe(path) -> dict:
    """A summary for listings: cell, size on disk, parameters, validation loss."""
    h = read_header(path)
    m = h.meta
    return {"cell": m["cell"], "layers": m["layers"], "hidden": m["hidden"], "embedding": m["embedding"],
            "vocab_size": len(m["vocab"]), "parameters": h.parameters, "size_bytes": h.size,
            "val_loss": m.get("val_loss"), "corpus": (m.get("corpus") or {}).get("name"),
            "hint": text_field(m, "hint"), "description": text_field(m, "description"), "path": str(path)}
