"""A new run changes nothing before it is valid: --overwrite, the run lock, --out and memory checked
first; SIGTERM in every phase saves a resumable state (issues 13 and 15)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_TEXT, run_cli

pytestmark = pytest.mark.slow  # real trainings killed and signalled: run by .ci/run with -m slow

TINY = ["--hidden", "8", "--embedding", "4", "--layers", "1", "--seq-len", "32", "--batch-size", "4",
        "--precision", "fp32"]
ENV = {"RNNCHAT_THREADS": "1"}
HANG_LIMIT = 120  # seconds: only to catch a hang, never a timing assertion


def in_phase(tmp_path: Path, phase: str, pause: float, *args) -> subprocess.Popen:
    """``rnnchat train ARGS`` through tests/train/fault_runner.py with ``phase`` slowed down by ``pause``
    seconds per piece of work; returns once the run is in that phase."""
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "tests.train.fault_runner", "--pause-in", f"{phase}:{pause}", "--mark", str(marks),
           "--", "train", str(TINY_TEXT), *TINY, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **ENV))
    wait_for(marks / phase, proc)
    return proc


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + HANG_LIMIT
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"ended before {path.name}: {proc.returncode} {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"never reached {path.name}")
        time.sleep(0.05)


def files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.name != "lock"}


def test_a_failed_start_keeps_the_state_and_the_best_model(rnnchat_home, tmp_path):
    # issue 13's sequence: Ctrl+C in the final evaluation, then a typo in the next command
    run = rnnchat_home / "data" / "runs" / "zz"
    proc = in_phase(tmp_path, "evaluation", 0.5, "--steps", "4", "--eval-every", "2", "--name", "zz", "-q")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_LIMIT)
    assert proc.returncode == 130 and "--resume" in err, err
    before = files(run)
    assert {"state.safetensors", "best.safetensors"} <= set(before)

    r = run_cli("train", str(TINY_TEXT), *TINY, "--steps", "4", "--name", "zz", "--cell", "nosuch", env=ENV)
    assert r.returncode == 1 and "holds a" in r.stderr and "--overwrite" in r.stderr
    assert "--resume zz" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("train", str(TINY_TEXT), *TINY, "--steps", "4", "--name", "zz", "--cell", "nosuch",
                "--overwrite", env=ENV)
    assert r.returncode == 1 and "cell 'nosuch' is not installed" in r.stderr
    for bad in (["--batch-size", "100000", "--seq-len", "100000"], ["--out", "/dev/null"]):
        r = run_cli("train", str(TINY_TEXT), *TINY, "--steps", "4", "--name", "zz", "--overwrite", *bad, env=ENV)
        assert r.returncode != 0 and "Traceback" not in r.stderr
    assert files(run) == before
    r = run_cli("train", "--resume", "zz", "-q", env=ENV)
    assert r.returncode == 0, r.stderr
    assert (rnnchat_home / "data" / "models" / "zz.safetensors").exists()


def test_a_finished_run_or_model_needs_overwrite_and_then_starts_clean(rnnchat_home):
    from rnnchat.training.run_metrics import read_points, read_samples

    run = rnnchat_home / "data" / "runs" / "fin"
    args = (str(TINY_TEXT), *TINY, "--steps", "6", "--eval-every", "3", "--name", "fin", "-q")
    r = run_cli("train", *args, env=ENV)
    assert r.returncode == 0, r.stderr
    points = read_points(run)
    assert points[-1]["step"] == 6 and [p["step"] for p in points if p["val_loss"] is not None] == [3, 6]
    assert [s["step"] for s in read_samples(run)] == [3, 6]
    assert (run / "curve.png").read_bytes()[:4] == b"\x89PNG"

    r = run_cli("train", *args, env=ENV)
    assert r.returncode == 1 and "holds a finished run (6 steps)" in r.stderr and "--overwrite" in r.stderr
    model = rnnchat_home / "data" / "models" / "fin.safetensors"
    for p in run.iterdir():
        p.unlink()
    r = run_cli("train", *args, env=ENV)
    assert r.returncode == 1 and "a model named 'fin' already exists" in r.stderr
    stamp = model.stat().st_mtime_ns
    r = run_cli("train", *args[:-5], "--steps", "3", "--eval-every", "3", "--name", "fin", "-q", "--overwrite",
                env=ENV)
    assert r.returncode == 0, r.stderr
    assert model.stat().st_mtime_ns != stamp
    assert max(p["step"] for p in read_points(run)) == 3


def test_two_trainings_on_one_name_and_a_killed_holder(rnnchat_home, tmp_path):
    run = rnnchat_home / "data" / "runs" / "two"
    first = in_phase(tmp_path, "steps", 0.3, "--steps", "1000", "--eval-every", "2", "--name", "two", "-q")
    try:
        r = run_cli("train", str(TINY_TEXT), *TINY, "--steps", "5", "--name", "two", "--overwrite", env=ENV)
        assert r.returncode == 1, r.stderr
        assert f"is being trained by process {first.pid} on host" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        r = run_cli("train", "--resume", "two", "-q", env=ENV)
        assert r.returncode == 1 and f"process {first.pid}" in r.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=HANG_LIMIT)
    assert (run / "lock").exists()  # the file stays; the kernel released the lock with the process
    r = run_cli("train", "--resume", "two", "--stop-after", "4", "-q", env=ENV)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("phase", ["steps", "evaluation", "re-score", "save"])
def test_sigterm_in_each_phase_saves_a_resumable_state(rnnchat_home, tmp_path, phase):
    from rnnchat.engine.resume import read_state

    run = rnnchat_home / "data" / "runs" / "p"
    proc = in_phase(tmp_path, phase, 0.5, "--steps", "6", "--eval-every", "3", "--name", "p", "-q")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=HANG_LIMIT)  # the test's own timeout: a hang fails, time is not asserted
    assert proc.returncode == 130, err
    assert "state saved" in err and "--resume" in err and "Traceback" not in err
    meta, _, used, note = read_state(run / "state.safetensors")
    assert note is None and meta["progress"]["step"] >= 1
    assert not list(run.glob(".*rnnchat-tmp"))


@pytest.mark.parametrize("args,expected", [
    (["--out", "/dev/null"], "is not a regular file"),
    (["--out", "/nonexistent-folder/m.safetensors"], "does not exist"),
    (["--batch-size", "100000", "--seq-len", "100000"], "reduce --batch-size, --seq-len, --hidden or --layers"),
    (["--hidden", "16384", "--layers", "64"], "of memory and"),
    (["--budget", "5"], "write 5s or 5m"),
])
def test_refused_before_anything_is_built(rnnchat_home, args, expected):
    r = run_cli("train", str(TINY_TEXT), "--steps", "2", "--name", "o", *args, env=ENV)
    assert r.returncode != 0 and expected in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (rnnchat_home / "data" / "runs" / "o").exists()


def test_out_fifo_is_refused(rnnchat_home, tmp_path):
    fifo = tmp_path / "m.safetensors"
    os.mkfifo(fifo)
    r = run_cli("train", str(TINY_TEXT), *TINY, "--steps", "2", "--out", str(fifo), env=ENV)
    assert r.returncode == 1 and "is not a regular file" in r.stderr


def test_steps_and_budget_together_say_which_ends_the_run(rnnchat_home):
    r = run_cli("train", str(TINY_TEXT), *TINY, "--steps", "3", "--budget", "10m", "--name", "both", "-q",
                env=ENV)
    assert r.returncode == 0, r.stderr
    assert "note: the run ends after 3 steps or 600s, whichever comes first" in r.stderr
