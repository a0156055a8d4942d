"""Checkpoints: one safetensors file, validated on load, never a pickle."""

import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from rnnchat.store.checkpoint_meta import read_header
from rnnchat.engine.checkpoint import load_checkpoint, save_checkpoint
from rnnchat.core.errors import CheckpointError


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_round_trip_keeps_weights_and_metadata(make_checkpoint, cell):
    path = make_checkpoint(cell)
    loaded = load_checkpoint(path)
    assert loaded.meta["cell"] == cell and loaded.meta["format"] == 1
    assert loaded.meta["vocab"] == loaded.vocab.chars
    for key in ("layers", "hidden", "embedding", "corpus", "val_loss", "chat", "parameters"):
        assert key in loaded.meta
    again = save_checkpoint(path.with_name("again.safetensors"), loaded.model, loaded.meta)
    other = load_checkpoint(again)
    for (k, a), (_, b) in zip(loaded.model.state_dict().items(), other.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_tensor_names_follow_pytorch_fused_layout(make_checkpoint):
    h = read_header(make_checkpoint("lstm", hidden=8, embedding=4, layers=2))
    V = len(h.meta["vocab"])
    shapes = {k: t.shape for k, t in h.tensors.items()}
    assert shapes["embedding.weight"] == (V, 4)
    assert shapes["layers.0.weight_ih"] == (32, 4)
    assert shapes["layers.1.weight_ih"] == (32, 8)
    assert shapes["layers.1.weight_hh"] == (32, 8)
    assert shapes["layers.0.bias_ih"] == shapes["layers.0.bias_hh"] == (32,)
    assert shapes["head.weight"] == (V, 8) and shapes["head.bias"] == (V,)


def test_fp16_storage_loads_as_fp32(make_checkpoint, tmp_path):
    loaded = load_checkpoint(make_checkpoint())
    path = save_checkpoint(tmp_path / "half.safetensors", loaded.model, loaded.meta, dtype="float16")
    assert read_header(path).tensors["head.weight"].dtype == "F16"
    half = load_checkpoint(path)
    assert half.model.head.weight.dtype == torch.float32
    torch.testing.assert_close(half.model.head.weight, loaded.model.head.weight, atol=1e-3, rtol=1e-3)


def test_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name in ("evil.safetensors", "evil.pt", "evil.bin"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(Evil(), protocol=4))
        with pytest.raises(CheckpointError, match="pickle"):
            load_checkpoint(path)
    torch.save({"x": torch.zeros(1)}, tmp_path / "zip.safetensors")
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "zip.safetensors")
    assert not marker.exists()


def test_truncated_file(make_checkpoint):
    path = make_checkpoint()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        load_checkpoint(path)
    path.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(path)


def test_corrupt_header(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 10)
    with pytest.raises(CheckpointError, match="not JSON"):
        load_checkpoint(path)
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(CheckpointError, match="out of range"):
        load_checkpoint(path)


def test_missing_and_malformed_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="no rnnchat metadata"):
        load_checkpoint(path)
    save_file({"x": torch.zeros(2)}, str(path), metadata={"rnnchat": "{broken"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    save_file({"x": torch.zeros(2)}, str(path), metadata={"rnnchat": json.dumps({"format": 1, "cell": "lstm"})})
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)


def test_shapes_that_disagree_with_metadata(make_checkpoint, tmp_path):
    loaded = load_checkpoint(make_checkpoint())
    meta = dict(loaded.meta, hidden=16)
    tensors = {k: v for k, v in loaded.model.state_dict().items()}
    path = tmp_path / "lying.safetensors"
    save_file(tensors, str(path), metadata={"rnnchat": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path)
    meta = dict(loaded.meta, vocab=loaded.meta["vocab"] + ["\u263a"])
    save_file(tensors, str(path), metadata={"rnnchat": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_checkpoint(path)


def test_cell_not_installed_names_cell_and_plugin(make_checkpoint, tmp_path):
    loaded = load_checkpoint(make_checkpoint())
    meta = dict(loaded.meta, cell="warpcell", cell_plugin="rnnchat-warp")
    path = tmp_path / "m.safetensors"
    save_file(dict(loaded.model.state_dict()), str(path), metadata={"rnnchat": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="'warpcell'.*rnnchat install rnnchat-warp"):
        load_checkpoint(path)


def test_nan_weights_refused(make_checkpoint, tmp_path):
    loaded = load_checkpoint(make_checkpoint())
    tensors = dict(loaded.model.state_dict())
    tensors["head.bias"] = torch.full_like(tensors["head.bias"], float("nan"))
    path = tmp_path / "nan.safetensors"
    save_file(tensors, str(path), metadata={"rnnchat": json.dumps(loaded.meta)})
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path)


def test_save_is_atomic_and_failure_keeps_old_file(make_checkpoint, monkeypatch):
    path = make_checkpoint()
    before = path.read_bytes()
    loaded = load_checkpoint(path)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rnnchat.engine.checkpoint.serialize", boom)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(path, loaded.model, loaded.meta)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if "tmp" in p.name] == []


def test_device_move(make_checkpoint):
    loaded = load_checkpoint(make_checkpoint(), device="cpu")
    assert next(loaded.model.parameters()).device.type == "cpu"
    if torch.cuda.is_available():
        gpu = load_checkpoint(loaded.path, device="cuda")
        assert next(gpu.model.parameters()).is_cuda


def test_loading_a_checkpoint_does_not_import_dynamo():
    """The shape check builds the model on the meta device; torch's normal_ there imported
    torch._dynamo (1.3 s and ~70 MB on every model load) until the embedding skipped it."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from rnnchat.engine.runtime import open_engine\n"
            "open_engine(None, None)\n"
            "print(sorted(m for m in sys.modules if m.startswith('torch._dynamo'))[:3])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
