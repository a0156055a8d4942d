"""Principle 4: writes are atomic through our own temp files, cleaned up at the next start; only a
regular file is ever replaced; every failure to write is one line and loses nothing (issue 15)."""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
from safetensors import SafetensorError

from rnnchat.core.atomic import TMP_SUFFIX, atomic_path, clean_stale, write_bytes
from rnnchat.core.errors import CheckpointError, RnnchatError
from tests.reliability.hostile import guarded_fifo


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_a_fifo_target_is_never_replaced(tmp_path):
    with guarded_fifo(tmp_path / "out.safetensors") as fifo:
        with pytest.raises(RnnchatError, match="FIFO") as info:
            write_bytes(fifo.path, b"data")
        assert isinstance(info.value, RnnchatError) and isinstance(info.value, OSError)
        assert fifo.path.is_fifo() and not fifo.opened
        assert leftovers(tmp_path, {"out.safetensors"}) == []


def test_a_link_to_a_device_is_never_replaced(tmp_path):
    """`--out /dev/null` as root would have replaced the system's /dev/null; a link to it stands in here."""
    link = tmp_path / "null.safetensors"
    link.symlink_to(os.devnull)
    with pytest.raises(RnnchatError, match="device"):
        write_bytes(link, b"data")
    assert link.is_symlink() and os.readlink(link) == os.devnull
    assert leftovers(tmp_path, {"null.safetensors"}) == []


def test_a_target_swapped_for_a_fifo_during_the_write_is_not_replaced(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(RnnchatError, match="FIFO"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new")
            target.unlink()
            os.mkfifo(target)
    assert target.is_fifo() and leftovers(tmp_path, {"model.safetensors"}) == []


def test_save_checkpoint_to_a_fifo_is_one_line(make_checkpoint, tmp_path):
    from rnnchat.engine.checkpoint import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(make_checkpoint())
    with guarded_fifo(tmp_path / "out.safetensors") as fifo:
        with pytest.raises(CheckpointError, match="not a regular file") as info:
            save_checkpoint(fifo.path, loaded.model, loaded.meta)
        assert "\n" not in str(info.value) and fifo.path.is_fifo()


def test_check_output_path(tmp_path):
    from rnnchat.core.atomic import WriteError, check_output_path

    ok = check_output_path(tmp_path / "new" / "deeper" / "model.safetensors")
    assert ok.name == "model.safetensors" and not (tmp_path / "new").exists()  # checks, creates nothing
    (tmp_path / "old.safetensors").write_bytes(b"x")
    check_output_path(tmp_path / "old.safetensors")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "null").symlink_to(os.devnull)
    (tmp_path / "file").write_text("x")
    for bad, why in ((tmp_path / "fifo", "FIFO"), (tmp_path / "null", "device"), (os.devnull, "device"),
                     (tmp_path / "file" / "model.safetensors", "director|folder"), (tmp_path, "folder")):
        with pytest.raises(WriteError, match=why):
            check_output_path(bad)
    with pytest.raises(WriteError, match="No space|free"):
        check_output_path(tmp_path / "big.safetensors", need_bytes=1 << 62)
    assert leftovers(tmp_path, {"old.safetensors", "fifo", "null", "file"}) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_output_path_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    from rnnchat.core.atomic import WriteError, check_output_path

    try:
        with pytest.raises(WriteError, match="ermission"):
            check_output_path(folder / "model.safetensors")
    finally:
        folder.chmod(0o700)


def test_stale_temp_files_of_dead_processes_are_cleaned_but_not_a_live_ones(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".model.safetensors.{dead.pid}.0123abcd{TMP_SUFFIX}"
        running = tmp_path / f".model.safetensors.{live.pid}.4567cdef{TMP_SUFFIX}"
        legacy = tmp_path / f".model.safetensors.k3j4h5{TMP_SUFFIX}"  # an older rnnchat's name, no pid
        library_old = tmp_path / ".tmpAb12Cd"  # safetensors' save_file left these before
        library_new = tmp_path / ".tmpXy34Zw"
        for p in (stale, running, legacy, library_old, library_new):
            p.write_bytes(b"partial")
        os.utime(library_old, (time.time() - 3600, time.time() - 3600))
        (tmp_path / ".hidden-user-file").write_text("keep")
        assert clean_stale(tmp_path) == 3
        assert leftovers(tmp_path, set()) == sorted([running.name, library_new.name, ".hidden-user-file"])
    finally:
        live.kill()
        live.wait()


def _fsize_limited(limit: int):
    """Run the block with file writes limited to ``limit`` bytes: a real EFBIG, as from a full disk."""
    class Limit:
        def __enter__(self):
            self.old = resource.getrlimit(resource.RLIMIT_FSIZE)
            self.handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, self.old[1]))

        def __exit__(self, *exc):
            resource.setrlimit(resource.RLIMIT_FSIZE, self.old)
            signal.signal(signal.SIGXFSZ, self.handler)
    return Limit()


