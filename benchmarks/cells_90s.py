"""Cells side by side: training speed and validation loss after the same wall-clock budget.

    python benchmarks/cells_90s.py [--budget 90] [--cells mingru,minlstm,lstm,gru] [--threads 1]

Trains each cell for ``--budget`` seconds (evaluation time excluded) on Tiny
Shakespeare (first 90% train, last 10% validation, the standard split) with
the same model shape and settings, one after the other in one process, then
prints training characters per second and the validation loss (nats/char,
whole split read as one stream). mingru/minlstm need ``pip install
./plugins/rnnchat-mingru``. Ratios are relative to the first built-in cell
in the list (lstm by default).

Figures: see plugins/rnnchat-mingru/README.md (with the command, the machine and the load it ran under).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=90.0, help="seconds of training per cell")
    ap.add_argument("--cells", default="mingru,minlstm,lstm,gru")
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--embedding", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RNNCHAT_THREADS", "1")))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    import torch

    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.evaluate import evaluate
    from rnnchat.engine.precision import auto_precision
    from rnnchat.engine.train import TrainConfig, Trainer
    from rnnchat.plugins.manager import get_host

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precision = auto_precision(device) if args.precision == "auto" else args.precision
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    missing = [c for c in cells if c not in get_host().cells]
    if missing:
        print(f"cells not installed: {', '.join(missing)} (pip install ./plugins/rnnchat-mingru)", file=sys.stderr)
        return 1
    corpus = load_corpus(Path(args.corpus))
    print(f"{corpus.name}: {corpus.text_chars:,} chars; {args.layers}x{args.hidden}, embedding {args.embedding}, "
          f"seq {args.seq_len}, batch {args.batch_size}, lr {args.lr}, {precision}, {args.budget:.0f}s per cell, "
          f"{args.threads} thread(s) on {device}; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for cell in cells:
        cfg = TrainConfig(cell=cell, layers=args.layers, hidden=args.hidden, embedding=args.embedding,
                          seq_len=args.seq_len, batch_size=args.batch_size, lr=args.lr, budget=args.budget,
                          eval_every=10**9, save_every=10**9, precision=precision, seed=1337)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(cfg, corpus, Path(tmp), None, device)
            load0 = os.getloadavg()[0]
            progress = trainer.run()
            val = evaluate(trainer.model, trainer.val_ids, device, streams=1)
        rows.append(dict(cell=cell, params=trainer.model.num_parameters(), steps=progress.step,
                         speed=progress.chars / progress.elapsed, val=val, load=(load0 + os.getloadavg()[0]) / 2))
        r = rows[-1]
        print(f"  {cell:<8} {r['params']:>9,} params  {r['steps']:5d} steps  {r['speed']:8,.0f} chars/s  "
              f"val {r['val']:.4f}  (load avg {r['load']:.1f})", flush=True)
    base = next((r for r in rows if r["cell"] in ("lstm", "gru", "rnn")), rows[0])
    print(f"\n| cell | params | train chars/s | vs {base['cell']} | val loss (nats/char) | steps |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['cell']} | {r['params']:,} | {r['speed']:,.0f} | {r['speed'] / base['speed']:.2f}x | "
              f"{r['val']:.4f} | {r['steps']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
