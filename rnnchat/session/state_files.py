"""Saved conversation states: ``/state save NAME``, ``/state load NAME``, ``/state list``. Torch-free.

A state file is ``<data dir>/states/NAME.safetensors``: the recurrent state's tensors (the
engine's own safetensors bytes, unchanged) and one metadata entry, ``rnnchat_state``, holding
JSON: the model it belongs to (name, cell, layers, hidden, vocabulary size, parameters, shape
signature), the text it came from (the priming text and every character of the transcript
after it) and when it was saved. Written atomically (``rnnchat/core/atomic.py``).

Loading trusts nothing: a regular file only, bounded in size, a well-formed safetensors header
(offsets inside the file, ``st_bytes.split``), every metadata field checked by type and range,
the model it names is the one loaded (else a one-line error naming that model), and the engine
checks the tensors' names, shapes and dtypes against its own state (``engine.restore``).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from rnnchat.core import paths
from rnnchat.core.atomic import write_bytes
from rnnchat.core.errors import RnnchatError
from rnnchat.core.safe_files import read_regular
from rnnchat.core.safe_text import printable
from rnnchat.session.types import SessionError, SessionInfo
from rnnchat.store.st_bytes import split, with_metadata

KEY = "rnnchat_state"
FORMAT = 1
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_FILE = 128 << 20  # bytes: a state is a few KB to a few MB, plus its text
MAX_TEXT = 2 << 20  # characters kept with a state (escaped in the header: at most 12 MiB of 16)
SUFFIX = ".safetensors"
_INTS = {"layers": 1 << 8, "hidden": 1 << 16, "vocab_size": 1 << 16, "parameters": 1 << 40}


@dataclass(frozen=True)
class SavedState:
    """What a state file says about itself (``blob``: the state's own safetensors bytes)."""

    name: str
    model: str
    source: str
    cell: str
    layers: int
    hidden: int
    vocab_size: int
    parameters: int
    signature: str
    text: str
    created: float
    blob: bytes = b""

    @property
    def shape(self) -> str:
        return f"{self.cell} {self.layers}x{self.hidden}"


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        shown = printable(repr(name), 40) if name else "nothing"
        raise SessionError(f"a state name is 1 to 64 letters, digits, '-' or '_' (like romeo-1), not {shown}")
    return name


def states_dir() -> Path:
    return paths.data_dir() / "states"


def state_path(name: str) -> Path:
    return states_dir() / (check_name(name) + SUFFIX)


def save(name: str, blob: bytes | None, info: SessionInfo, text: str) -> Path:
    """Write the state ``blob`` of the model ``info`` and the ``text`` it came from as NAME."""
    path = state_path(name)
    if blob is None:
        raise SessionError("this state cannot be saved (the engine gave no bytes for it)")
    if len(text) > MAX_TEXT:
        raise SessionError(f"the text of this state is {len(text):,} characters; at most {MAX_TEXT:,} can be kept "
                           "with a state (/reset, or /prime a shorter text)")
    meta = {"format": FORMAT, "model": info.name, "source": info.source, "cell": info.cell, "layers": info.layers,
            "hidden": info.hidden, "vocab_size": info.vocab_size, "parameters": info.parameters,
            "signature": info.signature, "text": text, "created": time.time()}
    data = with_metadata(blob, {KEY: json.dumps(meta, ensure_ascii=False)}, "the state")
    try:
        write_bytes(path, data)
    except RnnchatError as exc:
        raise SessionError(str(exc)) from None
    return path


def read(name: str) -> SavedState:
    """The state file NAME, checked (SessionError, one line, for anything wrong with it)."""
    path = state_path(name)
    try:
        data = read_regular(path, MAX_FILE, "state")
    except FileNotFoundError:
        known = ", ".join(saved_names()[:10]) or "none yet: /state save NAME"
        raise SessionError(f"there is no saved state {name!r} (saved states: {known})") from None
    except (RnnchatError, OSError) as exc:
        raise SessionError(f"cannot read state {name!r}: {printable(exc, 200)}") from None
    return parse(name, data)


def parse(name: str, data: bytes) -> SavedState:
    where = f"state {name!r}"
    try:
        meta, _, _ = split(data, where)
    except RnnchatError as exc:
        raise SessionError(str(exc)) from None
    if KEY not in meta:
        raise SessionError(f"{where} is not an rnnchat state (no {KEY} metadata)")
    try:
        fields = json.loads(meta[KEY])
    except (json.JSONDecodeError, RecursionError):
        raise SessionError(f"{where} is damaged: its metadata is not JSON") from None
    if not isinstance(fields, dict):
        raise SessionError(f"{where} is damaged: its metadata is not an object")

    def need(key: str, ok) -> object:
        value = fields.get(key)
        if not ok(value):
            raise SessionError(f"{where} is damaged: its field {key!r} is missing or out of range")
        return value

    need("format", lambda v: _int(v) and 1 <= v <= FORMAT)
    text_ok = {"model": 200, "source": 4096, "cell": 64, "signature": 200, "text": MAX_TEXT}
    texts = {k: need(k, lambda v, n=n: isinstance(v, str) and len(v) <= n) for k, n in text_ok.items()}
    ints = {k: need(k, lambda v, top=top: _int(v) and 0 <= v <= top) for k, top in _INTS.items()}
    created = need("created", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
    blob = with_metadata(data, {}, where)  # the state's own bytes, for the engine to check and restore
    return SavedState(name, **texts, **ints, created=float(created), blob=blob)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_model(saved: SavedState, info: SessionInfo) -> None:
    """A state of another model is a one-line error naming that model."""
    model = printable(saved.model, 80)
    if saved.source != info.source:
        raise SessionError(f"this state belongs to model {model} ({printable(saved.shape, 80)}); "
                           f"load {model} first (/model {printable(saved.source, 200)})")
    if saved.signature != info.signature:
        raise SessionError(f"this state belongs to another version of model {model} ({printable(saved.shape, 80)}, "
                           f"{saved.parameters:,} parameters); the one loaded is {info.cell} {info.layers}x{info.hidden}")


def saved_names() -> list[str]:
    """The names of the state files (not read), sorted."""
    folder = states_dir()
    if not folder.is_dir():
        return []
    stems = (p.name[:-len(SUFFIX)] for p in folder.iterdir() if p.name.endswith(SUFFIX))
    return sorted(s for s in stems if NAME.match(s))


def restore(name: str, engine, info: SessionInfo):
    """``(the engine's handle, SavedState)`` for the state file NAME on the loaded model; SessionError
    (one line) for a file that is not a state of exactly this model."""
    saved = read(name)
    check_model(saved, info)
    try:
        return engine.restore(saved.blob), saved
    except RnnchatError as exc:
        raise SessionError(f"state {name!r} does not fit this model: {printable(exc, 200)}") from None


def list_states() -> tuple[list[SavedState], list[tuple[str, str]]]:
    """Every saved state, newest first, and ``(name, why)`` for each file that cannot be read."""
    found, broken = [], []
    for stem in saved_names():
        try:
            found.append(read(stem))
        except SessionError as exc:
            broken.append((stem, str(exc)))
    return sorted(found, key=lambda s: -s.created), broken
