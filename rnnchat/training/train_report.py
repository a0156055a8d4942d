"""Training progress on the terminal: a live loss curve (plotext), a progress bar that names the
phase (training, evaluating 40%, re-scoring 12%, saving), and a sample at each evaluation."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.text import Text

CURVE_EVERY_S = 1.0  # the curve is redrawn at most this often
CURVE_HEIGHT = 14


def printable(text: str) -> str:
    """Text from a model or a file, safe for a terminal: control characters shown escaped."""
    return "".join(c if c in "\n\t" or c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class _CurveProgress(Progress):
    """A rich progress bar with the loss curve drawn above it."""

    plot: Text | None = None

    def get_renderables(self):
        if self.plot is not None:
            yield self.plot
        yield self.make_tasks_table(self.tasks)


class Reporter:
    def __init__(self, console: Console | None = None, curve: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.show_curve = self.console.is_terminal if curve is None else curve
        self.progress = _CurveProgress(TextColumn("[bold]step {task.fields[step]}"), BarColumn(),
                                       TextColumn("{task.percentage:>5.1f}%"), TextColumn("{task.fields[phase]}"),
                                       TextColumn("train {task.fields[loss]}  val {task.fields[val]}"),
                                       TextColumn("{task.fields[speed]} chars/s"), TextColumn("{task.fields[left]}"),
                                       console=self.console, transient=False)
        self.task = None
        self._last = 0.0
        self._last_curve = 0.0
        self._smooth = None
        self._phase = "starting"
        self._notes: set[str] = set()

    def start(self, trainer, resumed: bool = False) -> None:
        c = trainer.cfg
        self.console.print(Text(
            f"{'resuming' if resumed else 'training'} {c.cell} {c.layers}x{c.hidden} "
            f"({trainer.model.num_parameters() / 1e6:.2f}M params) on {printable(trainer.corpus.name)} "
            f"({trainer.corpus.text_chars:,} chars, vocab {len(trainer.corpus.vocab)}), {c.plan()}, "
            f"device {trainer.device}, precision {c.precision}"))
        self.progress.start()
        self.task = self.progress.add_task("train", total=1000, step=trainer.progress.step, loss="-", val="-",
                                           speed="-", phase=self._phase, left="")
        self._refresh(trainer)

    def _refresh(self, trainer) -> None:
        p = trainer.progress
        left = trainer.clock.left()
        if trainer.cfg.budget is not None and left is not None:
            left_text = f"{max(0.0, left):.0f}s left"
        elif trainer.cfg.steps:
            left_text = f"{trainer.cfg.steps - p.step} steps left"
        else:
            left_text = ""
        self.progress.update(self.task, completed=min(1000, int(1000 * trainer.fraction_done())), step=p.step,
                             loss=f"{self._smooth:.3f}" if self._smooth is not None else "-",
                             val=f"{p.last_val:.3f}" if p.last_val is not None else "-",
                             speed=f"{trainer.speed:,.0f}" if trainer.speed else "-", phase=self._phase,
                             left=left_text)

    def update(self, trainer, loss: float) -> None:
        self._smooth = loss if self._smooth is None else 0.95 * self._smooth + 0.05 * loss
        now = time.perf_counter()
        if now - self._last < 0.25 and not trainer.finished():
            return
        self._last = now
        self._refresh(trainer)

    def phase(self, trainer, name: str, done: float | None = None, note: str | None = None) -> None:
        """The phase shown on the bar: 'evaluating 40%'; a note (why a phase is cut short) is said once."""
        self._phase = name if done is None else f"{name} {100 * done:.0f}%"
        if note and note not in self._notes:
            self._notes.add(note)
            self.progress.console.print(Text(f"note: {note}", style="dim"))
        if self.task is not None:
            self._refresh(trainer)

    def curve(self, trainer) -> None:
        """Redraw the live curve from the trainer's metrics (at most once a second)."""
        now = time.perf_counter()
        if not self.show_curve or (now - self._last_curve < CURVE_EVERY_S and self.progress.plot is not None):
            return
        from rnnchat.training.curves import loss_plot

        self._last_curve = now
        width = max(40, min(self.console.width, 120))
        height = min(CURVE_HEIGHT, max(0, self.console.height - 6))
        if height < 6:
            return
        text = loss_plot(trainer.points, width, height)
        self.progress.plot = Text(text) if text else None

    def evaluated(self, trainer, val: float, sample: str) -> None:
        best = trainer.progress.best_val
        head = Text(f"step {trainer.progress.step}", style="bold")
        head.append(f" val loss {val:.4f} (best {best:.4f})", style="")
        self.progress.console.print(head)
        self.progress.console.print(Text(printable(sample.strip()[:300]), style="dim"))
        self._last_curve = 0.0
        self.curve(trainer)
        if self.task is not None:
            self._refresh(trainer)

    def stop(self) -> None:
        self.progress.stop()
