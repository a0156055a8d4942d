"""Untrusted checkpoint files: each fault is one clear error, bounded memory, no traceback, nothing executed."""

import json
import pickle
import struct

import pytest
from safetensors.torch import save_file

from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.core.errors import CheckpointError
from tests.conftest import run_cli


def header_file(path, header: dict, body: bytes = b""):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


def good_parts(make_checkpoint):
    loaded = load_checkpoint(make_checkpoint())
    return loaded, {k: v.contiguous() for k, v in loaded.model.state_dict().items()}


@pytest.mark.parametrize("name", ["model.safetensors", "model.pt", "model.ckpt", "weights"])
def test_pickle_under_any_name_is_refused_never_run(tmp_path, name):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / name
    path.write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    r = run_cli("inspect", str(path))
    assert r.returncode == 1 and "pickle" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()


def test_huge_header_length_is_refused_without_reading(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{" + b" " * 100)
    with pytest.raises(CheckpointError, match="out of range"):
        load_checkpoint(path)


def test_header_longer_than_file(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", 5000) + b"{}")
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_lying_header_shape_bigger_than_data(tmp_path):
    h = {"__metadata__": {"rnnchat": "{}"}, "w": {"dtype": "F32", "shape": [1000000, 1000000],
                                                  "data_offsets": [0, 16]}}
    with pytest.raises(CheckpointError, match="size does not match"):
        load_checkpoint(header_file(tmp_path / "lie.safetensors", h, b"\0" * 16))


def test_out_of_range_offsets(tmp_path):
    h = {"__metadata__": {"rnnchat": "{}"}, "w": {"dtype": "F32", "shape": [4], "data_offsets": [2**40, 2**40 + 16]}}
    with pytest.raises(CheckpointError, match="past the end"):
        load_checkpoint(header_file(tmp_path / "oor.safetensors", h, b"\0" * 16))


def test_overlapping_offsets(tmp_path):
    h = {"__metadata__": {"rnnchat": "{}"},
         "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
         "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
    with pytest.raises(CheckpointError, match="overlap"):
        load_checkpoint(header_file(tmp_path / "overlap.safetensors", h, b"\0" * 24))


def test_malformed_tensor_entries(tmp_path):
    for entry in ({"dtype": "F99", "shape": [1], "data_offsets": [0, 4]},
                  {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]},
                  {"dtype": "F32", "shape": [1]},
                  "not a dict"):
        h = {"__metadata__": {"rnnchat": "{}"}, "w": entry}
        with pytest.raises(CheckpointError, match="malformed"):
            load_checkpoint(header_file(tmp_path / "m.safetensors", h, b"\0" * 4))


def test_truncated_body(make_checkpoint):
    path = make_checkpoint()
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 9):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            load_checkpoint(path)


@pytest.mark.parametrize("change,pattern", [
    (lambda m: m.pop("vocab"), "'vocab'"),
    (lambda m: m.update(layers="two"), "'layers'"),
    (lambda m: m.update(format=99), "upgrade rnnchat"),
    (lambda m: m.update(vocab=["ab", "c"]), "single characters"),
    (lambda m: m.update(vocab=["a", "a"]), "distinct"),
    (lambda m: m.update(hidden=0), "out of range"),
    (lambda m: m.update(chat={"template": "no placeholder"}), "{text}"),
    (lambda m: m.update(cell="nonexistent"), "not installed"),
])
def test_wrong_metadata(make_checkpoint, tmp_path, change, pattern):
    loaded, tensors = good_parts(make_checkpoint)
    meta = json.loads(json.dumps(loaded.meta))
    change(meta)
    path = tmp_path / "meta.safetensors"
    save_file(tensors, str(path), metadata={"rnnchat": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=pattern.replace("{", r"\{").replace("}", r"\}")):
        load_checkpoint(path)


def test_vocabulary_that_disagrees_with_tensor_shapes(make_checkpoint, tmp_path):
    loaded, tensors = good_parts(make_checkpoint)
    meta = dict(loaded.meta, vocab=loaded.meta["vocab"][:-3])
    path = tmp_path / "vocab.safetensors"
    save_file(tensors, str(path), metadata={"rnnchat": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_checkpoint(path)


def test_missing_tensor(make_checkpoint, tmp_path):
    loaded, tensors = good_parts(make_checkpoint)
    del tensors["head.bias"]
    path = tmp_path / "missing.safetensors"
    save_file(tensors, str(path), metadata={"rnnchat": json.dumps(loaded.meta)})
    with pytest.raises(CheckpointError, match="head.bias"):
        load_checkpoint(path)


def test_plugin_supplied_checkpoint_goes_through_the_same_validation(tmp_path, monkeypatch):
    from tests import fakeplugins as fp

    site = tmp_path / "site"
    site.mkdir()
    bad = tmp_path / "plugin-model.safetensors"
    bad.write_bytes(pickle.dumps({"x": 1}))
    fp.make_plugin(site, "badmodel", f"""
        from rnnchat.plugins import CheckpointSpec, hookimpl

        @hookimpl
        def register_checkpoints(register):
            register(CheckpointSpec("badmodel", {str(bad)!r}, "a pickle in disguise"))
    """)
    monkeypatch.syspath_prepend(str(site))
    from rnnchat.plugins.manager import get_host

    get_host(reload=True)
    from rnnchat.engine.runtime import open_engine

    with pytest.raises(CheckpointError, match="pickle"):
        open_engine("badmodel", "cpu")
    from rnnchat.commands.info import model_rows

    row = next(r for r in model_rows() if r["name"] == "badmodel")
    assert "pickle" in row["error"]


def test_memory_stays_bounded_on_hostile_headers(tmp_path):
    import resource

    hostile = [
        (struct.pack("<Q", 2**62) + b"{}"),  # huge header length
        header_file(tmp_path / "a", {"__metadata__": {"rnnchat": "{}"},
                                     "w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}},
                    b"\0" * 16).read_bytes(),  # a terabyte tensor claimed in a 16-byte body
    ]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i, data in enumerate(hostile):
        path = tmp_path / f"hostile{i}.safetensors"
        path.write_bytes(data)
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB: nothing was allocated for them
