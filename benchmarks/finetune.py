"""Fine-tuning the bundled model against training from scratch, same budget, same sizes, on a new text.

    python benchmarks/finetune.py --text PATH [--budget 60] [--runs 3] [--model shakespeare]

In one process, one after the other (alternating which goes first from run to run), for the same
wall-clock training budget on a text the bundled model has not seen:

* fine-tune: ``rnnchat train TEXT --init-from shakespeare --preset large --budget B`` as the CLI
  builds it (the model's 2x512 LSTM, its vocabulary plus the text's new characters, its dropout and
  peak learning rate);
* scratch: ``rnnchat train TEXT --preset large --budget B``: the same sizes (the large preset is the
  bundled model's shape) from a random initialisation.

Both are scored by the same code (benchmarks/train_quality.py's ``validation_loss``): nats/char on
the last 10% of the text read statefully as one stream, the final weights in eval mode. The bundled
model before any training is scored too. It prints each loss and, with ``--runs N``, the medians.

The text used for the figures in docs/training.md: 200,000 characters of the King James Version
(Mark and Luke, public domain), from Debian's ``bible-kjv-text`` package, not committed. Make it with

    apt-get download bible-kjv bible-kjv-text && for d in bible-kjv*.deb; do dpkg-deb -x $d kjv; done
    kjv/usr/bin/bible -p $PWD/kjv/usr/lib "Mark1:1-John21:25" > raw.txt
    python benchmarks/finetune.py --make-text raw.txt --text kjv.txt

Tests never run this: it measures time.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_quality import validation_loss  # noqa: E402

TEXT_CHARS = 200_000


def make_text(raw: Path, out: Path) -> None:
    """The output of the ``bible`` program -> verses one per line, no numbers or headings, 200,000 chars."""
    verses: list[list[str]] = []
    for line in raw.read_text(encoding="utf-8").splitlines():
        if not line.strip() or re.fullmatch(r"[1-3]? ?[A-Z][a-z]+ \d+", line.strip()):
            continue
        m = re.match(r"\s+\d+ (.*)", line)
        if m:
            verses.append([m.group(1)])
        elif verses:
            verses[-1].append(line.strip())
    text = ""
    for verse in verses:
        line = " ".join(verse) + "\n"
        if len(text) + len(line) > TEXT_CHARS:
            break
        text += line
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}: {len(text):,} characters")


def run_side(side: str, text: Path, model: str, budget: float, seed: int, train: bool = True) -> dict:
    import torch

    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.finetune import base_vocab, extend_corpus, plan
    from rnnchat.engine.train import TrainConfig, Trainer
    from rnnchat.training.presets import PRESETS

    device = torch.device("cpu")
    options = dict(PRESETS["large"], cell_options={})
    if side == "fine-tune":
        options, _ = plan(model, options, given=set())
    cfg = TrainConfig(**options, seed=seed, budget=budget, eval_every=10**9, save_every=10**9, precision="fp32")
    corpus = load_corpus(text)
    if cfg.init_from:
        corpus = extend_corpus(corpus, base_vocab(cfg.init_from))
    with tempfile.TemporaryDirectory(prefix="rnnchat-bench-") as tmp:
        trainer = Trainer(cfg, corpus, Path(tmp), None, device, fresh=True)  # fresh: the init hook runs
        wall = time.perf_counter()
        progress = trainer.run() if train else trainer.progress
        wall = time.perf_counter() - wall
    trainer.model.eval()
    val = validation_loss(trainer.model, trainer.val_ids.long())
    return {"val": val, "steps": progress.step, "wall_s": wall, "vocab": len(corpus.vocab),
            "lr": cfg.lr, "dropout": cfg.dropout}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", required=True, help="the new text (UTF-8)")
    ap.add_argument("--make-text", metavar="RAW", help="first write --text from the bible program's output")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of training for each side")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model", default="shakespeare", help="the model to fine-tune (name or path)")
    args = ap.parse_args(argv)
    text = Path(args.text)
    if args.make_text:
        make_text(Path(args.make_text), text)
    import torch

    from rnnchat.engine.device import set_cpu_threads

    set_cpu_threads()
    print(f"budget {args.budget:.0f}s each, {text.name} ({len(text.read_text(encoding='utf-8')):,} chars), "
          f"model {args.model}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, load average at start {os.getloadavg()[0]:.2f}",
          flush=True)
    base = run_side("fine-tune", text, args.model, args.budget, 1337, train=False)
    print(f"{args.model} before any training: val {base['val']:.4f} (vocab {base['vocab']})", flush=True)
    results: dict[str, list[float]] = {"fine-tune": [], "scratch": []}
    for run in range(args.runs):
        order = ["fine-tune", "scratch"] if run % 2 == 0 else ["scratch", "fine-tune"]
        for side in order:
            r = run_side(side, text, args.model, args.budget, 1337 + run)
            results[side].append(r["val"])
            print(f"run {run + 1}/{args.runs}  {side:<9}: val {r['val']:.4f}  ({r['steps']} steps, "
                  f"{r['wall_s']:.1f}s, vocab {r['vocab']}, lr {r['lr']}, dropout {r['dropout']}, "
                  f"load {os.getloadavg()[0]:.2f})", flush=True)
    ft, sc = statistics.median(results["fine-tune"]), statistics.median(results["scratch"])
    print(f"median of {args.runs} run(s) of {args.budget:.0f}s: fine-tune {ft:.4f}, scratch {sc:.4f} "
          f"({'fine-tune lower' if ft < sc else 'fine-tune NOT lower'}), bundled model untrained "
          f"{base['val']:.4f}")
    return 0 if ft < sc else 1


if __name__ == "__main__":
    raise SystemExit(main())
