"""Training faults end to end: kill -9 then resume equals an uninterrupted run, bit for bit;
after a rank dies, rank 0's last checkpoint and state still load."""

import pytest

import os
import random
import signal
import subprocess
import sys
import time

from rnnchat.core import paths
from tests.conftest import TINY_TEXT, run_cli
from tests.train.helpers import assert_same_tensors, state_tensors
from tests.train.test_distributed import TINY, torchrun

pytestmark = pytest.mark.slow  # multi-process: run by .ci/run with -m slow (python -m pytest -m slow)

ARGS = [str(TINY_TEXT), "--hidden", "8", "--embedding", "4", "--layers", "2", "--seq-len", "16",
        "--batch-size", "4", "--dropout", "0.2", "--steps", "400", "--eval-every", "7", "--precision", "fp32", "-q"]


ONE_THREAD = {"RNNCHAT_THREADS": "1"}  # a hidden-8 model gains nothing from a second thread, and loses much under load


def _saved_step(run_dir) -> int:
    try:
        return state_tensors(run_dir)[0]["progress"]["step"]
    except Exception:  # not written yet (or being replaced): no step to report
        return 0


def test_kill_9_mid_run_then_resume_equals_uninterrupted():
    r = run_cli("train", *ARGS, "--name", "whole", env=ONE_THREAD, timeout=600)
    assert r.returncode == 0, r.stderr
    env_cmd = [sys.executable, "-m", "rnnchat", "train", *ARGS, "--name", "killed"]
    run = paths.runs_dir() / "killed"
    child = subprocess.Popen(env_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, **ONE_THREAD))
    deadline = time.monotonic() + 240
    while _saved_step(run) == 0 and child.poll() is None and time.monotonic() < deadline:  # past the step-0 state
        time.sleep(0.05)
    time.sleep(random.Random(7).uniform(0.0, 0.5))
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = state_tensors(paths.runs_dir() / "killed")[0]["progress"]["step"]
    assert 0 < killed_at < 400
    r = run_cli("train", "--resume", "killed", "-q", env=ONE_THREAD, timeout=600)
    assert r.returncode == 0, r.stderr
    whole_meta, whole = state_tensors(paths.runs_dir() / "whole")
    killed_meta, killed = state_tensors(paths.runs_dir() / "killed")
    assert killed_meta["progress"]["step"] == whole_meta["progress"]["step"] == 400
    assert_same_tensors(whole, killed)


def test_rank_0_checkpoint_loads_after_another_rank_dies():
    r = torchrun(str(TINY_TEXT), *TINY, "--name", "dies", "-q", hooks=("--fail-rank", "1:8:exit"))
    assert r.returncode != 0
    from rnnchat.engine.checkpoint import load_checkpoint

    run = paths.runs_dir() / "dies"
    loaded = load_checkpoint(run / "best.safetensors")  # written by rank 0 at step 5
    assert loaded.meta["training"]["step"] == 5
    meta, _ = state_tensors(run)
    assert meta["progress"]["step"] >= 5
