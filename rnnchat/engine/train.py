"""The training loop: single process or DistributedDataParallel under torchrun.

A run lives in a folder: ``state.safetensors`` (latest weights, optimizer,
RNG streams, data position and carried recurrent state, step, elapsed time:
enough to continue exactly; the save before it is ``state.prev.safetensors``),
``best.safetensors`` (the model with the lowest validation loss so far, which
is also copied to the output path), ``metrics.jsonl``, ``samples.jsonl`` and
``curve.png``. Nothing is pickled.

This module holds the model, data and step; :mod:`rnnchat.engine.train_loop` the loop, its
phases (steps, evaluation, re-score, save) and the budget; :mod:`rnnchat.engine.train_config`
the settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnchat.engine import distributed as dist
from rnnchat.engine import train_hooks
from rnnchat.engine.budget import BudgetClock
from rnnchat.engine.data import Corpus
from rnnchat.engine.model import CharRNN, registered_cell, state_map
from rnnchat.engine.precision import check_precision
from rnnchat.engine.resume import apply_state
from rnnchat.engine.run_dir import BEST, FINAL_STATE  # noqa: F401  (re-exported)
from rnnchat.engine.train_config import (ConfigError, CorpusSizeError, TrainConfig,  # noqa: F401
                                         config_from_dict)
from rnnchat.engine.train_hooks import weights_sha256  # noqa: F401  (re-exported)
from rnnchat.engine.train_loop import TrainLoop
from rnnchat.core.errors import RnnchatError


@dataclass
class Progress:
    step: int = 0
    elapsed: float = 0.0
    best_val: float | None = None
    last_val: float | None = None
    chars: int = 0
    epoch: int = 0    # carried-state data: passes over the text begun
    window: int = 0   # next window of each stream in this pass (0: a new pass starts)
    offset: int = 0   # where this pass's windows start in each stream
    streams: int = 0  # streams the text is cut into (batch size x processes)


class Trainer(TrainLoop):
    """One training run. ``run()`` trains until the step count or time budget is reached.

    A run stops early, always on a step boundary and with its state saved, when
    ``stop_after`` steps are done, or on SIGINT/SIGTERM (the first signal asks for a
    stop; in a single process a second Ctrl+C gives up at once, leaving the last
    saved state). Under torchrun every rank agrees on the step where it stops.
    ``started`` is when the command began (``time.perf_counter()``): a budget counts from there.
    """

    def __init__(self, config: TrainConfig, corpus: Corpus, run_dir: Path, out: Path | None,
                 device: torch.device, reporter=None, stop_after: int | None = None,
                 started: float | None = None, hooks: train_hooks.TrainHooks | None = None,
                 fresh: bool = False) -> None:
        self.cfg = config.validate()
        check_precision(self.cfg.precision, device, cell=self.cfg.cell)  # bf16 this CPU cannot run: one line
        self.corpus = corpus
        self.run_dir = Path(run_dir)
        self.out = Path(out) if out else None
        self.device = device
        self.rank, self.world = dist.rank(), dist.world_size()
        from rnnchat.engine.memory import check_memory

        check_memory(config, len(corpus.vocab), device, self.world)  # before the corpus: 10^5 x 10^5 is the problem
        self.train_ids, self.val_ids = corpus.split(config.val_fraction)
        self._check_size()
        torch.manual_seed(config.seed)
        self.model = CharRNN(config.model_config(len(corpus.vocab)), registered_cell(config.cell)).to(device)
        if config.init_from and fresh:  # a fine-tune starts from its model (a resumed one from its state)
            from rnnchat.engine.finetune import init_weights
            init_weights(self.model, corpus.vocab, config.init_from, seed=config.seed)
        self.ddp = dist.wrap(self.model, device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                     betas=(0.9, 0.99))
        self.data_gen = torch.Generator().manual_seed(config.seed + 1)
        self.progress = Progress(streams=config.batch_size * self.world)
        self.clock = BudgetClock(config.budget, started)
        self.reporter = reporter
        self.stop_after = stop_after
        self.hooks = hooks or train_hooks.current
        self.fresh = fresh            # a new run: the first state save replaces what an old run left
        self.hidden = None            # carried recurrent state of this rank's streams
        self.stopped: str | None = None  # None (finished), "signal" or "stop-after"
        self.stopped_in: str | None = None  # the phase a signal stopped: steps, evaluation, re-score, save
        self.notes: list[str] = []
        self._signals = 0
        self._stop = False
        self.init_loop()

    def _check_size(self) -> None:
        c, n_train, n_val = self.cfg, self.train_ids.numel(), self.val_ids.numel()
        what = f"corpus {self.corpus.name} ({self.corpus.ids.numel():,} characters)"
        if n_val < 2 or n_train < c.seq_len + 2:
            raise CorpusSizeError(
                "{what} is too small for {seq_len} {n}: its training part has {have:,} characters "
                "and needs at least {need:,}; use a smaller {seq_len} or a larger text",
                what=what, n=c.seq_len, have=n_train, need=c.seq_len + 2)
        if c.carry_state:
            streams = c.batch_size * self.world
            need = streams * (c.seq_len + 1) + 1
            if n_train < need:
                who = f"{c.batch_size}" + (f" x {self.world} processes" if self.world > 1 else "")
                raise CorpusSizeError(
                    "{what} is too small for {seq_len} {n} and {batch_size} {who}: its training part has "
                    "{have:,} characters and {streams} streams of {n1} need {need:,}; "
                    "use a smaller {seq_len} or {batch_size}, or a larger text",
                    what=what, n=c.seq_len, who=who, have=n_train, streams=streams, n1=c.seq_len + 1, need=need)

    # ---- schedule --------------------------------------------------------
    def fraction_done(self) -> float:
        """How far the run is: the larger of its steps and its time (whichever ends it first)."""
        c, p = self.cfg, self.progress
        done = 0.0
        if c.steps is not None:
            done = p.step / c.steps
        if c.budget is not None:
            window = c.budget - self.clock.reserve(self.val_ids.numel(), self._final_eval_chunks())
            done = max(done, p.elapsed / max(1e-6, window))
        return done

    def lr_now(self) -> float:
        c = self.cfg
        warmup = min(c.warmup, c.steps // 10) if c.steps is not None else c.warmup
        if self.progress.step < warmup:
            return c.lr * (self.progress.step + 1) / warmup
        frac = min(1.0, self.fraction_done())
        return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    def finished(self) -> bool:
        """The plan is done (a run does at least one step, so that it has a model to publish)."""
        return self.fraction_done() >= 1.0 and self.progress.step >= 1

    # ---- data ------------------------------------------------------------
    def batch(self):
        """The next (inputs, targets); under torchrun each rank takes its own rows."""
        if self.cfg.carry_state:
            return self._stream_batch()
        c = self.cfg
        total = c.batch_size * self.world
        starts = torch.randint(0, self.train_ids.numel() - c.seq_len - 1, (total,), generator=self.data_gen)
        starts = starts[self.rank * c.batch_size:(self.rank + 1) * c.batch_size]
        return self._windows(starts)

    def _stream_batch(self):
        """char-rnn's layout: the text is cut into ``batch x processes`` contiguous streams, each read
        window after window, the recurrent state carried from one window to the next (truncated BPTT).
        Each pass over the text starts at a random offset below ``seq_len``; its first window starts
        from a zero state."""
        c, p = self.cfg, self.progress
        streams = c.batch_size * self.world
        length = (self.train_ids.numel() - 1) // streams
        if p.window == 0 or p.offset + (p.window + 1) * c.seq_len > length:
            p.epoch += 1
            p.window = 0
            top = min(c.seq_len, length - c.seq_len + 1)
            p.offset = int(torch.randint(0, top, (1,), generator=self.data_gen))
            self.hidden = None
        first = torch.arange(self.rank * c.batch_size, (self.rank + 1) * c.batch_size) * length
        starts = first + p.offset + p.window * c.seq_len
        p.window += 1
        return self._windows(starts)

    def _windows(self, starts):
        idx = starts[:, None] + torch.arange(self.cfg.seq_len + 1)
        chunk = self.train_ids[idx].long().to(self.device, non_blocking=True)
        return chunk[:, :-1], chunk[:, 1:]

    # ---- one step ----------------------------------------------------------
    def train_step(self) -> float:
        self.hooks.before_step(self, self.progress.step + 1)
        x, y = self.batch()
        for group in self.opt.param_groups:
            group["lr"] = self.lr_now()
        self.model.train()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.precision)
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits, state = self.ddp(x, self.hidden)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        if self.cfg.carry_state:
            wdtype = self.model.head.weight.dtype
            self.hidden = state_map(lambda t: t.detach().to(wdtype), state)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.progress.step += 1
        self.progress.chars += x.numel() * self.world
        value = loss.item()
        if not math.isfinite(value):
            raise RnnchatError(f"training diverged at step {self.progress.step} (loss {value}); "
                               "lower the learning rate and start again")
        return value

    def restore(self, meta: dict, tensors: dict) -> None:
        """Continue from a state read by :func:`rnnchat.engine.resume.read_state` (on every rank)."""
        hidden = apply_state(meta, tensors, self)
        self.clock.spent_before = self.progress.elapsed
        self.forget_metrics_after(self.progress.step)
        p, c = self.progress, self.cfg
        streams = c.batch_size * self.world
        if not c.carry_state:
            return
        if p.streams != streams or hidden is None:
            if p.window:
                self.notes.append(f"the run was saved with {p.streams} streams and now has {streams} "
                                  "(another batch size or number of processes): the data pass starts over")
            p.window, p.streams = 0, streams
            return
        template = self.model.initial_state(c.batch_size)
        rows = slice(self.rank * c.batch_size, (self.rank + 1) * c.batch_size)
        leaves = iter([t[rows].to(self.device) for t in hidden])
        self.hidden = _rebuild(template, leaves)


def _rebuild(template, leaves):
    if isinstance(template, torch.Tensor):
        return next(leaves)
    return type(template)(_rebuild(part, leaves) for part in template)
