"""Prompt reading by chunk size: chars/s and peak memory of ``Engine.feed`` for one prompt.

Reads the same prompt (``--chars`` characters of Tiny Shakespeare) with the bundled model in
chunks of each ``--sizes`` value and in one fused forward ("whole", what rnnchat did before),
in fp32 and with the default prompt precision (bf16 on a CPU with native bf16), interleaved,
best of ``--repeats``. The extra memory of one read is the growth of the process's peak RSS
(ru_maxrss), measured in a fresh subprocess per size so earlier reads do not hide it.

    .venv/bin/python benchmarks/prompt_chunks.py [--chars 65536] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _engine(precision: str):
    from generate_speed import BUNDLED
    from rnnchat.engine.checkpoint import load_checkpoint
    from rnnchat.engine.generate import Engine

    return Engine(load_checkpoint(BUNDLED), "cpu", fast=False, prompt_precision=precision)


def _ids(engine, chars: int) -> list[int]:
    from generate_speed import CORPUS

    text = CORPUS.read_text(encoding="utf-8")
    text = (text * (chars // len(text) + 1))[:chars]
    return engine.encode(text).ids


def one_rss(size: int, chars: int, precision: str) -> None:
    """(in a subprocess) print the peak RSS growth in MB of one read."""
    engine = _engine(precision)
    ids = _ids(engine, chars)
    engine.feed(ids[:200], engine.initial_state(), size or len(ids))  # warm up the kernels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    engine.feed(ids, engine.initial_state(), size or len(ids))
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", type=int, default=65536)
    ap.add_argument("--sizes", default="1024,4096,16384,0", help="0: the whole prompt in one call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rss", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss:
        return one_rss(int(args.rss[0]), int(args.rss[1]), args.rss[2])
    import torch

    torch.set_num_threads(int(os.environ.get("RNNCHAT_THREADS", "1")))  # 1: steady on a shared machine
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average {os.getloadavg()[0]:.1f}; {args.chars} chars, bundled model (2x512 LSTM)")
    for precision in ("fp32", "auto"):
        engine = _engine(precision)
        ids = _ids(engine, args.chars)
        engine.feed(ids[:2000], engine.initial_state())
        best = {s: float("inf") for s in sizes}
        for _ in range(args.repeats):
            for s in sizes:
                t0 = time.perf_counter()
                engine.feed(ids, engine.initial_state(), s or len(ids))
                best[s] = min(best[s], time.perf_counter() - t0)
        for s in sizes:
            rss = subprocess.run([sys.executable, __file__, "--rss", str(s), str(args.chars), precision],
                                 capture_output=True, text=True, check=True).stdout.strip()
            name = "whole" if s == 0 else str(s)
            print(f"{engine.prompt_precision:5} chunk {name:>6}: {len(ids) / best[s]:9,.0f} chars/s  "
                  f"(x{best[0] / best[s] if 0 in best else 1:.2f} of whole), peak RSS +{float(rss):,.0f} MB")


if __name__ == "__main__":
    main()
