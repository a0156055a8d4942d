"""The training loop: single process or DistributedDataParallel under torchrun.

A run lives in a folder: ``state.safetensors`` (latest weights, optimizer,
RNG streams, data position and carried recurrent state, step, elapsed time:
enough to continue exactly; the save before it is ``state.prev.safetensors``) and
``best.safetensors`` (the model with the lowest validation loss so far, which
is also copied to the output path). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnchat.atomic import atomic_path
from rnnchat.errors import CorpusError, RnnchatError
from rnnchat.engine import distributed as dist
from rnnchat.engine.checkpoint import build_meta, save_checkpoint
from rnnchat.engine.data import Corpus
from rnnchat.engine.evaluate import Aborted, evaluate, evaluate_sum, sample_text
from rnnchat.engine.model import CharRNN, ModelConfig, state_map
from rnnchat.engine.precision import check_precision
from rnnchat.engine.resume import apply_state, save_state

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
    carry_state: bool = True  # char-rnn's contiguous streams with the state carried (else random windows)
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
    epoch: int = 0    # carried-state data: passes over the text begun
    window: int = 0   # next window of each stream in this pass (0: a new pass starts)
    offset: int = 0   # where this pass's windows start in each stream
    streams: int = 0  # streams the text is cut into (batch size x processes)


class Trainer:
    """One training run. ``run()`` trains until the step count or time budget is reached.

    A run stops early, always on a step boundary and with its state saved, when
    ``stop_after`` steps are done, or on SIGINT/SIGTERM (the first signal asks for a
    stop; in a single process a second Ctrl+C gives up at once, leaving the last
    saved state). Under torchrun every rank agrees on the step where it stops.
    """

    def __init__(self, config: TrainConfig, corpus: Corpus, run_dir: Path, out: Path | None,
                 device: torch.device, reporter=None, stop_after: int | None = None) -> None:
        self.cfg = config.validate()
        check_precision(self.cfg.precision, device, cell=self.cfg.cell)  # bf16 this CPU cannot run: one line
        self.corpus = corpus
        self.run_dir = Path(run_dir)
        self.out = Path(out) if out else None
        self.device = device
        self.rank, self.world = dist.rank(), dist.world_size()
        self.train_ids, self.val_ids = corpus.split(config.val_fraction)
        self._check_size()
        torch.manual_seed(config.seed)
        self.model = CharRNN(config.model_config(len(corpus.vocab))).to(device)
        self.ddp = dist.wrap(self.model, device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                     betas=(0.9, 0.99))
        self.data_gen = torch.Generator().manual_seed(config.seed + 1)
        self.progress = Progress(streams=config.batch_size * self.world)
        self.reporter = reporter
        self.stop_after = stop_after
        self.hidden = None            # carried recurrent state of this rank's streams
        self.stopped: str | None = None  # None (finished), "signal" or "stop-after"
        self.notes: list[str] = []
        self._signals = 0
        self._stop = False

    def _check_size(self) -> None:
        c, n_train, n_val = self.cfg, self.train_ids.numel(), self.val_ids.numel()
        what = f"corpus {self.corpus.name} ({self.corpus.ids.numel():,} characters)"
        if n_val < 2 or n_train < c.seq_len + 2:
            raise CorpusError(
                f"{what} is too small for --seq-len {c.seq_len}: its training part has {n_train:,} characters "
                f"and needs at least {c.seq_len + 2:,}; use a smaller --seq-len or a larger text")
        if c.carry_state:
            streams = c.batch_size * self.world
            need = streams * (c.seq_len + 1) + 1
            if n_train < need:
                who = f"--batch-size {c.batch_size}" + (f" x {self.world} processes" if self.world > 1 else "")
                raise CorpusError(
                    f"{what} is too small for --seq-len {c.seq_len} and {who}: its training part has "
                    f"{n_train:,} characters and {streams} streams of {c.seq_len + 1} need {need:,}; "
                    "use a smaller --seq-len or --batch-size, or a larger text")

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

    # ---- loop ------------------------------------------------------------
    def train_step(self) -> float:
        _test_fail(self.rank, self.progress.step + 1)
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
                               "lower --lr and start again")
        return value

    def run(self) -> Progress:
        c, p = self.cfg, self.progress
        handlers = self._install_signals()
        try:
            t0 = time.perf_counter() - p.elapsed
            while not self.finished() and not self._stop:
                if self.stop_after is not None and p.step >= self.stop_after:
                    self.stopped = "stop-after"
                    break
                loss = self.train_step()
                p.elapsed = time.perf_counter() - t0
                p.elapsed, self._stop = dist.agree(p.elapsed, self._signals > 0, self.device)
                if self._stop:
                    self.stopped = "signal"
                    break
                if self.reporter:
                    self.reporter.update(self, loss)
                if p.step % c.eval_every == 0 or self.finished():
                    try:
                        self.evaluate_and_keep()
                    except Aborted:
                        self.stopped = "signal"
                        break
                    t0 = time.perf_counter() - p.elapsed  # evaluation time does not eat the budget
                if p.step % c.save_every == 0:
                    self.save_state()
        finally:
            self._restore_signals(handlers)
        if self._signals and self.stopped is None and not self.finished():
            self.stopped = "signal"
        self.save_state()
        _test_checksum(self)
        return p

    def request_stop(self) -> None:
        self._signals += 1

    def _on_signal(self, signum, frame) -> None:
        self._signals += 1
        if signum == signal.SIGINT and self._signals > 1 and self.world == 1:
            raise KeyboardInterrupt  # a second Ctrl+C: give up now; the last saved state stays

    def _install_signals(self) -> dict:
        if not threading_main():
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

    def evaluate_and_keep(self) -> None:
        p = self.progress
        should_stop = (lambda: self._signals > 0) if self.world == 1 else None
        total, count = evaluate_sum(self.model, self.val_ids, self.device, streams=self.cfg.eval_streams,
                                    part=(self.rank, self.world), should_stop=should_stop)
        total, count = dist.sum_pair(total, count, self.device)
        val = total / count
        p.last_val = val
        if p.best_val is None or val < p.best_val:
            p.best_val = val
            if self.rank == 0:
                self.save_best(val)
        if self.rank == 0 and self.reporter:
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
        """Write the resume state (rank 0), with the carried state of every rank's streams."""
        hidden = None
        if self.hidden is not None:
            hidden = [dist.gather_rows(t) for t in _leaves(self.hidden)]
        if self.rank == 0:
            save_state(self.run_dir / FINAL_STATE, self, hidden)
        dist.barrier()

    def restore(self, meta: dict, tensors: dict) -> None:
        """Continue from a state read by :func:`rnnchat.engine.resume.read_state` (on every rank)."""
        hidden = apply_state(meta, tensors, self)
        p, c = self.progress, self.cfg
        streams = c.batch_size * self.world
        if not c.carry_state:
            return
        if p.streams != streams or hidden is None:
            if p.window:
                self.notes.append(f"the run was saved with {p.streams} streams and now has {streams} "
                                  "(another --batch-size or number of processes): the data pass starts over")
            p.window, p.streams = 0, streams
            return
        template = self.model.initial_state(c.batch_size)
        rows = slice(self.rank * c.batch_size, (self.rank + 1) * c.batch_size)
        leaves = iter([t[rows].to(self.device) for t in hidden])
        self.hidden = _rebuild(template, leaves)

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
            with atomic_path(self.out) as tmp:
                shutil.copyfile(best, tmp)
        return self.out or best


