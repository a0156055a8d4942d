"""``rnnchat runs`` (list, show, rm) and ``rnnchat models rm``, on run folders made here (untrusted files)."""

from __future__ import annotations

import fcntl
import json
import os
import struct

import pytest

from tests.train.test_corpora import cli


def write_state(folder, step, elapsed, best, steps=None, budget=None, out=None):
    """A state file's header as the trainer writes it (no tensors: only the header is read)."""
    meta = {"format": 2, "progress": {"step": step, "elapsed": elapsed, "best_val": best},
            "config": {"steps": steps, "budget": budget}, "out": out}
    header = json.dumps({"__metadata__": {"rnnchat_state": json.dumps(meta)}}).encode()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)


def write_metrics(folder, points, extra_lines=()):
    lines = [json.dumps(p) for p in points] + list(extra_lines)
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def point(step, train=None, val=None):
    return {"step": step, "time": step * 0.5, "train_loss": train, "val_loss": val, "lr": 1e-3, "chars_per_s": 100.0}


@pytest.fixture
def runs_root(rnnchat_home):
    from rnnchat.core import paths

    root = paths.runs_dir()
    write_state(root / "done", 40, 20.0, 1.5, steps=40, out="/models/done.safetensors")
    write_metrics(root / "done", [point(10, 3.0), point(20, 2.5, 2.6), point(40, 2.0, 1.5)],
                  extra_lines=["not json", json.dumps(point(50, float("nan"))).replace("NaN", "1e999"),
                               json.dumps({"step": True, "time": 1, "lr": 1})])
    (root / "done" / "samples.jsonl").write_text(
        json.dumps({"step": 20, "text": "early"}) + "\n"
        + json.dumps({"step": 40, "text": "BOB:\nhi\x1b[2J\x07 there\u202e"}) + "\n", encoding="utf-8")
    write_state(root / "half", 12, 6.0, 2.9, budget=90.0)
    (root / "dead").mkdir()
    return root


def test_list_states_steps_and_best(runs_root):
    from rnnchat.training.runs import list_runs

    rows = {r.name: r for r in list_runs()}
    assert rows["done"].state == "finished" and rows["done"].steps == 40 and rows["done"].best_val == 1.5
    assert rows["done"].model == "/models/done.safetensors"
    assert rows["done"].problems == []  # the bad lines (not JSON, infinite, a bool step) are skipped
    assert rows["half"].state == "stopped" and rows["half"].elapsed == 6.0
    assert rows["dead"].state == "failed" and rows["dead"].steps is None


def test_a_held_lock_means_running(runs_root, capsys):
    from rnnchat.training.runs import list_runs

    lock = runs_root / "half" / "lock"
    lock.write_text("4242\n")
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the trainer holds it (a separate open: conflicts)
    try:
        assert {r.name: r.state for r in list_runs()}["half"] == "running"
        code, out, _ = cli(capsys, "runs")
        assert "running (pid 4242)" in out
        code, _, err = cli(capsys, "runs", "rm", "half", "--yes")
        assert code == 1 and "is running (process 4242)" in err and len(err.strip().splitlines()) == 1
        assert (runs_root / "half").is_dir()
    finally:
        os.close(fd)
    assert {r.name: r.state for r in list_runs()}["half"] == "stopped"  # a dead holder's lock is no lock


def test_cli_table_and_json(runs_root, capsys):
    write_state(runs_root / "evil\x1b]0;owned\x07\u202e", 1, 1.0, 3.0, steps=9, out="/m/\x1b[2J\nx.safetensors")
    code, out, _ = cli(capsys, "runs")
    assert "\x1b" not in out and "\u202e" not in out and "\\x1b]0;owned" in out and "\\x1b[2J\\nx" in out
    assert code in (0, None)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATE", "STEPS"]
    assert any(line.split()[:4] == ["done", "finished", "40", "1.5000"] for line in lines)
    code, out, _ = cli(capsys, "runs", "--json")
    assert "\x1b" not in out and "\u202e" not in out
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["half"]["state"] == "stopped" and rows["half"]["best_val"] == 2.9 and rows["dead"]["state"] == "failed"


def test_untrusted_files_are_not_followed_or_trusted(runs_root, tmp_path):
    from rnnchat.training.run_metrics import read_points
    from rnnchat.training.runs import list_runs, state_header

    secret = tmp_path / "secret.txt"
    secret.write_text(json.dumps(point(99, 0.1)) + "\n")
    os.symlink(secret, runs_root / "dead" / "metrics.jsonl")      # a link is not read
    os.mkfifo(runs_root / "half" / "metrics.jsonl")                 # a FIFO does not block the reader
    bad = runs_root / "huge"
    bad.mkdir()
    (bad / "state.safetensors").write_bytes(struct.pack("<Q", 2**60) + b"{}")  # no 2**60-byte allocation
    write_state(runs_root / "liar", -5, "long", "x", steps="many", out=7)
    rows = {r.name: r for r in list_runs()}
    assert read_points(runs_root / "dead") == [] and rows["dead"].steps is None
    assert rows["half"].steps == 12
    assert state_header(bad / "state.safetensors") is None and rows["huge"].state == "failed"
    assert (rows["liar"].steps, rows["liar"].elapsed, rows["liar"].best_val, rows["liar"].model) == (None,) * 4
    os.symlink(runs_root / "done", runs_root / "linked")            # a linked run folder is not listed
    assert "linked" not in {r.name for r in list_runs()}


def test_show_draws_the_curve_and_escapes_samples(runs_root, capsys):
    pytest.importorskip("rnnchat.training.curves")
    code, out, err = cli(capsys, "runs", "show", "done")
    assert code in (0, None), err
    assert out.startswith("done: finished, step 40, best validation loss 1.5000")
    assert "loss by step" in out  # the plotext curve
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "hi\\x1b[2J\\x07 there\\u202e" in out and "BOB:\n" in out
    assert "sample at step 40" in out


def test_rm_removes_a_run_and_refuses_bad_names(runs_root, capsys):
    code, out, _ = cli(capsys, "runs", "rm", "done")  # not a terminal: no question
    assert code in (0, None) and not (runs_root / "done").exists() and "removed" in out
    for name, expected in (("../home", "is not a run name"), ("nosuch", "no run named 'nosuch'")):
        code, _, err = cli(capsys, "runs", "rm", name, "--yes")
        assert code == 1 and expected in err and len(err.strip().splitlines()) == 1
    os.symlink(runs_root / "half", runs_root / "alias")
    code, _, err = cli(capsys, "runs", "rm", "alias")
    assert code == 1 and (runs_root / "half").is_dir()


def test_models_rm_removes_a_trained_model_only(make_checkpoint, capsys):
    from rnnchat.core import paths

    paths.models_dir().mkdir(parents=True)
    made = make_checkpoint(name="mine")
    target = paths.models_dir() / "mine.safetensors"
    target.write_bytes(made.read_bytes())
    from rnnchat.plugins import manager

    manager._HOST = None  # a new command sees the new model, as a new process would
    code, out, _ = cli(capsys, "models", "rm", "mine")
    assert code in (0, None) and not target.exists() and "removed" in out
    code, _, err = cli(capsys, "models", "rm", "shakespeare", "--yes")
    assert code == 1 and err == "error: model 'shakespeare' is built into rnnchat and cannot be removed\n"
    code, _, err = cli(capsys, "models", "rm", "mine")
    assert code == 1 and "no model named 'mine'" in err
    code, out, _ = cli(capsys, "models")
    assert code in (0, None) and "shakespeare" in out  # the listing still works as a group
