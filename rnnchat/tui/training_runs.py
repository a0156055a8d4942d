"""The training runs this app started (``tui/screens/train.py`` starts them): polled every second,
the user told when one ends, asked before quitting while one is going. Kept apart from the
training screen so that the app can hold its registry without importing the screen at start."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

LOG = "train.log"


@dataclass
class StartedRun:
    name: str
    folder: Path
    process: subprocess.Popen
    command: list[str]
    started: float = field(default_factory=time.monotonic)
    code: int | None = None          # the exit status once it ended

    @property
    def running(self) -> bool:
        return self.code is None

    def last_log_line(self) -> str:
        from rnnchat.training.runs import escape, read_tail

        lines = [line for line in read_tail(self.folder / LOG, 16_384).decode("utf-8", "replace").splitlines()
                 if line.strip()]
        return escape(lines[-1][:300]) if lines else ""


class TrainingRuns:
    """The runs this app started. Polled every second (once the first one starts) on the app's timer."""

    def __init__(self) -> None:
        self.runs: dict[str, StartedRun] = {}
        self._app = None

    def running(self) -> list[StartedRun]:
        return [r for r in self.runs.values() if r.running]

    def start(self, app, command: list[str], name: str, folder: Path) -> StartedRun:
        """Start the training process (output to ``folder/train.log``). Raises OSError."""
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                                       start_new_session=True, close_fds=True)
        finally:
            os.close(fd)
        run = StartedRun(name, folder, process, command)
        self.runs[name] = run
        if self._app is None:
            self._app = app
            app.set_interval(1.0, self.poll, name="training runs")
        return run

    def poll(self) -> None:
        for run in self.runs.values():
            if run.running and run.process.poll() is not None:
                run.code = run.process.returncode
                self._ended(run)

    def _ended(self, run: StartedRun) -> None:
        app = self._app
        if run.code == 0:
            app.notify(f"Training {run.name} finished: the model is in the model picker (ctrl+l)", markup=False)
            app.run_worker(_reload_models, thread=True, exit_on_error=False, name="reload models")
        elif run.code in (130, -signal.SIGTERM):
            app.notify(f"Training {run.name} stopped; its state is saved (rnnchat train --resume {run.name})",
                       severity="warning", markup=False)
        else:
            app.notify(f"Training {run.name} failed (exit {run.code}): {run.last_log_line()}",
                       severity="error", markup=False)

    def stop(self, run: StartedRun) -> None:
        """SIGTERM: the trainer saves a resumable state and exits."""
        if run.running:
            try:
                run.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def ask_before_quit(self, app, quit_now) -> bool:
        """With a run going, ask (leave it running / stop it / cancel) and return True; else False."""
        if self._app is not None:
            self.poll()
        going = self.running()
        if not going:
            return False

        def answered(choice: str | None) -> None:
            if choice == "stop":
                for run in going:
                    self.stop(run)
            if choice in ("stop", "leave"):
                quit_now()

        from rnnchat.tui.screens.train import QuitWithRuns

        app.push_screen(QuitWithRuns([r.name for r in going]), answered)
        return True


def _reload_models() -> None:
    from rnnchat.plugins.manager import get_host

    get_host(reload=True)