def test_a_full_disk_during_a_checkpoint_save_is_one_line(make_checkpoint, tmp_path):
    from rnnchat.engine.checkpoint import load_checkpoint, save_checkpoint

    path = make_checkpoint()
    before = path.read_bytes()
    loaded = load_checkpoint(path)
    with _fsize_limited(1000), pytest.raises(CheckpointError, match="too large|space") as info:
        save_checkpoint(path, loaded.model, loaded.meta)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before and leftovers(path.parent, {path.name}) == []


def test_a_safetensors_error_during_a_save_is_one_line(make_checkpoint, monkeypatch):
    from rnnchat.engine.checkpoint import load_checkpoint, save_checkpoint

    path = make_checkpoint()
    loaded = load_checkpoint(path)

    def fail(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr("rnnchat.engine.checkpoint.serialize", fail)
    with pytest.raises(CheckpointError, match="could not save"):
        save_checkpoint(path, loaded.model, loaded.meta)


@pytest.fixture
def trainer(tiny_corpus, tmp_path):
    import torch

    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.train import TrainConfig, Trainer

    cfg = TrainConfig(layers=1, hidden=8, embedding=4, seq_len=8, batch_size=2, steps=1, eval_every=1000,
                      save_every=1000)
    return Trainer(cfg, load_corpus(tiny_corpus), tmp_path / "run", None, torch.device("cpu"))


def test_a_full_disk_during_a_state_save_is_one_line_and_leaves_no_temp_file(trainer, tmp_path):
    from rnnchat.engine.resume import read_state, save_state

    folder = tmp_path / "run"
    folder.mkdir()
    state = folder / "state.safetensors"
    save_state(state, trainer)
    before = state.read_bytes()
    with _fsize_limited(1000), pytest.raises(RnnchatError, match="could not save training state") as info:
        save_state(state, trainer)
    assert "\n" not in str(info.value)
    assert state.read_bytes() == before
    assert leftovers(folder, {"state.safetensors", "state.prev.safetensors"}) == []  # no .tmpXXXX of a library
    assert read_state(state)[1]


def _edit_state(path, change):
    from safetensors.torch import load, save

    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(json.loads(data[8:8 + n])["__metadata__"]["rnnchat_state"])
    change(meta)
    path.write_bytes(save(load(data), metadata={"rnnchat_state": json.dumps(meta)}))


@pytest.mark.parametrize("change", [
    lambda m: m.update(progress={"step": "abc"}), lambda m: m.update(progress=[1]),
    lambda m: m.update(corpus="tiny"), lambda m: m.update(corpus={"sha256": 5}),
    lambda m: m.update(param_groups="x"), lambda m: m.update(param_groups=[{"lr": "fast"}]),
    lambda m: m.update(config=None), lambda m: m.update(vocab=[1, 2]), lambda m: m.update(world_size="2"),
    lambda m: m.update(format=True), lambda m: m.update(progress={"step": -5}),
], ids=["step-str", "progress-list", "corpus-str", "sha-int", "groups-str", "lr-str", "config-null",
        "vocab-ints", "world-str", "format-bool", "step-negative"])
def test_a_state_with_wrong_types_falls_back_to_the_previous_one(trainer, tmp_path, change):
    from rnnchat.engine.resume import previous_path, read_state, save_state

    folder = tmp_path / "run"
    folder.mkdir()
    state = folder / "state.safetensors"
    save_state(state, trainer)
    save_state(state, trainer)  # the first save is kept as state.prev
    assert previous_path(state).exists()
    _edit_state(state, change)
    meta, tensors, used, note = read_state(state)
    assert used == previous_path(state) and "unreadable" in note
    assert isinstance(meta["progress"]["step"], int)
