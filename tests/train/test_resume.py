"""Exact resume: stopping after k steps and resuming to N gives the very tensors of an uninterrupted run."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_TEXT, run_cli
from tests.train.helpers import assert_same_tensors, make_trainer, resume_trainer, state_tensors

ONE_THREAD = {"RNNCHAT_THREADS": "1"}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.mark.parametrize("carry_state,k", [(True, 17), (True, 24), (False, 13)])
def test_stop_at_k_and_resume_equals_uninterrupted(tmp_path, carry_state, k):
    # dropout on, a warmup + cosine schedule, evaluations and saves between, a pass over the text ending at
    # step 24 (8 streams of 787 characters, windows of 32): weights, Adam moments, RNG streams, carried
    # state and data position must all come back exactly.
    full = make_trainer(TINY_TEXT, tmp_path / "full", carry_state=carry_state)
    full.run()
    assert full.stopped is None and full.progress.step == 40

    part = make_trainer(TINY_TEXT, tmp_path / "part", stop_after=k, carry_state=carry_state)
    part.run()
    assert part.stopped == "stop-after" and part.progress.step == k
    resumed = resume_trainer(TINY_TEXT, tmp_path / "part", carry_state=carry_state)
    assert resumed.progress.step == k
    resumed.run()

    meta_a, a = state_tensors(tmp_path / "full")
    meta_b, b = state_tensors(tmp_path / "part")
    assert any(key.startswith("opt.") for key in a) and "rng.torch" in a
    assert carry_state == any(key.startswith("hidden.") for key in a)
    assert_same_tensors(a, b)
    for key in ("step", "chars", "epoch", "window", "offset", "best_val"):
        assert meta_a["progress"][key] == meta_b["progress"][key], key
    if carry_state:
        assert meta_a["progress"]["epoch"] >= 2  # the run crossed a pass boundary


def test_resume_twice_in_a_row(tmp_path):
    full = make_trainer(TINY_TEXT, tmp_path / "full", steps=30)
    full.run()
    for stop in (9, 20):
        (resume_trainer if stop != 9 else make_trainer)(TINY_TEXT, tmp_path / "part", stop_after=stop,
                                                        steps=30).run()
    resume_trainer(TINY_TEXT, tmp_path / "part", steps=30).run()
    assert_same_tensors(state_tensors(tmp_path / "full")[1], state_tensors(tmp_path / "part")[1])


@pytest.mark.slow  # real processes, 5-10 s: run by .ci/run's second call (-m slow)
def test_cli_stop_after_then_resume_equals_uninterrupted(tmp_path, tiny_corpus):
    common = ["--hidden", "8", "--embedding", "4", "--layers", "2", "--dropout", "0.2", "--seq-len", "32",
              "--batch-size", "8", "--steps", "30", "--eval-every", "10", "-q"]
    r = run_cli("train", str(tiny_corpus), *common, "--name", "full", env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    r = run_cli("train", str(tiny_corpus), *common, "--name", "part", "--stop-after", "13", env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    assert "stopped after step 13" in r.stderr and "--resume" in r.stderr
    r = run_cli("train", "--resume", "part", "-q", env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    assert "saved" in r.stdout
    from rnnchat.core import paths

    assert_same_tensors(state_tensors(paths.runs_dir() / "full")[1], state_tensors(paths.runs_dir() / "part")[1])


def test_a_state_from_before_carried_state_still_resumes(tmp_path):
    # format 1 (the first release): no hidden.* tensors, no carry_state in the config, no stream position
    import json

    from safetensors.torch import save_file

    from rnnchat.engine.resume import read_state
    from rnnchat.engine.train import config_from_dict

    make_trainer(TINY_TEXT, tmp_path / "old", stop_after=7, carry_state=False).run()
    path = tmp_path / "old" / "state.safetensors"
    meta, tensors, _, _ = read_state(path)
    meta["format"] = 1
    del meta["config"]["carry_state"]
    for key in ("epoch", "window", "offset", "streams"):
        del meta["progress"][key]
    save_file(tensors, str(path), metadata={"rnnchat_state": json.dumps(meta)})

    meta, tensors, _, _ = read_state(path)
    cfg = config_from_dict(meta["config"])
    assert cfg.carry_state is False  # old runs read random windows, and go on doing so
    resumed = resume_trainer(TINY_TEXT, tmp_path / "old", carry_state=False)
    assert resumed.progress.step == 7
    resumed.run()
    assert resumed.progress.step == 40
