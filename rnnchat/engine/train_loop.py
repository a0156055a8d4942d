"""The loop of a :class:`rnnchat.engine.train.Trainer` and its phases: steps, evaluation, re-score, save.

Every phase checks the stop flag set by SIGINT/SIGTERM between small pieces of work (a step, a
chunk of the validation text), so a stop is answered within about a chunk's time, and the state
saved. With a time budget the phases are sized to end within it (see :mod:`rnnchat.engine.budget`).
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError

from rnnchat.engine import distributed as dist
from rnnchat.engine.checkpoint import build_meta, save_checkpoint
from rnnchat.engine.evaluate import Aborted, evaluate, evaluate_sum, layout, sample_text
from rnnchat.engine.resume import save_state
from rnnchat.engine.run_dir import BEST, CURVE, FINAL_STATE, PREVIOUS_STATE, old_run_files, remove_files
from rnnchat.core.errors import RnnchatError
from rnnchat.training.run_metrics import RunLog, make_point, read_points

POINT_EVERY_S = 1.0  # a metrics line at most this often (and at every evaluation)
IMAGE_EVERY_S = 10.0  # curve.png is redrawn at an evaluation at most this often, and always at the end
PROBE_COLUMNS = 32  # characters of each stream the start-up probe reads


class Stop(Exception):
    """A signal asked the run to stop (raised between pieces of work in the finishing phases)."""


class TrainLoop:
    """Mixed into Trainer: everything around the step."""

    def init_loop(self) -> None:
        self.log = RunLog(self.run_dir) if self.rank == 0 else None
        self.points: list[dict] = []
        self._pending: list[float] = []
        self._mark = (0, 0.0)  # (chars, clock) at the last metrics line
        self.speed: float | None = None
        self.phase = "starting"
        self.phase_notes: list[str] = []  # why a phase was cut short (said by the display, or at the end)
        self._image: threading.Thread | None = None
        self.image_error: str | None = None
        self._image_at = -IMAGE_EVERY_S
        self._image_bytes: bytes | None = None

    # ---- phases and signals ---------------------------------------------------------------------
    def set_phase(self, name: str, done: float | None = None, note: str | None = None) -> None:
        self.phase = name
        if note and note not in self.phase_notes:
            self.phase_notes.append(note)
        if self.reporter is not None:
            self.reporter.phase(self, name, done, note)

    def stop_requested(self) -> bool:
        return self._signals > 0

    def _on_signal(self, signum, frame) -> None:
        self._signals += 1
        if signum == signal.SIGINT and self._signals > 1 and self.world == 1:
            raise KeyboardInterrupt  # a second Ctrl+C: give up now; the last saved state stays

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        return old

    @staticmethod
    def _restore_signals(old: dict) -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    def _should_stop(self):
        """The per-chunk stop check of an evaluation: in a single process only (ranks must agree)."""
        return self.stop_requested if self.world == 1 else None

    # ---- the loop -------------------------------------------------------------------------------
    def run(self):
        c, p = self.cfg, self.progress
        handlers = self._install_signals()
        try:
            self._start()
            while not self.finished() and not self._stop:
                if self.stop_after is not None and p.step >= self.stop_after:
                    self.stopped = "stop-after"
                    break
                t = time.perf_counter()
                loss = self.train_step()
                p.elapsed = self.clock.now()
                p.elapsed, self._stop = dist.agree(p.elapsed, self.stop_requested(), self.device)
                self.clock.saw_step(time.perf_counter() - t)
                if self._stop:
                    self.stopped, self.stopped_in = "signal", "steps"
                    break
                self._pending.append(loss)
                self._maybe_point()
                if self.reporter:
                    self.reporter.update(self, loss)
                if p.step % c.eval_every == 0 or self.finished():
                    try:
                        self.evaluate_and_keep()
                    except Aborted:
                        self.stopped, self.stopped_in = "signal", "evaluation"
                        break
                if p.step % c.save_every == 0:
                    self.save_state()
            if self.stopped is None and self.stop_requested() and not self.finished():
                self.stopped, self.stopped_in = "signal", "steps"
            self.set_phase("saving")
            self.save_state()
            if self.stopped is None and self.stop_requested():
                self.stopped, self.stopped_in = "signal", "save"
        finally:
            self._restore_signals(handlers)
        self.hooks.after_run(self)
        return p

    def _start(self) -> None:
        """The first state of a new run is written before anything an old run left is removed."""
        p = self.progress
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.fresh:
            old = [f for f in old_run_files(self.run_dir) if f.name != FINAL_STATE] if self.rank == 0 else []
            self.save_state()
            if self.rank == 0:
                remove_files(old + [self.run_dir / PREVIOUS_STATE])
            self.fresh = False
        elif self.rank == 0 and self.log is not None:
            self.points = read_points(self.run_dir)
        self._mark = (p.chars, self.clock.now())
        self.clock.last_eval_end = self.clock.now()
        if self.cfg.budget is not None:
            self._probe()
        if self.reporter:
            self.reporter.curve(self)
        self.set_phase("training")

    def _probe(self) -> None:
        """Measure what evaluation and re-score cost per chunk and per character (the budget needs it):
        a few characters of each, scaled (the time grows with the characters read)."""
        model, ids, streams = self.model, self.val_ids, self.cfg.eval_streams
        streams, chunk, _ = layout(ids.numel(), streams, model.head.out_features)
        columns = min(PROBE_COLUMNS, chunk, (ids.numel() - 1) // streams)
        t = time.perf_counter()
        evaluate_sum(model, ids[:streams * columns + 1], self.device, streams=streams,
                     part=(self.rank, self.world))
        chunk_s = (time.perf_counter() - t) * chunk / max(1, columns)
        n = min(PROBE_COLUMNS * 2, ids.numel() - 1)
        t = time.perf_counter()
        evaluate_sum(model, ids[:n + 1], self.device, streams=1)
        char_s = (time.perf_counter() - t) / max(1, n)
        chunk_s, _ = dist.agree(chunk_s, False, self.device)
        char_s, _ = dist.agree(char_s, False, self.device)
        self.clock.eval_chunk_s, self.clock.rescore_char_s = chunk_s, char_s

    def _final_eval_chunks(self) -> int:
        _, _, total = layout(self.val_ids.numel(), self.cfg.eval_streams, self.model.head.out_features,
                             (self.rank, self.world))
        return self.clock.plan_eval_chunks(total, commit=False)

    # ---- metrics ----------------------------------------------------------------------------------
    def _maybe_point(self, force: bool = False, val: float | None = None) -> None:
        p, now = self.progress, self.clock.now()
        chars0, t0 = self._mark
        if not force and now - t0 < POINT_EVERY_S:
            return
        if now - t0 > 0 and p.chars > chars0:
            self.speed = (p.chars - chars0) / (now - t0)
        if self.log is not None and (self._pending or val is not None):
            train = sum(self._pending) / len(self._pending) if self._pending else None
            point = make_point(p.step, p.elapsed, self.lr_now(), train_loss=train, val_loss=val,
                               chars_per_s=self.speed if self._pending else None)
            self.points.append(point)
            self._write(lambda: self.log.point(point))
            if self.reporter:
                self.reporter.curve(self)
        self._pending = []
        self._mark = (p.chars, now)

    def forget_metrics_after(self, step: int) -> None:
        if self.log is not None:
            self._write(lambda: self.log.forget_after(step))

    def _write(self, fn) -> None:
        try:
            fn()
        except OSError as exc:
            raise RnnchatError(f"could not write the run's metrics in {self.run_dir}: {exc.strerror or exc}") from None

    def _draw_image(self, wait: float = 0.0) -> None:
        """Redraw curve.png: matplotlib draws in a thread (its import and drawing take a moment), this
        thread writes the file. With ``wait`` (the end of a run), the drawing of the latest points is
        waited for, ``wait`` seconds at most."""
        if self.rank != 0 or not self.points:
            return
        self._write_image()
        deadline = time.perf_counter() + wait
        if wait <= 0 and time.perf_counter() - self._image_at < IMAGE_EVERY_S:
            return
        if self._image is not None and self._image.is_alive():
            if wait <= 0:
                return  # a later evaluation draws the newer points
            self._image.join(wait)
            self._write_image()
            if self._image.is_alive():
                return
        self._image_at = time.perf_counter()
        self._image = threading.Thread(target=self._render_image, args=(list(self.points),), daemon=True)
        self._image.start()
        if wait > 0:
            self._image.join(max(0.0, deadline - time.perf_counter()))
            self._write_image()

    def _render_image(self, points) -> None:
        from rnnchat.training.curves import plot_image_bytes

        try:
            self._image_bytes = plot_image_bytes(points)
        except Exception as exc:  # the picture is a convenience: a failed drawing is said, never fatal
            self.image_error = f"could not draw {self.run_dir / CURVE}: {str(exc)[:200] or type(exc).__name__}"

    def _write_image(self) -> None:
        data, self._image_bytes = self._image_bytes, None
        if data:
            from rnnchat.core.atomic import write_bytes

            try:
                write_bytes(self.run_dir / CURVE, data)
            except OSError as exc:
                self.image_error = f"could not write {self.run_dir / CURVE}: {exc.strerror or exc}"

    # ---- evaluation -------------------------------------------------------------------------------
    def evaluate_and_keep(self) -> None:
        p = self.progress
        self._maybe_point(force=True)
        _, _, total_chunks = layout(self.val_ids.numel(), self.cfg.eval_streams, self.model.head.out_features,
                                    (self.rank, self.world))
        chunks = self.clock.plan_eval_chunks(total_chunks)
        if self.world > 1 and self.cfg.budget is not None:  # the ranks' clocks differ: read the same chunks
            agreed, _ = dist.agree(float(chunks), False, self.device)
            chunks = self.clock.eval_chunks = int(agreed)
        note = None
        if chunks < total_chunks:
            note = f"evaluating on {100 * chunks / total_chunks:.0f}% of the validation text to fit the budget"
        self.set_phase("evaluating", 0.0, note)
        t = time.perf_counter()
        total, count = evaluate_sum(self.model, self.val_ids, self.device, streams=self.cfg.eval_streams,
                                    part=(self.rank, self.world), should_stop=self._should_stop(),
                                    max_chunks=chunks, on_chunk=lambda i, n: self.set_phase("evaluating", i / n))
        self.clock.eval_chunk_s = (time.perf_counter() - t) / max(1, chunks)
        total, count = dist.sum_pair(total, count, self.device)
        val = total / count
        p.last_val = val
        if p.best_val is None or val < p.best_val:
            p.best_val = val
            if self.rank == 0:
                self.set_phase("saving")
                self.save_best(val)
        if self.rank == 0:
            t = time.perf_counter()
            sample = sample_text(self.model, self.corpus.vocab, self.device, self.cfg.sample_chars,
                                 seed=self.cfg.seed + p.step, should_stop=self._should_stop())
            self.clock.sample_s = time.perf_counter() - t
            self._write(lambda: self.log.sample(p.step, sample))
            self._maybe_point(force=True, val=val)
            if self.reporter:
                self.reporter.evaluated(self, val, sample)
            self._draw_image()
        self._agree_costs()
        if self._should_stop() is not None and self.stop_requested():
            raise Aborted
        self.clock.last_eval_end = self.clock.now()
        self.set_phase("training")

    # ---- files -------------------------------------------------------------------------------------
    def meta(self, val_loss: float | None, method: str | None = None) -> dict:
        c = self.cfg
        training = {k: v for k, v in asdict(c).items() if k not in ("chat", "cell_options", "about")}
        training.update(step=self.progress.step, elapsed_s=round(self.progress.elapsed, 1), world_size=self.world)
        return build_meta(self.model, self.corpus.vocab, corpus={"name": self.corpus.name, "sha256": self.corpus.sha256},
                          val_loss=val_loss, val_loss_method=method or f"stateful, {c.eval_streams} streams",
                          training=training, chat=c.chat, **c.about)

    def save_best(self, val: float) -> None:
        t = time.perf_counter()
        _saving(lambda: save_checkpoint(self.run_dir / BEST, self.model, self.meta(val), dtype=self.cfg.storage_dtype),
                self.run_dir / BEST)
        self.clock.saw_save(time.perf_counter() - t)

    def save_state(self) -> None:
        """Write the resume state (rank 0), with the carried state of every rank's streams."""
        hidden = None
        if self.hidden is not None:
            hidden = [dist.gather_rows(t) for t in _leaves(self.hidden)]
        self.progress.elapsed, _ = dist.agree(self.clock.now(), False, self.device)
        if self.rank == 0:
            t = time.perf_counter()
            _saving(lambda: save_state(self.run_dir / FINAL_STATE, self, hidden), self.run_dir / FINAL_STATE)
            self.clock.saw_save(time.perf_counter() - t)
        self._agree_costs()

    def _agree_costs(self) -> None:
        """Every rank takes the slowest measured costs (rank 0 alone saves and samples), so that every
        rank computes the same reserve and ends the steps on the same step. A barrier too."""
        c = self.clock
        c.save_s, _ = dist.agree(c.save_s, False, self.device)
        c.sample_s, _ = dist.agree(c.sample_s, False, self.device)
        if c.eval_chunk_s is not None:
            c.eval_chunk_s, _ = dist.agree(c.eval_chunk_s, False, self.device)

    def _rescore(self, best: Path, loaded, chars: int, total: int) -> None:
        note, method = None, "stateful, whole split, 1 stream"
        if chars < total:
            share = 100 * chars / total
            note = f"re-scoring {share:.0f}% of the validation text to fit the budget"
            method = f"stateful, first {share:.0f}% of the split, 1 stream (to fit the time budget)"
        self.set_phase("re-scoring", 0.0, note)
        try:
            exact = evaluate(loaded.model, self.val_ids[:chars + 1], self.device, streams=1,
                             should_stop=self.stop_requested,
                             on_chunk=lambda i, n: self.set_phase("re-scoring", i / n))
        except Aborted:
            raise Stop("re-score") from None
        self.set_phase("saving")
        meta = dict(loaded.meta, val_loss=round(exact, 4), val_loss_method=method)
        _saving(lambda: save_checkpoint(best, loaded.model, meta, dtype=self.cfg.storage_dtype), best)

    def finalize(self) -> Path | None:
        """Re-score the best model on the validation split read as one stream (as much of it as the
        budget leaves time for); publish it. Raises :class:`Stop` when a signal comes meanwhile."""
        best = self.run_dir / BEST
        if self.rank != 0 or not best.exists():
            return None
        from rnnchat.engine.checkpoint import load_checkpoint

        handlers = self._install_signals()
        try:
            loaded = load_checkpoint(best, self.device)
            total = self.val_ids.numel() - 1
            left = self.clock.left()
            if left is not None:
                left -= self.clock.save_reserve() + self.clock.margin()
            chars = self.clock.rescore_chars(total, left)
            if chars:
                self._rescore(best, loaded, chars, total)
            else:
                self.set_phase("saving", None, "no time left in the budget to re-score the best model on one "
                               "stream: it keeps the loss of its evaluation")
            if self.out:
                _saving(lambda: _copy(best, self.out), self.out)
            left = self.clock.left()
            self._draw_image(wait=max(0.0, min(5.0, left - 0.5)) if left is not None else 5.0)
            if self.stop_requested():
                raise Stop("save")
        finally:
            self._restore_signals(handlers)
        return self.out or best


def _copy(src: Path, dst: Path) -> None:
    from rnnchat.core.atomic import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _saving(fn, path: Path):
    """Run a save; a full disk, a read-only folder or a serialisation failure is one line."""
    try:
        return fn()
    except (OSError, SafetensorError) as exc:
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RnnchatError(f"could not save {path}: {why}; the previous file is unchanged") from None


def _leaves(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for part in state for t in _leaves(part)]
