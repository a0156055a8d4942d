"""Change a checkpoint's metadata in place, header only (torch-free): the tensor bytes stay
byte-identical. Used to give a checkpoint its ``hint`` and ``description`` after training:

    python -c "from rnnchat.store.checkpoint_edit import set_meta; set_meta('m.safetensors', {'hint': 'a title'})"

The file is validated before (``read_checkpoint``) and the new metadata after (``parse_meta``),
then written atomically: a refused change leaves the file as it was.
"""

from __future__ import annotations

import json
import os

from rnnchat.core.atomic import write_bytes
from rnnchat.store.checkpoint_fields import parse_meta
from rnnchat.store.checkpoint_meta import read_checkpoint
from rnnchat.core.errors import CheckpointError
from rnnchat.store.st_bytes import split, with_metadata


def set_meta(path: str | os.PathLike, changes: dict) -> dict:
    """Set (a value) or remove (None) these fields of the checkpoint's ``rnnchat`` metadata;
    returns the new metadata. CheckpointError (one line) for a file or value that is refused."""
    _, data = read_checkpoint(path)
    block, _, _ = split(data, str(path))
    meta = json.loads(block["rnnchat"])
    for key, value in changes.items():
        if key in ("format", "cell", "layers", "hidden", "embedding", "vocab"):
            raise CheckpointError(f"{path}: {key!r} describes the weights; it cannot be changed in the header")
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    text = json.dumps(meta, ensure_ascii=False)
    parse_meta(path, text)
    write_bytes(path, with_metadata(data, {**block, "rnnchat": text}, str(path)))
    return meta
