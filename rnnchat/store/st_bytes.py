"""safetensors files as bytes, without torch: split, build, and rewrite the metadata only.

A safetensors file is an 8-byte little-endian header length, a JSON header (each tensor's
dtype, shape and data offsets, and an optional ``__metadata__`` object of strings), then the
tensor data. :func:`with_metadata` replaces the metadata and keeps the data bytes as they are
(the weights of a checkpoint whose hint is rewritten stay byte-identical); :func:`build` writes
a file from raw tensor bytes (the fake engine's states). :func:`split` checks what it reads
with ``checkpoint_meta``'s bounds: header size, tensor entries, offsets inside the data.
"""

from __future__ import annotations

import json
import struct

from rnnchat.store.checkpoint_meta import MAX_HEADER, TensorInfo, check_tensors
from rnnchat.core.errors import CheckpointError


def split(data: bytes, where: str = "file") -> tuple[dict, dict[str, TensorInfo], bytes]:
    """``(metadata, tensors, data section)`` of safetensors ``data``; CheckpointError (one line)
    when it is not a well-formed safetensors file."""
    if len(data) < 8:
        raise CheckpointError(f"{where} is not a safetensors file (too short: {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if not 2 <= n <= MAX_HEADER or 8 + n > len(data):
        raise CheckpointError(f"{where} is not a valid safetensors file (header length {n} is out of range)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{where} is not a valid safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where} is not a valid safetensors file (header is not an object)")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{where} is not a valid safetensors file (its metadata is not strings)")
    body = data[8 + n:]
    return meta, check_tensors(where, header, len(body)), body


def _pack(entries: dict, metadata: dict[str, str], body: bytes) -> bytes:
    header = dict(entries)
    if metadata:
        header["__metadata__"] = dict(metadata)
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(raw)) + raw + body


def with_metadata(data: bytes, metadata: dict[str, str], where: str = "file") -> bytes:
    """``data`` with its ``__metadata__`` replaced by ``metadata``; the tensor data is unchanged."""
    _, tensors, body = split(data, where)
    entries = {k: {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": list(t.offsets)}
               for k, t in tensors.items()}
    return _pack(entries, metadata, body)


def build(tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file from ``{name: (dtype, shape, raw bytes)}`` (the caller sizes the bytes)."""
    entries, parts, at = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(raw)]}
        parts.append(raw)
        at += len(raw)
    return _pack(entries, metadata or {}, b"".join(parts))


def tensor_bytes(tensors: dict[str, TensorInfo], body: bytes, name: str) -> bytes:
    start, end = tensors[name].offsets
    return body[start:end]
