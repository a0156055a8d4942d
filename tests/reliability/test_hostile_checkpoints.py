"""Principle 1 (and 2's "validated and loaded from the same bytes") for checkpoints: every metadata
field is checked by type and range, and every dimension against the tensor shapes in the header,
before any model is built or any tensor allocated (issue 15)."""

import json
import math
import os
import struct

import pytest

from rnnchat.store.checkpoint_meta import read_header
from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.core.errors import CheckpointError
from tests.conftest import run_cli
from tests.reliability.hostile import rewrite_meta


@pytest.fixture
def no_big_build(monkeypatch):
    """Fail at once if a model bigger than the tiny test model is built on a real device (before the
    fix, the model was built from the metadata before the shapes were compared: 14 GB for hidden 30000)."""
    import torch

    from rnnchat.engine import model as model_mod

    real_init = model_mod.CharRNN.__init__

    def guarded(self, config, *args, **kwargs):
        if torch.get_default_device().type != "meta" and (config.hidden > 64 or config.layers > 8
                                                         or config.embedding > 64 or config.vocab_size > 500):
            raise AssertionError(f"a {config.layers}x{config.hidden} model was built before validation")
        return real_init(self, config, *args, **kwargs)

    monkeypatch.setattr(model_mod.CharRNN, "__init__", guarded)


@pytest.mark.parametrize("change", [
    {"hidden": 30000}, {"hidden": 10**6}, {"hidden": 10**9}, {"layers": 10**6}, {"layers": 3},
    {"layers": 1}, {"embedding": 5000}, {"embedding": 10**6},
], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_dimensions_are_checked_against_the_header_before_a_model_is_built(make_checkpoint, tmp_path, change,
                                                                          no_big_build):
    path = rewrite_meta(make_checkpoint(), tmp_path / "lie.safetensors", lambda m: m.update(change))
    with pytest.raises(CheckpointError) as info:
        read_header(path)  # the listings see it too, without torch
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_hidden_30000_through_the_cli_is_one_line(make_checkpoint, tmp_path):
    path = rewrite_meta(make_checkpoint(), tmp_path / "lie.safetensors", lambda m: m.update(hidden=30000))
    r = run_cli("generate", "-m", str(path), "--max-chars", "5", "hello", timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "hidden" in r.stderr


def _vocab(n):
    return [chr(0x10000 + i) for i in range(n)]


@pytest.mark.parametrize("field,value", [
    ("dropout", "abc"), ("dropout", None), ("dropout", float("nan")), ("dropout", 1.5), ("dropout", -0.1),
    ("dropout", True), ("hidden", True), ("hidden", -8), ("hidden", 8.0), ("layers", "2"), ("embedding", None),
    ("corpus", "tinyshakespeare"), ("corpus", {"name": 5}), ("corpus", ["a"]),
    ("val_loss", "abc"), ("val_loss", float("nan")), ("val_loss", float("inf")), ("val_loss", -1.0),
    ("cell_options", {"size": 10**12}), ("cell_options", {"x": [1, 2]}), ("cell_options", {"x": "y" * 5000}),
    ("cell_options", {f"o{i}": 1 for i in range(100)}), ("cell_options", {"bad key": 1}),
    ("cell_plugin", "evil; curl x | sh"), ("cell_plugin", 5), ("cell", "lstm\x1b]0;x\x07"), ("cell", ""),
    ("chat", {"template": 5}), ("chat", {"template": "{text}", "stop": "\n\n"}),
    ("chat", {"template": "{text}", "stop": [1]}), ("chat", {"template": "{text}" + "x" * 10000}),
    ("storage_dtype", "int8"), ("parameters", "many"), ("training", "fast"), ("format", 0), ("format", True),
    ("vocab", _vocab(70000)), ("vocab", [None]), ("vocab", []),
])
def test_every_metadata_field_is_checked_by_type_and_range(make_checkpoint, tmp_path, field, value, no_big_build):
    path = rewrite_meta(make_checkpoint(), tmp_path / "bad.safetensors", lambda m: m.update({field: value}))
    with pytest.raises(CheckpointError) as info:
        read_header(path)
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_good_optional_values_still_load(make_checkpoint, tmp_path):
    """The checks refuse what is wrong, not what is merely unusual."""
    path = rewrite_meta(make_checkpoint(), tmp_path / "ok.safetensors",
                        lambda m: m.update(val_loss=None, corpus=None, dropout=0, description="a model"))
    assert load_checkpoint(path).meta["dropout"] == 0.0
    meta = load_checkpoint(make_checkpoint(cell="rnn", name="relu", cell_options={"nonlinearity": "relu"})).meta
    assert meta["cell_options"] == {"nonlinearity": "relu"}


@pytest.mark.parametrize("entry", [
    {"dtype": "F32", "shape": [True, 4], "data_offsets": [0, 16]},
    {"dtype": "F32", "shape": [1] * 9 + [4], "data_offsets": [0, 16]},
    {"dtype": "F32", "shape": [4], "data_offsets": [False, 16]},
    {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]},
    {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]},
])
def test_hostile_tensor_entries(tmp_path, entry):
    meta = {"format": 1, "cell": "lstm", "cell_options": {}, "layers": 1, "hidden": 1, "embedding": 1, "vocab": ["a"]}
    raw = json.dumps({"__metadata__": {"rnnchat": json.dumps(meta)}, "w": entry}).encode()
    path = tmp_path / "entry.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    with pytest.raises(CheckpointError, match="malformed|does not match|past the end"):
        read_header(path)


def test_deeply_nested_metadata_is_one_error(make_checkpoint, tmp_path):
    path = rewrite_meta(make_checkpoint(), tmp_path / "deep.safetensors", raw_meta="[" * 100000 + "]" * 100000)
    with pytest.raises(CheckpointError, match="metadata"):
        read_header(path)


def test_checkpoint_is_validated_and_loaded_from_the_same_bytes(make_checkpoint, tmp_path, monkeypatch):
    """The file is swapped for another one right after its header was validated: what is loaded is
    still the file that was validated (before the fix, the tensors were read again by name)."""
    import torch

    from rnnchat.store import checkpoint_meta

    good = make_checkpoint()
    other = rewrite_meta(good, tmp_path / "other.safetensors",
                         tensors_change=lambda t: t.update({"head.bias": torch.full_like(t["head.bias"], 7.0)}))
    target = tmp_path / "model.safetensors"
    target.write_bytes(good.read_bytes())
    real_parse = checkpoint_meta.parse_meta

    def parse_then_swap(path, text):
        meta = real_parse(path, text)
        os.replace(other, target)
        return meta

    monkeypatch.setattr(checkpoint_meta, "parse_meta", parse_then_swap)
    loaded = load_checkpoint(target)
    assert not torch.all(loaded.model.head.bias == 7.0), "tensors came from a file that was not validated"
    assert math.isfinite(float(loaded.model.head.bias.detach().sum()))
