"""The training loop: single process or DistributedDataParallel under torchrun.

A run lives in a folder: ``state.safetensors`` (latest weights, optimizer,
RNG streams, step, elapsed time: enough to continue exactly) and
``best.safetensors`` (the model with the lowest validation loss so far, which
is also copied to the output path). Nothing is pickled.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnchat.errors import CorpusError, RnnchatError
from rnnchat.engine import distributed as dist
from rnnchat.engine.checkpoint import build_meta, save_checkpoint
from rnnchat.engine.data import Corpus
from rnnchat.engine.evaluate import evaluate, sample_text
from rnnchat.engine.model import CharRNN, ModelConfig
from rnnchat.engine.resume import load_state, save_state

FINAL_STATE = "state.safetensors"
BEST = "best.safetensors"


@dataclass
class TrainConfig:
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 384
    embedding: int = 64
    dropout: float = 0.0
    cell_options: dict = field(default_factory=dict)
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 5e-3
    min_lr_ratio: float = 0.05
    warmup: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    steps: int | None = None
    budget: float | None = None  # seconds
    val_fraction: float = 0.1
    eval_every: int = 200
    eval_streams: int = 16
    save_every: int = 200
    seed: int = 1337
    precision: str = "fp32"  # fp32 | bf16 | fp16
    storage_dtype: str = "float32"
    chat: dict = field(default_factory=lambda: {"template": "{text}", "stop": ["\n\n"]})
    sample_chars: int = 200

    def validate(self) -> "TrainConfig":
        def bad(msg):
            raise RnnchatError(msg)
        for k in ("layers", "hidden", "embedding", "seq_len", "batch_size", "eval_every", "save_every"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(f"--{k.replace('_', '-')} must be a whole number >= 1, not {v!r}")
        if self.hidden > 16384 or self.embedding > 16384 or self.layers > 64:
            bad("model too large: hidden and embedding at most 16384, at most 64 layers")
        if not (math.isfinite(self.dropout) and 0.0 <= self.dropout < 1.0):
            bad(f"--dropout must be in [0, 1), not {self.dropout!r}")
        if not (math.isfinite(self.lr) and 0.0 < self.lr <= 10.0):
            bad(f"--lr must be in (0, 10], not {self.lr!r}")
        if not (math.isfinite(self.val_fraction) and 0.0 < self.val_fraction < 0.5):
            bad(f"--val-fraction must be in (0, 0.5), not {self.val_fraction!r}")
        if self.steps is None and self.budget is None:
            bad("give --steps N or --budget TIME (e.g. 90s, 10m, 2h)")
        if self.steps is not None and (isinstance(self.steps, bool) or self.steps < 1):
            bad(f"--steps must be >= 1, not {self.steps!r}")
        if self.budget is not None and not (math.isfinite(self.budget) and self.budget > 0):
            bad(f"--budget must be a positive time, not {self.budget!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            bad(f"--precision must be fp32, bf16 or fp16, not {self.precision!r}")
        return self

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(cell=self.cell, vocab_size=vocab_size, hidden=self.hidden, layers=self.layers,
                           embedding=self.embedding, dropout=self.dropout, cell_options=dict(self.cell_options))


@dataclass
class Progress:
    step: int = 0
    elapsed: float = 0.0
    best_val: float | None = None
    last_val: float | None = None
    chars: int = 0


class Trainer:
    def __init__(self, config: TrainConfig, corpus: Corpus, run_dir: Path, out: Path | None,
                 device: torch.device, reporter=None) -> None:
        self.cfg = config.validate()
        self.corpus = corpus
        self.run_dir = Path(run_dir)
        self.out = Path(out) if out else None
        self.device = device
        self.rank, self.world = dist.rank(), dist.world_size()
        self.train_ids, self.val_ids = corpus.split(config.val_fraction)
        need = config.seq_len + 2
        if self.train_ids.numel() < need or self.val_ids.numel() < need:
            raise CorpusError(
                f"corpus {corpus.name} is too small for --seq-len {config.seq_len}: it has "
                f"{corpus.ids.numel()} characters, and both the training part and the validation part "
                f"(--val-fraction {config.val_fraction}) need at least {need}; use a smaller --seq-len "
                "or a larger text")
        torch.manual_seed(config.seed)
        self.model = CharRNN(config.model_config(len(corpus.vocab))).to(device)
        self.ddp = dist.wrap(self.model, device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                     betas=(0.9, 0.99))
        self.data_gen = torch.Generator().manual_seed(config.seed + 1)
        self.progress = Progress()
        self.reporter = reporter
        self._stop = False

    # ---- schedule --------------------------------------------------------
    def fraction_done(self) -> float:
        c, p = self.cfg, self.progress
        if c.steps is not None:
            return p.step / c.steps
        return p.elapsed / c.budget

    def lr_now(self) -> float:
        c = self.cfg
        warmup = min(c.warmup, c.steps // 10) if c.steps is not None else c.warmup
        if self.progress.step < warmup:
            return c.lr * (self.progress.step + 1) / warmup
        frac = min(1.0, self.fraction_done())
        return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    def finished(self) -> bool:
        return self.fraction_done() >= 1.0

    # ---- data ------------------------------------------------------------
    def batch(self):
        """Every rank draws the same offsets and takes its own slice: ranks see disjoint data."""
        c = self.cfg
        total = c.batch_size * self.world
        starts = torch.randint(0, self.train_ids.numel() - c.seq_len - 1, (total,), generator=self.data_gen)
        starts = starts[self.rank * c.batch_size:(self.rank + 1) * c.batch_size]
        idx = starts[:, None] + torch.arange(c.seq_len + 1)
        chunk = self.train_ids[idx].long().to(self.device, non_blocking=True)
        return chunk[:, :-1], chunk[:, 1:]

    # ---- loop ------------------------------------------------------------
    def train_step(self) -> float:
        x, y = self.batch()
        for group in self.opt.param_groups:
            group["lr"] = self.lr_now()
        self.model.train()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.precision)
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits, _ = self.ddp(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.progress.step += 1
        self.progress.chars += x.numel() * self.world
        value = loss.item()
        if not math.isfinite(value):
            raise RnnchatError(f"training diverged at step {self.progress.step} (loss {value}); "
                               "lower --lr and start again")
        return value

    def run(self) -> Progress:
        c, p = self.cfg, self.progress
        old = signal.getsignal(signal.SIGTERM)
        if self.rank == 0 and threading_main():
            signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        interrupted = False
        try:
            t0 = time.perf_counter() - p.elapsed
            while not self.finished() and not self._stop:
                loss = self.train_step()
                p.elapsed = time.perf_counter() - t0
                if self.world > 1:
                    p.elapsed = dist.agree_max(p.elapsed, self.device)
                if self.reporter:
                    self.reporter.update(self, loss)
                if p.step % c.eval_every == 0 or self.finished():
                    self.evaluate_and_keep()
                    t0 = time.perf_counter() - p.elapsed  # evaluation time does not eat the budget
                if p.step % c.save_every == 0:
                    self.save_state()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if threading_main():
                signal.signal(signal.SIGTERM, old)
        self.save_state()
        if interrupted:
            raise KeyboardInterrupt
        return p

    def request_stop(self) -> None:
        self._stop = True

    def evaluate_and_keep(self) -> None:
        p = self.progress
        val = evaluate(self.model, self.val_ids, self.device, streams=self.cfg.eval_streams)
        p.last_val = val
        if self.rank == 0:
            if p.best_val is None or val < p.best_val:
                p.best_val = val
                self.save_best(val)
            if self.reporter:
                sample = sample_text(self.model, self.corpus.vocab, self.device, self.cfg.sample_chars,
                                     seed=self.cfg.seed + p.step)
                self.reporter.evaluated(self, val, sample)
        dist.barrier()

    # ---- files -------------------------------------------------------------
    def meta(self, val_loss: float | None, exact: bool = False) -> dict:
        c = self.cfg
        training = {k: v for k, v in asdict(c).items() if k not in ("chat", "cell_options")}
        training.update(step=self.progress.step, elapsed_s=round(self.progress.elapsed, 1), world_size=self.world)
        return build_meta(self.model, self.corpus.vocab, corpus={"name": self.corpus.name, "sha256": self.corpus.sha256},
                          val_loss=val_loss, val_loss_method="stateful, 1 stream" if exact else
                          f"stateful, {c.eval_streams} streams", training=training, chat=c.chat)

    def save_best(self, val: float) -> None:
        save_checkpoint(self.run_dir / BEST, self.model, self.meta(val), dtype=self.cfg.storage_dtype)

    def save_state(self) -> None:
        if self.rank == 0:
            save_state(self.run_dir / FINAL_STATE, self)
        dist.barrier()

    def restore(self) -> None:
        load_state(self.run_dir / FINAL_STATE, self)

    def finalize(self) -> Path | None:
        """Re-score the best model on the whole validation split read as one stream; publish it."""
        best = self.run_dir / BEST
        if self.rank != 0 or not best.exists():
            return None
        from rnnchat.engine.checkpoint import load_checkpoint

        loaded = load_checkpoint(best, self.device)
        exact = evaluate(loaded.model, self.val_ids, self.device, streams=1)
        meta = dict(loaded.meta, val_loss=round(exact, 4), val_loss_method="stateful, whole split, 1 stream")
        save_checkpoint(best, loaded.model, meta, dtype=self.cfg.storage_dtype)
        if self.out:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.out.with_name(f".{self.out.name}.copy.rnnchat-tmp")
            shutil.copyfile(best, tmp)
            os.replace(tmp, self.out)
        return self.out or best


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def config_to_json(cfg: TrainConfig) -> str:
    return json.dumps(asdict(cfg))


def config_from_json(text: str) -> TrainConfig:
    return TrainConfig(**json.loads(text))
