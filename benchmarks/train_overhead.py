"""Training throughput: rnnchat's Trainer against a raw ``nn.LSTM`` loop, same model, batch, sequence.

Both loops do the same work per step: draw a random batch of the corpus,
embedding -> 2-layer recurrent net -> linear head, cross-entropy, AdamW,
gradient clipping at 1.0, autocast at the chosen precision, and read the loss
back (``.item()``). Blocks of steps alternate between the two so that other
load on the machine hits both alike; chars/s are medians over the blocks.

    .venv/bin/python benchmarks/train_overhead.py [--precision fp32,bf16] [--blocks 5] [--steps 10]
    .venv/bin/python benchmarks/train_overhead.py --val-budget 90   # 90 s validation loss per precision
    .venv/bin/python benchmarks/train_overhead.py --val-steps 300   # same steps: loss per step

The second form trains the same model for the same wall-clock budget at each
precision from the same seed and prints the validation loss (rnnchat's
evaluation: stateful, the held-out 10%), which is how the default precision in
``rnnchat/engine/precision.py`` was chosen.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from rnnchat.engine.data import load_corpus  # noqa: E402
from rnnchat.engine.device import set_cpu_threads  # noqa: E402
from rnnchat.engine.train import TrainConfig, Trainer  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class RawLSTM(nn.Module):
    def __init__(self, vocab, hidden, layers, embedding, cell):
        super().__init__()
        self.emb = nn.Embedding(vocab, embedding)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](embedding, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x):
        y, _ = self.rnn(self.emb(x))
        return self.head(y)


class RawLoop:
    def __init__(self, cfg: TrainConfig, ids: torch.Tensor, vocab: int) -> None:
        torch.manual_seed(cfg.seed)
        self.cfg, self.ids = cfg, ids
        self.model = RawLSTM(vocab, cfg.hidden, cfg.layers, cfg.embedding, cfg.cell)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     betas=(0.9, 0.99))
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.dtype = DTYPES.get(cfg.precision)

    def train_step(self) -> float:
        c = self.cfg
        starts = torch.randint(0, self.ids.numel() - c.seq_len - 1, (c.batch_size,), generator=self.gen)
        chunk = self.ids[starts[:, None] + torch.arange(c.seq_len + 1)].long()
        x, y = chunk[:, :-1], chunk[:, 1:]
        self.model.train()
        with torch.autocast("cpu", dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            logits = self.model(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.opt.step()
        return loss.item()


def make_trainer(cfg: TrainConfig, corpus, tmp: Path) -> Trainer:
    return Trainer(cfg, corpus, tmp / f"run-{cfg.precision}-{time.monotonic_ns()}", None, torch.device("cpu"))


def rate(step, n: int, chars_per_step: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return n * chars_per_step / (time.perf_counter() - t0)


def config(args, precision: str, **kw) -> TrainConfig:
    """The benchmark's model and batch at ``precision``; no evaluation or saving on the way."""
    return TrainConfig(cell=args.cell, layers=args.layers, hidden=args.hidden, embedding=args.embedding,
                       seq_len=args.seq, batch_size=args.batch, eval_every=10**9, save_every=10**9,
                       precision=precision, **kw)


def overhead(args, corpus, tmp: Path) -> bool:
    ok = True
    print(f"# train_overhead: {args.cell} {args.layers}x{args.hidden}, batch {args.batch}, seq {args.seq}, "
          f"{args.blocks} blocks of {args.steps} steps each (medians), torch threads {torch.get_num_threads()}")
    head = f"{'precision':<10} {'raw c/s':>9} {'rnnchat c/s':>12} {'overhead':>9}"
    print(head + "\n" + "-" * len(head))
    for prec in args.precision.split(","):
        cfg = config(args, prec, steps=10**9, warmup=1)
        trainer = make_trainer(cfg, corpus, tmp)
        raw = RawLoop(cfg, trainer.train_ids, len(corpus.vocab))
        chars = args.batch * args.seq
        for _ in range(2):  # warm up both
            raw.train_step()
            trainer.train_step()
        r_raw, r_ours = [], []
        for _ in range(args.blocks):
            r_raw.append(rate(raw.train_step, args.steps, chars))
            r_ours.append(rate(trainer.train_step, args.steps, chars))
        a, b = statistics.median(r_raw), statistics.median(r_ours)
        extra = a / b - 1
        ok &= extra <= 0.05
        print(f"{prec:<10} {a:>9,.0f} {b:>12,.0f} {extra:>+8.1%}", flush=True)
    print(f"# target: rnnchat adds <= 5% over the raw loop: {'met' if ok else 'NOT met'}")
    return ok


def val_at_budget(args, corpus, tmp: Path) -> None:
    what = f"{args.val_budget:.0f} s" if args.val_budget else f"{args.val_steps} steps"
    print(f"# {what} of training per precision, {args.cell} {args.layers}x{args.hidden}, "
          f"batch {args.batch}, seq {args.seq}, seed 1337; validation loss (nats/char, stateful, 16 streams)")
    head = f"{'precision':<10} {'steps':>6} {'chars/s':>9} {'val loss':>9}"
    print(head + "\n" + "-" * len(head))
    for prec in args.precision.split(","):
        cfg = config(args, prec, budget=args.val_budget or None, steps=args.val_steps or None, lr=args.lr)
        trainer = make_trainer(cfg, corpus, tmp)
        p = trainer.run()
        val = p.last_val if p.last_val is not None else math.nan
        print(f"{prec:<10} {p.step:>6} {p.chars / p.elapsed:>9,.0f} {val:>9.4f}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--embedding", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--val-budget", type=float, default=0, help="seconds: train this long per precision")
    ap.add_argument("--val-steps", type=int, default=0,
                    help="train this many steps per precision (quality per step, immune to other load)")
    ap.add_argument("--corpus", default=str(CORPUS))
    args = ap.parse_args(argv)
    set_cpu_threads()
    corpus = load_corpus(args.corpus)
    with tempfile.TemporaryDirectory() as tmp:
        if args.val_budget or args.val_steps:
            val_at_budget(args, corpus, Path(tmp))
        else:
            overhead(args, corpus, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
