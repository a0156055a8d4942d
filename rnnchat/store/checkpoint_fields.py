"""Check every field of a checkpoint's ``rnnchat`` metadata by type and range (torch-free).

Nothing in a checkpoint is trusted: each field has a type, a range and a size
bound, and the model's dimensions must agree with the tensor shapes in the
file's header before anything is built. ``parse_meta`` raises CheckpointError
with one line naming the field.
"""

from __future__ import annotations

import json
import math
import re

from rnnchat.core.errors import CheckpointError

FORMAT_VERSION = 1
MAX_LAYERS = 256
MAX_WIDTH = 1 << 16  # hidden and embedding sizes
MAX_VOCAB = 1 << 16  # distinct characters
MAX_TEXT = 4096  # a free-text field (template, description, names)
MAX_OPTIONS = 32
MAX_STOPS = 16
REQUIRED = {"format": int, "cell": str, "cell_options": dict, "layers": int, "hidden": int,
            "embedding": int, "vocab": list}
# PEP 508 distribution names (what `pip install NAME` accepts as a bare name)
DIST_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]{0,98}[A-Za-z0-9])$")
CELL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
OPTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
DTYPES = ("float32", "float16", "bfloat16")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fail(path, key: str, why: str):
    raise CheckpointError(f"{path}: metadata field {key!r} {why}")


def parse_meta(path, text) -> dict:
    """The metadata as a dict whose every known field has been checked; CheckpointError otherwise."""
    if not isinstance(text, str) or len(text) > 16 * 1024 * 1024:
        raise CheckpointError(f"{path}: rnnchat metadata is not a JSON string")
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: rnnchat metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: rnnchat metadata is not an object")
    for key, kind in REQUIRED.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            _fail(path, key, f"is missing or not a {kind.__name__}")
    if meta["format"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} uses checkpoint format {meta['format']}; this rnnchat reads up to "
                              f"{FORMAT_VERSION}: upgrade rnnchat")
    if meta["format"] < 1:
        _fail(path, "format", "is out of range")
    if not CELL_NAME.match(meta["cell"]):
        _fail(path, "cell", "is not a cell name (letters, digits, '-', '_', '.'; at most 64)")
    _check_vocab(path, meta["vocab"])
    for key, top in (("layers", MAX_LAYERS), ("hidden", MAX_WIDTH), ("embedding", MAX_WIDTH)):
        if not 1 <= meta[key] <= top:
            _fail(path, key, f"is out of range (1 to {top})")
    _check_options(path, meta["cell_options"])
    _check_optional(path, meta)
    chat = meta.setdefault("chat", {"template": "{text}", "stop": ["\n\n"]})
    _check_chat(path, chat)
    return meta


def _check_vocab(path, vocab: list) -> None:
    if not 1 <= len(vocab) <= MAX_VOCAB:
        _fail(path, "vocab", f"has {len(vocab)} characters; 1 to {MAX_VOCAB} are allowed")
    if any(not isinstance(c, str) or len(c) != 1 for c in vocab) or len(set(vocab)) != len(vocab):
        raise CheckpointError(f"{path}: metadata vocabulary must be distinct single characters")


def _check_options(path, options: dict) -> None:
    if len(options) > MAX_OPTIONS:
        _fail(path, "cell_options", f"has more than {MAX_OPTIONS} options")
    for name, value in options.items():
        if not OPTION_NAME.match(name):
            _fail(path, "cell_options", "has an option name that is not an identifier")
        ok = (value is None or isinstance(value, bool) or (_is_int(value) and abs(value) <= 1 << 31)
              or (isinstance(value, float) and math.isfinite(value) and abs(value) <= 1e9)
              or (isinstance(value, str) and len(value) <= 256))
        if not ok:
            _fail(path, "cell_options", f"option {name!r} is not a bounded number, string, boolean or null")


