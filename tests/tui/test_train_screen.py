"""The training screen: the form starts a real ``rnnchat train`` process that outlives the screen, the
curve follows metrics.jsonl, the finished model reaches the model picker, quitting asks."""

from __future__ import annotations

import contextlib
import sys

import pytest
from tui_helpers import ready, wait_for

from rnnchat.tui.screens.train import QuitWithRuns, TrainScreen, build_command

TINY = "--steps 30 --layers 1 --embedding 4 --seq-len 16 --batch-size 4 --eval-every 10"


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:  # never leave a process behind
        if p.poll() is None:
            p.kill()
            p.wait(10)


def sleeper(app, registry, name, procs):
    """A stand-in training process (it only sleeps) registered as the app's run ``name``."""
    from rnnchat.core import paths

    run = registry.start(app, [sys.executable, "-c", "import time; time.sleep(60)"], name, paths.runs_dir() / name)
    procs.append(run.process)
    return run


@contextlib.asynccontextmanager
async def app_with_a_run(harness, procs, name):
    """The app, ready, with a stand-in run ``name`` going: yields (app, pilot, run)."""
    app = harness().app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        yield app, pilot, sleeper(app, app.training, name, procs)


def test_the_form_builds_the_command_or_one_line():
    cmd = build_command("corpora/tiny.txt", "8", "90s", "tiny", "--steps 5")
    assert cmd[1:5] == ["-m", "rnnchat", "train", cmd[4]] and cmd[4].endswith("corpora/tiny.txt")
    assert cmd[5:] == ["--name", "tiny", "--hidden", "8", "--budget", "90s", "--steps", "5", "-q"]
    assert "--preset" in build_command("corpora/tiny.txt", "small", "10m", "x", "")
    for args, expected in ((("", "8", "90s", "x", ""), "give a corpus"),
                           (("corpora/tiny.txt", "8", "90s", "Bad Name", ""), "give a name"),
                           (("corpora/tiny.txt", "huge", "90s", "x", ""), "a preset"),
                           (("corpora/tiny.txt", "8", "90", "x", ""), "has no unit: write 90s"),
                           (("corpora/tiny.txt", "8", "", "x", ""), "give a budget"),
                           (("corpora/nosuch/", "8", "5m", "x", ""), "is not a file")):
        with pytest.raises(ValueError, match=expected):
            build_command(*args)


@pytest.mark.slow  # a real training process (7 s): run by .ci/run's second call
async def test_start_a_real_run_close_the_screen_it_goes_on_and_the_model_arrives(harness, tiny_corpus, procs,
                                                                                 monkeypatch):
    from rnnchat.core import paths

    monkeypatch.setenv("RNNCHAT_THREADS", "1")
    h = harness()
    app = h.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), "the training screen")
        screen = app.screen
        for field, value in (("corpus", str(tiny_corpus)), ("size", "8"), ("budget", "5m"), ("name", "tuirun"),
                             ("extra", TINY)):
            screen.query_one(f"#train-{field}").value = value
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "tuirun" in app.training.runs, "the run to start")
        run = app.training.runs["tuirun"]
        procs.append(run.process)
        assert "started tuirun" in str(screen.query_one("#train-status").render())
        await pilot.press("escape")  # close the screen: the run is not the screen's
        await wait_for(pilot, lambda: not isinstance(app.screen, TrainScreen), "the screen to close")
        assert run.process.poll() is None or run.process.returncode == 0
        await wait_for(pilot, lambda: run.code is not None, "the run to finish", limit=6000)  # 2 min at most
        assert run.code == 0, (paths.runs_dir() / "tuirun" / "train.log").read_text()
        assert (paths.models_dir() / "tuirun.safetensors").is_file()
        assert any("Training tuirun finished" in m for _, m in h.notes)
        from rnnchat.tui.screens.models import list_models

        await wait_for(pilot, lambda: "tuirun" in {r["name"] for r in list_models()}, "the model in the picker")
        await pilot.press("f6")  # reopened, the screen shows the run it started
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), "the training screen again")
        await wait_for(pilot, lambda: "tuirun: finished" in str(app.screen.query_one("#train-summary").render()),
                       "the finished run's summary")


async def test_the_curve_follows_metrics_and_samples_are_escaped(harness, procs):
    from rnnchat.training.run_metrics import RunLog, make_point

    async with app_with_a_run(harness, procs, "watched") as (app, pilot, run):
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), "the training screen")
        curve = app.screen.query_one("#train-curve")
        await wait_for(pilot, lambda: "no metrics yet" in str(curve.render()), "an empty curve")
        log = RunLog(run.folder)
        for step in range(1, 21):
            log.point(make_point(step, step * 0.1, 1e-3, train_loss=4.0 - step * 0.1))
        log.sample(20, "BOB:\nhi\x1b[31m red\x07")
        await wait_for(pilot, lambda: "loss by step" in str(curve.render()), "the curve", limit=500)
        first = str(curve.render())
        assert "train 2.000" in first
        log.point(make_point(30, 3.0, 1e-3, train_loss=1.5, val_loss=1.7))
        await wait_for(pilot, lambda: str(curve.render()) != first, "the curve to update", limit=500)
        assert "validation 1.700" in str(curve.render())
        samples = str(app.screen.query_one("#train-samples").render())
        assert "hi\\x1b[31m red\\x07" in samples and "\x1b" not in samples
        assert "watched: running, step 30" in str(app.screen.query_one("#train-summary").render())


@pytest.mark.parametrize("choice", ["cancel", "stop", "leave"])
async def test_quitting_with_a_run_going_asks(harness, procs, choice):
    import signal

    async with app_with_a_run(harness, procs, "going") as (app, pilot, run):
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitWithRuns), "the question")
        assert "going is still training" in str(app.screen.query_one("#quit-text").render())
        await pilot.click(f"#quit-{choice}")
        if choice == "cancel":
            await wait_for(pilot, lambda: not isinstance(app.screen, QuitWithRuns), "the question to close")
            assert app.is_running and run.process.poll() is None
            return
        await wait_for(pilot, lambda: not app.is_running, "the app to quit")
    if choice == "stop":
        assert run.process.wait(10) == -signal.SIGTERM
    else:
        assert run.process.poll() is None  # left running after the app closed
