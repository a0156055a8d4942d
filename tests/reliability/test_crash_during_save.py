"""kill -9 during a checkpoint save, at random moments: the file is always the old or the new one.

Also: disk full or a read-only folder while saving gives a clear error and keeps the previous file.
"""

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from rnnchat.engine.checkpoint import load_checkpoint, save_checkpoint
from rnnchat.core.errors import CheckpointError

pytestmark = pytest.mark.slow  # multi-process: run by .ci/run with -m slow (python -m pytest -m slow)

CHILD = textwrap.dedent("""
    import sys, torch
    from rnnchat.engine.checkpoint import load_checkpoint, save_checkpoint
    src, target = sys.argv[1], sys.argv[2]
    loaded = load_checkpoint(src)
    versions = []
    for fill in (1.0, 2.0):
        with torch.no_grad():
            loaded.model.head.bias.fill_(fill)
        versions.append({k: v.clone() for k, v in loaded.model.state_dict().items()})
    print("ready", flush=True)
    i = 0
    while True:
        loaded.model.load_state_dict(versions[i % 2])
        save_checkpoint(target, loaded.model, loaded.meta)
        i += 1
""")


def test_kill_9_during_save_twenty_times(make_checkpoint, tmp_path):
    src = make_checkpoint(hidden=64, layers=2, embedding=32)
    target = tmp_path / "live" / "model.safetensors"
    target.parent.mkdir()
    save_checkpoint(target, load_checkpoint(src).model, load_checkpoint(src).meta)
    rng = random.Random(1234)
    for _ in range(20):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(src), str(target)], stdout=subprocess.PIPE,
                                 text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        loaded = load_checkpoint(target)  # always a complete checkpoint
        bias = loaded.model.head.bias
        assert torch.all(bias == bias[0]), "a mix of two saves"
    # the next save cleans up temp files that killed processes left behind
    save_checkpoint(target, loaded.model, loaded.meta)
    leftovers = [p.name for p in target.parent.iterdir() if p.name != target.name]
    assert leftovers == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_disk_full_or_read_only_keeps_previous_file(make_checkpoint, monkeypatch, code):
    path = make_checkpoint()
    before = path.read_bytes()
    loaded = load_checkpoint(path)

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("rnnchat.engine.checkpoint.serialize", fail)
    with pytest.raises(CheckpointError, match=os.strerror(code)):
        save_checkpoint(path, loaded.model, loaded.meta)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_unwritable_folder_is_a_clear_error(make_checkpoint, tmp_path):
    loaded = load_checkpoint(make_checkpoint())
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.raises((CheckpointError, OSError)) as info:
        save_checkpoint(blocker / "model.safetensors", loaded.model, loaded.meta)
    assert "model.safetensors" in str(info.value) or "Not a directory" in str(info.value)