def _check_optional(path, meta: dict) -> None:
    dropout = meta.get("dropout", 0.0)
    if not _is_number(dropout) or not 0.0 <= dropout < 1.0:
        _fail(path, "dropout", "must be a number from 0 up to 1")
    meta["dropout"] = float(dropout)
    for key in ("val_loss",):
        if meta.get(key) is not None and not (_is_number(meta[key]) and meta[key] >= 0):
            _fail(path, key, "must be a finite number >= 0 or null")
    if meta.get("parameters") is not None and not (_is_int(meta["parameters"]) and meta["parameters"] >= 0):
        _fail(path, "parameters", "must be a whole number >= 0")
    plugin = meta.get("cell_plugin")
    if plugin is not None and not (isinstance(plugin, str) and DIST_NAME.match(plugin)):
        _fail(path, "cell_plugin", "is not a distribution name")
    if meta.get("storage_dtype") is not None and meta["storage_dtype"] not in DTYPES:
        _fail(path, "storage_dtype", f"must be one of {', '.join(DTYPES)}")
    corpus = meta.get("corpus")
    if corpus is not None:
        if not isinstance(corpus, dict):
            _fail(path, "corpus", "must be an object with a name and a sha256")
        for key in ("name", "sha256", "path"):
            value = corpus.get(key)
            if value is not None and not (isinstance(value, str) and len(value) <= MAX_TEXT):
                _fail(path, "corpus", f"has a {key} that is not a string")
    for key in ("hint", "description"):
        why = display_problem(key, meta.get(key))
        if why:
            _fail(path, key, why)
    for key in ("training", "val_loss_method"):
        value = meta.get(key)
        if key == "training" and value is not None and not isinstance(value, dict):
            _fail(path, key, "must be an object")
        if key != "training" and value is not None and not (isinstance(value, str) and len(value) <= MAX_TEXT):
            _fail(path, key, f"must be a string of at most {MAX_TEXT} characters")


def _check_chat(path, chat) -> None:
    if not isinstance(chat, dict):
        raise CheckpointError(f"{path}: chat template must be a string containing {{text}}")
    template = chat.get("template", "{text}")
    if not isinstance(template, str) or "{text}" not in template or len(template) > MAX_TEXT:
        raise CheckpointError(f"{path}: chat template must be a string containing {{text}}")
    stop = chat.get("stop", [])
    if not isinstance(stop, list) or len(stop) > MAX_STOPS or \
            any(not isinstance(s, str) or len(s) > 256 for s in stop):
        _fail(path, "chat.stop", f"must be a list of at most {MAX_STOPS} strings")


def check_shapes(path, meta: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    """The dimensions in ``meta`` against the tensor shapes in the header, before any model is built:
    the embedding and head fix vocabulary, embedding and hidden sizes; the ``layers.N.`` tensors fix
    the number of layers."""
    v, e, h = len(meta["vocab"]), meta["embedding"], meta["hidden"]
    want = {"embedding.weight": (v, e), "head.weight": (v, h), "head.bias": (v,)}
    for name, shape in want.items():
        if name not in shapes:
            raise CheckpointError(f"{path}: tensor {name} is missing")
        if tuple(shapes[name]) != shape:
            raise CheckpointError(f"{path}: tensor {name} has shape {list(shapes[name])}, but the metadata "
                                  f"(vocabulary {v}, embedding {e}, hidden {h}) implies {list(shape)}")
    found = set()
    for name in shapes:
        m = re.match(r"^layers\.(\d{1,6})\.", name)
        if m:
            found.add(int(m.group(1)))
    if found != set(range(meta["layers"])):
        raise CheckpointError(f"{path}: the metadata says {meta['layers']} layers, but the file holds tensors "
                              f"for {len(found)} layer(s)")


# ---- texts shown in the chat, the model picker and ``rnnchat models``: ``hint`` (one line: what
# to type, e.g. the Tang model's "a poem title, e.g. 春望") and ``description`` (a paragraph).
# ``parse_meta`` refuses a checkpoint whose field breaks these rules (``display_problem``);
# callers show them through ``rnnchat.core.safe_text`` (printable / markup_safe), never raw.
DISPLAY_LIMITS = {"hint": 80, "description": 500}
LINE_BREAKS = "\r\n\x85\u2028\u2029\x0b\x0c"


def display_problem(name: str, value: object) -> str | None:
    """Why ``value`` cannot be the checkpoint's ``name`` (None: it can, or it is absent)."""
    if value is None:
        return None
    limit = DISPLAY_LIMITS[name]
    if not isinstance(value, str) or len(value) > limit:
        return f"must be a string of at most {limit} characters"
    if name == "hint" and any(c in value for c in LINE_BREAKS):
        return "must be one line"
    return None


def text_field(meta: object, name: str) -> str | None:
    """``meta[name]`` when it is a usable text (stripped; a description's line breaks as spaces), else None."""
    if not isinstance(meta, dict) or name not in DISPLAY_LIMITS:
        return None
    value = meta.get(name)
    if value is None or display_problem(name, value):
        return None
    value = " ".join(value.split()) if name == "description" else value.strip()
    return value or None
