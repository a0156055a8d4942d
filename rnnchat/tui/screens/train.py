"""The training screen: start ``rnnchat train`` as a separate process, watch its curve and samples.

A run is its own process (``python -m rnnchat train CORPUS --name NAME --budget B --preset P``) in its
own session, writing to ``runs/NAME/train.log``: closing the screen, or quitting the app, does not
stop it. The app keeps a :class:`TrainingRuns` registry of the runs it started; it polls them every
second, tells the user when one ends, and re-reads the model registry so that a finished model is
in the model picker. Quitting with a run going asks whether to leave it running or stop it
(SIGTERM: the trainer saves a resumable state).

The screen polls the watched run's ``metrics.jsonl`` and ``samples.jsonl`` every second in a
thread worker (reading files and drawing the plotext curve never block the UI). Everything read
from the run folder is untrusted and escaped before it is shown.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, Static

from rnnchat.tui.training_runs import LOG, StartedRun, TrainingRuns  # noqa: F401 (the screen's registry)

PRESET_NAMES = ("small", "default", "large")


def build_command(corpus: str, size: str, budget: str, name: str, extra: str) -> list[str]:
    """The ``rnnchat train`` command line for the form's values; ValueError with one line if one is bad."""
    from rnnchat.plugins.specs import NAME_RE
    from rnnchat.core.units import parse_duration

    corpus, size, budget, name = corpus.strip(), size.strip() or "default", budget.strip(), name.strip()
    if not corpus:
        raise ValueError("give a corpus: a UTF-8 text file or a catalog name (rnnchat corpora)")
    path = Path(corpus).expanduser()
    if path.exists() or os.sep in corpus:
        if not path.is_file():
            raise ValueError(f"{corpus} is not a file")
        corpus = str(path.resolve())
    if not NAME_RE.match(name):
        raise ValueError("give a name: lowercase letters, digits, '-', '_' or '.'")
    command = [sys.executable, "-m", "rnnchat", "train", corpus, "--name", name]
    if size in PRESET_NAMES:
        command += ["--preset", size]
    elif size.isdigit() and 1 <= int(size) <= 16384:
        command += ["--hidden", size]
    else:
        raise ValueError(f"size {size!r}: a preset ({', '.join(PRESET_NAMES)}) or a hidden size (1-16384)")
    if budget:
        if budget.replace(".", "", 1).isdigit():
            raise ValueError(f"budget {budget} has no unit: write {budget}s, {budget}m or {budget}h")
        parse_duration(budget)
        command += ["--budget", budget]
    try:
        more = shlex.split(extra)
    except ValueError as exc:
        raise ValueError(f"more options: {exc}") from None
    if not budget and "--steps" not in more:
        raise ValueError("give a budget (e.g. 5m) or --steps N in the options")
    return command + more + ["-q"]


class Polled(Message):
    def __init__(self, name: str, plot: str, samples: list[dict], summary: str) -> None:
        super().__init__()
        self.name, self.plot, self.samples, self.summary = name, plot, samples, summary


