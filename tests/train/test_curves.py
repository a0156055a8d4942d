"""Run metrics as JSON lines, read back with their types checked, drawn by plotext and matplotlib."""

from __future__ import annotations

import json

from rnnchat.training.curves import loss_plot, save_plot_image
from rnnchat.training.run_metrics import RunLog, make_point, read_points, read_samples


def points():
    train = [make_point(s, s * 0.5, 1e-3, train_loss=4.0 / (1 + 0.1 * s), chars_per_s=1000.0) for s in range(1, 60)]
    val = [make_point(s, s * 0.5, 1e-3, val_loss=4.5 / (1 + 0.1 * s)) for s in (20, 40, 59)]
    return sorted(train + val, key=lambda p: p["step"])


def test_metrics_and_samples_round_trip_and_bad_lines_are_skipped(tmp_path):
    log = RunLog(tmp_path)
    for p in points():
        log.point(p)
    log.sample(20, "ROMEO:\nhello")
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": "7", "time": 1, "lr": 0.1, "train_loss": 1}\n')   # wrong type
        fh.write('{"step": 7, "time": 1, "lr": 0.1, "train_loss": true}\n')  # a bool is not a loss
        fh.write("not json\n")
        fh.write('{"step": 61, "time": 1, "lr": 0.1, "train_loss": 1')    # cut short by a kill
    back = read_points(tmp_path)
    assert back == points()
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert set(first) == {"step", "time", "train_loss", "val_loss", "lr", "chars_per_s"}
    assert read_samples(tmp_path) == [{"step": 20, "text": "ROMEO:\nhello"}]


def test_forget_after_drops_what_a_resumed_run_writes_again(tmp_path):
    log = RunLog(tmp_path)
    for p in points():
        log.point(p)
    log.sample(20, "a")
    log.sample(40, "b")
    log.forget_after(30)
    assert max(p["step"] for p in read_points(tmp_path)) == 30
    assert [s["step"] for s in read_samples(tmp_path)] == [20]


def test_a_fifo_is_never_opened(tmp_path):
    import os

    os.mkfifo(tmp_path / "metrics.jsonl")
    assert read_points(tmp_path) == []  # no hang


def test_loss_plot_is_plain_text_of_the_asked_size():
    text = loss_plot(points(), 70, 14)
    lines = text.splitlines()
    assert len(lines) == 14 and max(len(line) for line in lines) <= 70
    assert "\x1b" not in text
    assert "validation 0.652 (best 0.652)" in lines[0] and "•" in text  # title with the latest values; val dots
    assert loss_plot([], 70, 14) == ""


def test_plot_image_is_a_png_written_atomically(tmp_path):
    path = save_plot_image(points(), tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_the_training_display_draws_the_curve_and_names_the_phase(tmp_path, one_torch_thread):
    import io

    from rich.console import Console

    from rnnchat.training.train_report import Reporter
    from tests.conftest import TINY_TEXT
    from tests.train.helpers import make_trainer

    out = io.StringIO()
    reporter = Reporter(Console(file=out, force_terminal=True, width=100, height=40, color_system=None))
    trainer = make_trainer(TINY_TEXT, tmp_path / "run", steps=6, eval_every=3, sample_chars=8)
    trainer.reporter = reporter
    phases = []
    real = reporter.phase
    reporter.phase = lambda t, name, done=None, note=None: (phases.append(name), real(t, name, done, note))
    reporter.start(trainer)
    trainer.run()
    reporter.stop()
    text = out.getvalue()
    assert {"training", "evaluating", "saving"} <= set(phases)
    last_val = trainer.progress.last_val
    assert f"val {last_val:.3f}" in text              # the bar shows the latest validation loss
    assert "• validation" in text and "⠒ train" in text  # the plotext curve's title above the bar
    assert "step 6 val loss" in text