def _leaves(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for part in state for t in _leaves(part)]


def _rebuild(template, leaves):
    if isinstance(template, torch.Tensor):
        return next(leaves)
    return type(template)(_rebuild(part, leaves) for part in template)


def weights_sha256(model) -> str:
    """A checksum of a model's weights (names, shapes and float32 values), equal across processes."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


# Test hooks, read from the environment; they do nothing unless a test sets them.
#   RNNCHAT_TEST_FAIL_RANK=R[:STEP[:exit]]  rank R raises an error (or exits at once) at step STEP (default 3)
#   RNNCHAT_TEST_CHECKSUM_DIR=DIR           each rank writes rank<R>.sha256 with its final weights' checksum

def _test_fail(rank: int, step: int) -> None:
    spec = os.environ.get("RNNCHAT_TEST_FAIL_RANK")
    if not spec:
        return
    parts = spec.split(":")
    if int(parts[0]) != rank or step != (int(parts[1]) if len(parts) > 1 else 3):
        return
    if len(parts) > 2 and parts[2] == "exit":
        os._exit(3)
    raise RnnchatError(f"rank {rank}: failure injected at step {step} (RNNCHAT_TEST_FAIL_RANK)")


def _test_checksum(trainer) -> None:
    folder = os.environ.get("RNNCHAT_TEST_CHECKSUM_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"rank{trainer.rank}.sha256").write_text(weights_sha256(trainer.model))


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def config_to_json(cfg: TrainConfig) -> str:
    return json.dumps(asdict(cfg))


def config_from_json(text: str) -> TrainConfig:
    return config_from_dict(json.loads(text))


def config_from_dict(saved: dict) -> TrainConfig:
    """A TrainConfig from a saved dict; keys this version does not know are ignored."""
    known = {f.name for f in fields(TrainConfig)}
    saved = dict(saved)
    saved.setdefault("carry_state", False)  # runs saved before carried state existed used random windows
    return TrainConfig(**{k: v for k, v in saved.items() if k in known})
