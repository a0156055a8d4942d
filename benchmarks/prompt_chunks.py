"""Prompt reading by chunk size: chars/s of ``Engine.feed`` for one prompt.

Reads the same prompt (``--chars`` characters of Tiny Shakespeare) with the bundled model in
chunks of each ``--sizes`` value and in one fused forward ("whole", what rnnchat did before),
in fp32 and with the default prompt precision (bf16 on a CPU with native bf16), interleaved,
best of ``--repeats``, on one torch thread (``RNNCHAT_THREADS`` to change it). Memory is
bounded by the chunk by construction (tests/reliability/test_prompts.py measures it).

    .venv/bin/python benchmarks/prompt_chunks.py [--chars 65536] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", type=int, default=65536)
    ap.add_argument("--sizes", default="1024,4096,16384,0", help="0: the whole prompt in one call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precisions", default="fp32,auto")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("RNNCHAT_THREADS", "1")))  # 1: steady on a shared machine
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average {os.getloadavg()[0]:.1f}; {args.chars} chars, bundled model (2x512 LSTM)")
    for precision in args.precisions.split(","):
        engine = _engine(precision)
        ids = _ids(engine, args.chars)
        engine.feed(ids[:2000], engine.initial_state())
        best = {s: float("inf") for s in sizes}
        for _ in range(args.repeats):
            for s in sizes:
                t0 = time.perf_counter()
                engine.feed(ids, engine.initial_state(), s or len(ids))
                best[s] = min(best[s], time.perf_counter() - t0)
        ref = max(sizes, key=lambda s: s or len(ids))
        for s in sizes:
            name = "whole" if s == 0 else str(s)
            print(f"{engine.prompt_precision:5} chunk {name:>6}: {len(ids) / best[s]:9,.0f} chars/s  "
                  f"(x{best[ref] / best[s]:.2f} of the largest)")


if __name__ == "__main__":
    main()
