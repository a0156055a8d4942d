"""Settings speak neutral words in the engine and option names in the CLI; the budget's sizing; the run lock."""

from __future__ import annotations

import os

import pytest


def test_validate_speaks_neutral_words_and_the_cli_renders_flags():
    from rnnchat.commands.train_checks import FLAGS
    from rnnchat.engine.train_config import ConfigError, TrainConfig

    with pytest.raises(ConfigError) as err:
        TrainConfig(seq_len=0, steps=1).validate()
    assert str(err.value) == "the sequence length must be a whole number >= 1, not 0"
    assert err.value.render(FLAGS) == "--seq-len must be a whole number >= 1, not 0"
    with pytest.raises(ConfigError) as err:
        TrainConfig(dropout=1.0, steps=1).validate()
    assert err.value.render(FLAGS) == "--dropout must be in [0, 1), not 1.0"
    assert TrainConfig(steps=5, budget=60).plan() == "5 steps or 60s, whichever comes first"


def test_memory_estimate_refuses_a_huge_step_before_building_anything():
    import torch

    from rnnchat.engine.memory import check_memory
    from rnnchat.engine.train_config import ConfigError, TrainConfig

    small = TrainConfig(hidden=8, layers=1, embedding=4, batch_size=4, seq_len=32, steps=1)
    assert 0 < check_memory(small, 60, torch.device("cpu")) < 50_000_000
    with pytest.raises(ConfigError) as err:
        check_memory(TrainConfig(batch_size=100_000, seq_len=100_000, steps=1), 60, torch.device("cpu"))
    assert "reduce the batch size, the sequence length" in str(err.value)


def test_budget_sizes_the_evaluations_and_the_rescore():
    from rnnchat.engine.budget import BudgetClock

    clock = BudgetClock(budget=100.0)
    assert clock.rescore_chars(10_000, 5.0) == 10_000  # nothing measured yet: everything
    clock.eval_chunk_s, clock.rescore_char_s = 0.5, 0.001
    assert clock.rescore_chars(10_000, 5.0) == 5_000
    assert clock.rescore_chars(10_000, 0.1) == 0       # fewer than 256 characters fit: skipped
    assert clock.plan_eval_chunks(100, commit=False) == 20  # a tenth of the budget for the last one
    clock.last_eval_end = clock.now() - 20.0
    assert clock.plan_eval_chunks(100) == 4             # a tenth of the 20 s since the last one
    assert clock.eval_chunks == 4 and clock.plan_eval_chunks(100) == 4
    assert BudgetClock(budget=None).plan_eval_chunks(100) == 100


def test_run_lock_names_its_holder_and_is_released(tmp_path):
    from rnnchat.engine.run_dir import RunBusy, RunLock, busy

    first = RunLock(tmp_path / "run").acquire()
    assert busy(tmp_path / "run") == f"process {os.getpid()} on host {os.uname().nodename}"
    with pytest.raises(RunBusy, match=f"process {os.getpid()}"):
        RunLock(tmp_path / "run").acquire()  # another open file: flock refuses it even in this process
    first.release()
    assert busy(tmp_path / "run") is None
    with RunLock(tmp_path / "run"):
        pass
