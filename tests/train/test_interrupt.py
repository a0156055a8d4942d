"""Ctrl+C and SIGTERM save and exit cleanly; kill -9 at any moment leaves a state that resumes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_TEXT, run_cli

TINY = ["--hidden", "8", "--embedding", "4", "--layers", "1", "--seq-len", "32", "--batch-size", "4", "-q"]
ENV = {"RNNCHAT_THREADS": "1"}


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rnnchat", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **ENV))


def saved_step(run: Path) -> int:
    from rnnchat.engine.resume import peek_state

    meta = peek_state(run / "state.safetensors")
    return meta["progress"]["step"] if meta else -1


def wait_for_step(proc: subprocess.Popen, run: Path, above: int, timeout: float = 180) -> int:
    """Poll until the run's saved state is past ``above`` (hang detection only, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = saved_step(run)
        if step > above:
            return step
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.returncode} {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("training made no progress")


@pytest.mark.slow  # real processes, 5-10 s: run by .ci/run's second call (-m slow)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_saves_state_and_exits_cleanly(rnnchat_home, sig):
    run = rnnchat_home / "data" / "runs" / "s"
    proc = start(str(TINY_TEXT), *TINY, "--steps", "100000", "--eval-every", "5", "--name", "s")
    wait_for_step(proc, run, 0)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err
    assert "Traceback" not in err
    from rnnchat.engine.resume import read_state

    meta, _, used, note = read_state(run / "state.safetensors")
    assert note is None and used.name == "state.safetensors"
    step = meta["progress"]["step"]
    assert step >= 5
    assert not list(run.glob("*.rnnchat-tmp"))
    r = run_cli("train", "--resume", "s", "--stop-after", str(step + 2), "-q", env=ENV)
    assert r.returncode == 0, r.stderr
    assert f"stopped after step {step + 2}" in r.stderr


@pytest.mark.slow  # kills real processes: run by .ci/run with -m slow
def test_kill_9_at_any_moment_leaves_a_loadable_state(rnnchat_home):
    from rnnchat.engine.resume import read_state

    run = rnnchat_home / "data" / "runs" / "k"
    rng = random.Random(7)
    step = 0
    for cycle in range(3):
        args = ("--resume", "k", "-q") if cycle else (str(TINY_TEXT), *TINY, "--steps", "100000",
                                                       "--eval-every", "1", "--name", "k")
        proc = start(*args)
        step = wait_for_step(proc, run, step)
        time.sleep(rng.uniform(0.0, 0.3))  # a state is written every step: this lands anywhere in a save
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        meta, tensors, used, note = read_state(run / "state.safetensors")
        assert meta["progress"]["step"] >= step - 1
        step = meta["progress"]["step"]
    r = run_cli("train", "--resume", "k", "--stop-after", str(step + 3), "-q", env=ENV)
    assert r.returncode == 0, r.stderr
    assert not list(run.glob(".*rnnchat-tmp"))  # temp files of a killed save are cleaned on resume
    assert saved_step(run) == step + 3


@pytest.mark.slow  # a real process or a training run: 4-6 s
def test_resume_skips_an_incomplete_state_and_says_so(tmp_path, rnnchat_home):
    from tests.train.helpers import make_trainer

    run = rnnchat_home / "data" / "runs" / "r"
    make_trainer(TINY_TEXT, run, steps=20, stop_after=14).run()  # saves at 7, 14 (and 14 again at stop)
    state = run / "state.safetensors"
    prev = run / "state.prev.safetensors"
    assert prev.exists()
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])  # as a copy cut short would leave it
    (run / ".state.safetensors.x1.rnnchat-tmp").write_bytes(b"half a save")
    r = run_cli("train", "--resume", "r", "-q", env=ENV)
    assert r.returncode == 0, r.stderr
    assert "note: state.safetensors is unreadable" in r.stderr and "state.prev.safetensors" in r.stderr
    assert saved_step(run) == 20
    assert not list(run.glob(".*rnnchat-tmp"))


def test_resume_with_no_readable_state_is_one_clear_error(rnnchat_home):
    run = rnnchat_home / "data" / "runs" / "z"
    run.mkdir(parents=True)
    (run / "state.safetensors").write_bytes(b"\x00" * 100)
    r = run_cli("train", "--resume", "z")
    assert r.returncode == 1
    assert r.stderr.startswith("error: training state") and "start a new run" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("train", "--resume", "nothing-here")
    assert r.returncode == 1 and "no run 'nothing-here' to resume" in r.stderr


@pytest.mark.slow  # real processes, 5-10 s: run by .ci/run's second call (-m slow)
def test_a_new_run_does_not_overwrite_an_unfinished_one(rnnchat_home, tiny_corpus):
    args = ("train", str(tiny_corpus), *TINY, "--steps", "20", "--name", "u")
    r = run_cli(*args, "--stop-after", "3", env=ENV)
    assert r.returncode == 0, r.stderr
    r = run_cli(*args, env=ENV)
    assert r.returncode == 1
    assert "holds an unfinished run (step 3 of 20)" in r.stderr and "--overwrite" in r.stderr
    r = run_cli(*args, "--overwrite", env=ENV)
    assert r.returncode == 0, r.stderr
