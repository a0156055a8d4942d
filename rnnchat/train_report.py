"""Training progress on the terminal: a rich progress bar and a sample at each evaluation."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class Reporter:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]step {task.fields[step]}"), BarColumn(),
                                 TextColumn("{task.percentage:>5.1f}%"),
                                 TextColumn("train {task.fields[loss]}  val {task.fields[val]}"),
                                 TextColumn("{task.fields[speed]} chars/s"), TimeRemainingColumn(),
                                 console=self.console, transient=False)
        self.task = None
        self._last = 0.0
        self._smooth = None
        self._mark = (0, time.perf_counter())
        self._speed = 0.0

    def start(self, trainer, resumed: bool = False) -> None:
        c = trainer.cfg
        what = f"{c.steps} steps" if c.steps else f"{c.budget:.0f}s budget"
        self.console.print(f"{'resuming' if resumed else 'training'} {c.cell} {c.layers}x{c.hidden} "
                           f"({trainer.model.num_parameters() / 1e6:.2f}M params) on {trainer.corpus.name} "
                           f"({trainer.corpus.text_chars:,} chars, vocab {len(trainer.corpus.vocab)}), {what}, "
                           f"device {trainer.device}, precision {c.precision}")
        self.progress.start()
        self.task = self.progress.add_task("train", total=1000, step=trainer.progress.step, loss="-", val="-",
                                           speed="-")
        self._mark = (trainer.progress.chars, time.perf_counter())

    def update(self, trainer, loss: float) -> None:
        self._smooth = loss if self._smooth is None else 0.95 * self._smooth + 0.05 * loss
        now = time.perf_counter()
        if now - self._last < 0.25 and not trainer.finished():
            return
        self._last = now
        chars0, t0 = self._mark
        if now - t0 > 2.0:
            self._speed = (trainer.progress.chars - chars0) / (now - t0)
            self._mark = (trainer.progress.chars, now)
        p = trainer.progress
        self.progress.update(self.task, completed=min(1000, int(1000 * trainer.fraction_done())), step=p.step,
                             loss=f"{self._smooth:.3f}", val=f"{p.last_val:.3f}" if p.last_val else "-",
                             speed=f"{self._speed:,.0f}" if self._speed else "-")

    def evaluated(self, trainer, val: float, sample: str) -> None:
        best = trainer.progress.best_val
        self.progress.console.print(f"[bold]step {trainer.progress.step}[/] val loss {val:.4f} "
                                    f"(best {best:.4f})\n[dim]{sample.strip()[:300]}[/]", markup=True,
                                    highlight=False)
        self._mark = (trainer.progress.chars, time.perf_counter())

    def stop(self) -> None:
        self.progress.stop()
