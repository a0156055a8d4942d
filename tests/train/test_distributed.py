"""torchrun with two CPU processes (gloo): identical weights on both ranks, only rank 0 writes, and a
rank that fails stops the others within a bounded time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import TINY_TEXT

pytestmark = pytest.mark.slow  # multi-process: run by .ci/run with -m slow (python -m pytest -m slow)

TINY = ["--hidden", "8", "--embedding", "4", "--layers", "2", "--seq-len", "32", "--batch-size", "4",
        "--dropout", "0", "--steps", "20", "--eval-every", "5", "--precision", "fp32"]
HANG_LIMIT = 240  # seconds: only to catch a hang, never a timing assertion


def torchrun(*args, env=None, timeout=HANG_LIMIT, hooks=()):
    """``hooks``: options of tests/train/fault_runner.py (injected failures, checksums)."""
    entry = ["-m", "tests.train.fault_runner", *hooks, "--"] if hooks else ["-m", "rnnchat"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *entry, "train", *args]
    full = dict(os.environ, RNNCHAT_THREADS="1", RNNCHAT_DIST_TIMEOUT="60", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=timeout)


def test_two_ranks_end_with_identical_weights_and_only_rank_0_writes(tmp_path, rnnchat_home):
    import torch

    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.train import Trainer, config_from_dict, weights_sha256
    from tests.train.helpers import state_tensors

    sums = tmp_path / "sums"
    r = torchrun(str(TINY_TEXT), *TINY, "--name", "ddp", hooks=("--checksum-dir", str(sums)))
    assert r.returncode == 0, r.stderr[-3000:]
    rank0, rank1 = (sums / "rank0.sha256").read_text(), (sums / "rank1.sha256").read_text()
    assert rank0 == rank1

    # rank 0 alone wrote the run and printed: one start line, one "saved" line
    run = rnnchat_home / "data" / "runs" / "ddp"
    assert sorted(p.name for p in run.iterdir()) == ["best.safetensors", "curve.png", "lock", "metrics.jsonl",
                                                     "samples.jsonl", "state.prev.safetensors",
                                                     "state.safetensors"]
    assert r.stdout.count("saved ") == 1 and r.stderr.count("training lstm") == 1
    meta, tensors = state_tensors(run)
    assert meta["world_size"] == 2
    trainer_cfg = config_from_dict(meta["config"])
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}

    # the saved weights are rank 1's weights too
    corpus = load_corpus(TINY_TEXT)
    one = Trainer(config_from_dict(dict(meta["config"], batch_size=8)), corpus, tmp_path / "one", None,
                  torch.device("cpu"))
    one.model.load_state_dict(model_state)
    assert weights_sha256(one.model) == rank1

    # each rank read its own streams: 2 ranks x 4 streams train like 1 process x 8 streams
    fresh = Trainer(config_from_dict(dict(meta["config"], batch_size=8)), corpus, tmp_path / "solo", None,
                    torch.device("cpu"))
    assert trainer_cfg.batch_size == 4
    fresh.run()
    for name, value in fresh.model.state_dict().items():
        torch.testing.assert_close(model_state[name], value, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_a_failing_rank_makes_the_others_exit_with_an_error(rnnchat_home, how):
    spec = "1:3" if how == "raise" else "1:3:exit"
    r = torchrun(str(TINY_TEXT), *TINY, "--name", "f", "-q", hooks=("--fail-rank", spec))
    assert r.returncode != 0
    if how == "raise":
        assert "rank 1: failure injected at step 3" in r.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_peer_that_dies_outside_torchrun_stops_rank_0_with_one_line(rnnchat_home):
    # on several machines no single torchrun sees every process: rank 0 must notice a dead peer by itself
    base = dict(os.environ, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
                RNNCHAT_THREADS="1", RNNCHAT_DIST_TIMEOUT="60")
    procs = [subprocess.Popen([sys.executable, "-m", "tests.train.fault_runner", "--fail-rank", "1:3:exit", "--",
                               "train", str(TINY_TEXT), *TINY, "--name", "p", "-q"],
                              env=dict(base, RANK=str(r), LOCAL_RANK=str(r)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        out0, err0 = procs[0].communicate(timeout=HANG_LIMIT)
        procs[1].communicate(timeout=HANG_LIMIT)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[1].returncode == 3
    assert procs[0].returncode == 1, err0
    assert "rank 0: training stopped: another process failed" in err0
    assert "Traceback" not in err0 and len(err0.strip().splitlines()) == 1


def test_two_ranks_stopped_and_resumed_equal_an_uninterrupted_two_rank_run(rnnchat_home):
    # rank 0 gathers both ranks' carried state into the resume state and sends the state back to rank 1
    from tests.train.helpers import assert_same_tensors, state_tensors

    args = (str(TINY_TEXT), *TINY, "--dropout", "0.2", "-q")
    r = torchrun(*args, "--name", "whole")
    assert r.returncode == 0, r.stderr[-3000:]
    r = torchrun(*args, "--name", "parts", "--stop-after", "8")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("stopped after step 8") == 1
    r = torchrun("--resume", "parts", "-q")
    assert r.returncode == 0, r.stderr[-3000:]
    runs = rnnchat_home / "data" / "runs"
    _, whole = state_tensors(runs / "whole")
    _, parts = state_tensors(runs / "parts")
    assert whole["hidden.0"].shape[0] == 8  # 2 ranks x 4 streams
    assert_same_tensors(whole, parts)


@pytest.mark.parametrize("timeout, expected", [("2", "could not join the other training processes"),
                                               ("soon", "RNNCHAT_DIST_TIMEOUT must be a number of seconds")])
def test_a_rank_whose_peers_never_come_stops_with_one_line(rnnchat_home, timeout, expected):
    env = dict(os.environ, WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(free_port()), RNNCHAT_THREADS="1", RNNCHAT_DIST_TIMEOUT=timeout)
    r = subprocess.run([sys.executable, "-m", "rnnchat", "train", str(TINY_TEXT), *TINY, "--name", "alone", "-q"],
                       env=env, capture_output=True, text=True, timeout=HANG_LIMIT)
    assert r.returncode == 1
    assert expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (rnnchat_home / "data" / "runs" / "alone").exists()


def test_two_ranks_with_a_time_budget_end_together(rnnchat_home):
    # each rank measures its own costs; they agree on them, so both end the steps on the same step
    args = [a for a in TINY if a not in ("--steps", "20")]
    r = torchrun(str(TINY_TEXT), *args, "--budget", "6s", "--name", "b", "-q")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("saved ") == 1
