"""Hint and description in a checkpoint's header: set without touching the weights; the bundled
and Tang models carry theirs, their tensors byte-identical to before the rewrite."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rnnchat.store.checkpoint_edit import set_meta
from rnnchat.store.checkpoint_meta import read_header
from rnnchat.core.errors import CheckpointError
from rnnchat.store.st_bytes import split

ROOT = Path(__file__).resolve().parents[1]
# sha256 of the data section (every tensor's bytes) of each file before its header was rewritten
BUNDLED = {ROOT / "rnnchat/default_plugins/models/shakespeare.safetensors":
           ("a line of a play, e.g. What news from Venice?",
            "629c496a276cc853069629a12fe6c01f1eeb35dce75a661f44cdc9100067d795"),
           ROOT / "plugins/rnnchat-tang/rnnchat_tang/tang-poems.safetensors":
           ("a poem title, e.g. 春望", "c3d5fe35a169fd933814871a991672343887a1d2ab244146e2b91fb131823265")}


def test_set_meta_changes_the_header_only(make_checkpoint):
    path = make_checkpoint()
    before = split(path.read_bytes())
    meta = set_meta(path, {"hint": "a name, e.g. ALICE:", "description": "Tiny."})
    after = split(path.read_bytes())
    assert after[2] == before[2] and after[1] == before[1]  # tensor entries and bytes unchanged
    assert meta["hint"] == read_header(path).meta["hint"] == "a name, e.g. ALICE:"
    set_meta(path, {"description": None})
    assert "description" not in read_header(path).meta
    with pytest.raises(CheckpointError, match="describes the weights"):
        set_meta(path, {"hidden": 16})


@pytest.mark.parametrize("path", sorted(BUNDLED), ids=lambda p: p.stem)
def test_bundled_models_carry_a_hint_and_the_same_weights(path):
    hint, sha = BUNDLED[path]
    header = read_header(path)
    assert header.meta["hint"] == hint and len(header.meta["description"]) <= 500
    assert hashlib.sha256(split(path.read_bytes())[2]).hexdigest() == sha
