"""Quality per CPU-second: rnnchat's default preset against a plain PyTorch reference, same budget.

    python benchmarks/train_quality.py [--budget 90] [--runs 3] [--corpus PATH] [--set key=value ...]
    python benchmarks/train_quality.py --no-bf16     # as on a CPU without native bf16

In one process, one after the other (alternating which goes first from run to
run), for the same wall-clock training budget on Tiny Shakespeare:

* rnnchat: ``Trainer`` with the ``default`` preset exactly as ``rnnchat train
  CORPUS --budget 90s`` builds it (precision ``auto``, evaluations every 200
  steps, whose time the budget does not count; the best of them is kept);
* the reference: a plain ``nn.Embedding(V, 64) -> nn.LSTM(64, 384, 2 layers)
  -> nn.Linear`` char model, batch 16 of random 128-character windows from a
  zero state, AdamW lr 5e-3 (weight decay 0.01), cosine decay to lr/10 over
  the budget, gradient clipping at 1.0, fp32, a straight training loop.

Both are then scored by the same code here, independent of rnnchat's: the
validation loss (nats/char) on the standard split (the last 10% of the
characters, vocabulary from the whole text), the whole split read statefully
as one stream from a zero state. It prints each loss and the ratio
rnnchat/reference; with ``--runs N``, the medians. ``--set key=value``
overrides a TrainConfig field of rnnchat's side (for tuning presets, e.g.
``--set hidden=512 --set lr=4e-3``). Tests never run this: it measures time.

``--no-bf16`` measures as on a CPU without native bf16 matrix instructions, on one that has them:
``ONEDNN_MAX_CPU_ISA=AVX2`` is set before torch is imported (oneDNN then uses neither AMX nor
AVX512-BF16, here and in any subprocess) and rnnchat's side trains in fp32, which is what
``--precision auto`` picks on such a CPU.

Figures: docs/training.md (with the command, the machine and its load).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
TARGET = 1.58


def standard_split(text: str):
    import torch

    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(len(ids) * 0.9)
    return chars, ids[:cut], ids[cut:]


def validation_loss(forward, val, chunk: int = 1024) -> float:
    """Mean NLL of val[1:] given everything before it, one stream, state carried across chunks."""
    import torch
    import torch.nn.functional as F

    x, y = val[:-1], val[1:]
    total, state = 0.0, None
    with torch.inference_mode():
        for s in range(0, len(x), chunk):
            logits, state = forward(x[s:s + chunk][None], state)
            total += F.cross_entropy(logits[0].float(), y[s:s + chunk], reduction="sum").item()
    return total / len(y)


# ---- the plain reference ----------------------------------------------------------

def reference_run(train, val, vocab: int, budget: float, seed: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, 64)
            self.lstm = nn.LSTM(64, 384, num_layers=2, batch_first=True)
            self.head = nn.Linear(384, vocab)

        def forward(self, x, state=None):
            y, state = self.lstm(self.emb(x), state)
            return self.head(y), state

    torch.manual_seed(seed)
    model = Ref()
    lr, batch, seq = 5e-3, 16, 128
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed + 1)
    steps, t0, elapsed = 0, time.perf_counter(), 0.0
    while elapsed < budget:
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
        starts = torch.randint(0, len(train) - seq - 1, (batch,), generator=gen)
        chunk = train[starts[:, None] + torch.arange(seq + 1)]
        logits, _ = model(chunk[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), chunk[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
        elapsed = time.perf_counter() - t0
    model.eval()
    t1 = time.perf_counter()
    val_loss = validation_loss(model, val)
    return {"val": val_loss, "steps": steps, "train_s": elapsed, "chars_s": steps * batch * seq / elapsed,
            "eval_s": time.perf_counter() - t1, "params": sum(p.numel() for p in model.parameters())}


# ---- rnnchat's preset ------------------------------------------------------------

def rnnchat_run(corpus_path: Path, budget: float, seed: int, preset: str, overrides: dict) -> dict:
    import torch

    from rnnchat.engine.checkpoint import load_checkpoint
    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.precision import auto_precision
    from rnnchat.engine.train import BEST, TrainConfig, Trainer
    from rnnchat.training.presets import PRESETS

    device = torch.device("cpu")
    options = dict(PRESETS[preset], seed=seed, budget=budget, eval_every=200, save_every=200)
    options["precision"] = auto_precision(device)
    options.update(overrides)
    cfg = TrainConfig(**options)
    corpus = load_corpus(corpus_path)
    with tempfile.TemporaryDirectory(prefix="rnnchat-bench-") as tmp:
        wall = time.perf_counter()
        trainer = Trainer(cfg, corpus, Path(tmp), None, device)
        progress = trainer.run()
        wall = time.perf_counter() - wall
        best = load_checkpoint(Path(tmp) / BEST, device).model
    _, _, val = standard_split(corpus_path.read_text(encoding="utf-8"))
    t1 = time.perf_counter()
    val_loss = validation_loss(best, val)
    return {"val": val_loss, "steps": progress.step, "train_s": progress.elapsed, "wall_s": wall,
            "chars_s": progress.chars / progress.elapsed, "eval_s": time.perf_counter() - t1,
            "params": best.num_parameters(), "precision": cfg.precision,
            "shape": f"{cfg.cell} {cfg.layers}x{cfg.hidden} emb {cfg.embedding}, batch {cfg.batch_size}, "
                     f"seq {cfg.seq_len}, lr {cfg.lr}, dropout {cfg.dropout}, carry_state {cfg.carry_state}"}


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=90.0, help="seconds of training for each side")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--only", choices=["rnnchat", "reference"], help="run one side only (for tuning)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a TrainConfig field on rnnchat's side")
    ap.add_argument("--no-bf16", action="store_true",
                    help="as on a CPU without native bf16: oneDNN limited to AVX2, rnnchat in fp32")
    args = ap.parse_args(argv)
    if args.no_bf16:
        if "torch" in sys.modules:
            print("--no-bf16 must take effect before torch is imported", file=sys.stderr)
            return 2
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"  # inherited by subprocesses too
    corpus = Path(args.corpus)
    if not corpus.exists():
        print(f"corpus {corpus} not found (the benchmark reads ../shared/corpora/tinyshakespeare.txt)",
              file=sys.stderr)
        return 1

    import torch

    from rnnchat.engine.device import set_cpu_threads

    set_cpu_threads()
    text = corpus.read_text(encoding="utf-8")
    chars, train, val = standard_split(text)
    overrides = parse_set(args.set)
    if args.no_bf16:
        overrides.setdefault("precision", "fp32")  # what auto picks on a CPU without native bf16
    print(f"budget {args.budget:.0f}s each, {corpus.name} ({len(text):,} chars, vocab {len(chars)}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
          f", load average at start {os.getloadavg()[0]:.2f}" + (f", overrides {overrides}" if overrides else "")
          + (f", ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}" if os.environ.get("ONEDNN_MAX_CPU_ISA") else ""))
    results = {"rnnchat": [], "reference": []}
    for run in range(args.runs):
        order = ["rnnchat", "reference"] if run % 2 == 0 else ["reference", "rnnchat"]
        for side in order:
            if args.only and side != args.only:
                continue
            seed = args.seed + run
            if side == "rnnchat":
                r = rnnchat_run(corpus, args.budget, seed, args.preset, overrides)
                what = f"rnnchat {args.preset} preset ({r['shape']}, {r['precision']})"
            else:
                r = reference_run(train, val, len(chars), args.budget, seed)
                what = "plain PyTorch reference (nn.LSTM 2x384 emb 64, batch 16, seq 128, fp32)"
            results[side].append(r["val"])
            print(f"run {run + 1}/{args.runs}  {what}: val {r['val']:.4f}  ({r['steps']} steps, "
                  f"{r['chars_s']:,.0f} chars/s, {r['train_s']:.1f}s training, {r['params'] / 1e6:.2f}M params)",
                  flush=True)
        if results["rnnchat"] and results["reference"] and len(results["rnnchat"]) == len(results["reference"]):
            print(f"run {run + 1}/{args.runs}  ratio rnnchat/reference {results['rnnchat'][-1] / results['reference'][-1]:.3f}",
                  flush=True)
    ours = statistics.median(results["rnnchat"]) if results["rnnchat"] else None
    ref = statistics.median(results["reference"]) if results["reference"] else None
    label = "median of" if args.runs > 1 else "after"
    summary = []
    if ours is not None:
        summary.append(f"rnnchat {ours:.4f} ({'meets' if ours <= TARGET else 'misses'} the {TARGET} target)")
    if ref is not None:
        summary.append(f"reference {ref:.4f}")
    if ours is not None and ref is not None:
        summary.append(f"ratio {ours / ref:.3f}")
    print(f"{label} {args.runs} run(s) of {args.budget:.0f}s: " + ", ".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