class TrainScreen(Screen):
    """Start a run and watch it. Esc closes the screen; the run goes on."""

    BINDINGS = [Binding("escape", "close", "Close (the run goes on)"),
                Binding("ctrl+s", "start", "Start", priority=True),
                Binding("ctrl+x", "stop_run", "Stop the run", priority=True)]
    DEFAULT_CSS = """
    TrainScreen #train-form { width: 40; padding: 0 1; }
    TrainScreen #train-form Input { margin: 0 0 1 0; }
    TrainScreen #train-watch { padding: 0 1; }
    TrainScreen #train-curve { height: auto; min-height: 12; }
    TrainScreen #train-status { height: auto; margin: 1 0 0 0; }
    """

    def __init__(self, registry: TrainingRuns, corpus: str = "") -> None:
        super().__init__()
        self.registry = registry
        self.corpus = corpus
        latest = list(registry.runs.values())
        self.watched: StartedRun | None = latest[-1] if latest else None

    def compose(self) -> ComposeResult:
        with Horizontal():
            with VerticalScroll(id="train-form"):
                yield Label("Train a model", classes="dialog-title")
                yield Label("Corpus (text file or catalog name)")
                yield Input(self.corpus, placeholder="corpora/tiny.txt", id="train-corpus")
                yield Label("Preset (small, default, large) or size")
                yield Input("default", id="train-size")
                yield Label("Budget (e.g. 90s, 10m, 2h)")
                yield Input("5m", id="train-budget")
                yield Label("Name (the model's name)")
                yield Input(placeholder="mymodel", id="train-name")
                yield Label("More options (rnnchat train --help)")
                yield Input(placeholder="--steps 500 --layers 2", id="train-extra")
                yield Button("Start", id="train-start", variant="primary")
                yield Static("", id="train-status")
            with VerticalScroll(id="train-watch"):
                yield Static("No run yet: fill in the form and press Start (ctrl+s).", id="train-summary")
                yield Static("", id="train-curve")
                yield Static("", id="train-samples")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#train-corpus", Input).focus()
        self.set_interval(1.0, self.refresh_run, name="train curve")
        self.refresh_run()

    # ---- starting and stopping -------------------------------------------------------------
    @on(Button.Pressed, "#train-start")
    def action_start(self) -> None:
        from rnnchat.core import paths
        from rnnchat.training.runs import lock_holder, state_header

        value = {k: self.query_one(f"#train-{k}", Input).value for k in ("corpus", "size", "budget", "name", "extra")}
        try:
            command = build_command(**value)
        except ValueError as exc:
            return self._status(str(exc), "red")
        name = value["name"].strip()
        folder = paths.runs_dir() / name
        mine = self.registry.runs.get(name)
        if (mine and mine.running) or lock_holder(folder) is not None:
            return self._status(f"a run named {name} is going; pick another name", "red")
        if state_header(folder / "state.safetensors") is not None and "--overwrite" not in command:
            return self._status(f"a run named {name} exists: pick another name, add --overwrite, or "
                                f"remove it (rnnchat runs rm {name})", "red")
        try:
            self.watched = self.registry.start(self.app, command, name, folder)
        except OSError as exc:
            return self._status(f"could not start: {exc}", "red")
        self._status(f"started {name} (process {self.watched.process.pid}); log: {folder / LOG}", "green")
        self.refresh_run()

    def action_stop_run(self) -> None:
        if self.watched is not None and self.watched.running:
            self.registry.stop(self.watched)
            self._status(f"stopping {self.watched.name}: it saves its state, then ends", "yellow")

    def action_close(self) -> None:
        self.app.pop_screen()

    def _status(self, text: str, style: str) -> None:
        self.query_one("#train-status", Static).update(Text(text, style=style))

    # ---- watching --------------------------------------------------------------------------
    def refresh_run(self) -> None:
        run = self.watched
        if run is None:
            return
        if self.registry._app is not None:
            self.registry.poll()
        curve = self.query_one("#train-curve", Static)
        self._poll(run, max(40, curve.size.width or 80), 16)

    @work(thread=True, exclusive=True, group="train-poll", exit_on_error=False)
    def _poll(self, run: StartedRun, width: int, height: int) -> None:
        from rnnchat.training.curves import loss_plot
        from rnnchat.training.run_metrics import read_points, read_samples

        points = read_points(run.folder)
        plot = loss_plot(points, width, height) if points else ""
        state = "running" if run.running else ("finished" if run.code == 0 else f"ended (exit {run.code})")
        last = points[-1] if points else None
        summary = f"{run.name}: {state}"
        if last:
            summary += f", step {last['step']}, {last['time']:.0f}s"
        elif run.running:
            summary += f", starting ({time.monotonic() - run.started:.0f}s)"
        if run.code not in (None, 0):
            summary += f" - {run.last_log_line()}"
        self.post_message(Polled(run.name, plot, read_samples(run.folder, 2), summary))

    def on_polled(self, message: Polled) -> None:
        from rnnchat.training.runs import escape

        self.query_one("#train-summary", Static).update(Text(message.summary, style="bold"))
        self.query_one("#train-curve", Static).update(Text(message.plot or "(no metrics yet)"))
        body = Text()
        for s in message.samples:
            body.append(f"sample at step {s['step']}\n", style="dim")
            body.append(escape(s["text"]) + "\n")
        self.query_one("#train-samples", Static).update(body)


class QuitWithRuns(ModalScreen[str]):
    """Quit with a run going: leave it running, stop it (it saves), or cancel."""

    BINDINGS = [Binding("escape", "dismiss('cancel')", "Cancel")]
    DEFAULT_CSS = """
    QuitWithRuns #quit-runs { width: 72; height: auto; border: round $warning; background: $surface;
                              padding: 0 1; }
    QuitWithRuns Horizontal { height: auto; margin: 1 0 0 0; }
    QuitWithRuns Button { margin: 0 1 0 0; }
    """

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-runs"):
            yield Label("Training is going", classes="dialog-title")
            yield Static(Text(f"{', '.join(self.names)} {'is' if len(self.names) == 1 else 'are'} still training. "
                              "Leave it running after the app closes, or stop it (it saves a state you can "
                              "resume)?"), id="quit-text")
            with Horizontal():
                yield Button("Leave running", id="quit-leave", variant="primary")
                yield Button("Stop and quit", id="quit-stop", variant="warning")
                yield Button("Cancel", id="quit-cancel")

    def on_mount(self) -> None:
        self.query_one("#quit-leave", Button).focus()

    @on(Button.Pressed)
    def _chosen(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id).removeprefix("quit-"))
