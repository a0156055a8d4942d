"""Generation speed on an accelerator: the naive loop against rnnchat's captured step, same run.

For each model (2x512 LSTM, GRU, RNN with random weights, and the bundled model),
on ``--device`` (default cuda), interleaved, medians of ``--repeats``:

* naive   -- ``nn.LSTM``/``nn.GRU``/``nn.RNN`` on the device, one character per call,
             softmax + ``torch.multinomial`` (a host sync per character to read it);
* rnnchat -- ``Engine.stream`` on the device (on CUDA: one captured graph per character,
             sampling on the device, one read of 3 numbers per character);
* same    -- whether rnnchat's greedy text equals the reference path's (``fast=False``:
             ``model.step`` per character) for 300 characters;
* first   -- ms to the first character after a 2,000-character prompt (one fused
             forward + one character), read in fp32 and in bf16.

    .venv/bin/python benchmarks/device_speed.py [--device cuda] [--repeats 5]

With ``--device cpu`` it runs the same comparison on the NumPy path (a check of the
script itself). The chars/s of a GPU at batch 1 are bound by kernel launches, not by
reading weights, so there is no weight-streaming column here; see
``generate_speed.py`` for the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from generate_speed import BUNDLED, CORPUS, naive_module, random_model  # noqa: E402
from rnnchat.engine.checkpoint import load_checkpoint  # noqa: E402
from rnnchat.engine.generate import Engine  # noqa: E402
from rnnchat.core.params import SamplingParams  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive_rate(parts, device: torch.device, n: int, seed: int) -> float:
    rnn, emb, head = parts
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        x = torch.tensor([[0]], device=device)
        h = None
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            out, h = rnn(emb(x), h)
            probs = torch.softmax(head(out[0, -1]) / 0.8, -1)
            x = torch.multinomial(probs, 1, generator=gen).view(1, 1)
            x.item()  # what a chat loop does to print the character
        return n / (time.perf_counter() - t0)


def stream_text(engine: Engine, params: SamplingParams) -> str:
    logits, state = engine.feed([engine.default_start()], engine.initial_state())
    return "".join(t.char for t in engine.stream(logits, state, params))


def rnnchat_rate(engine: Engine, n: int, seed: int) -> float:
    logits, state = engine.feed([engine.default_start()], engine.initial_state())
    stream = engine.stream(logits, state, SamplingParams(temperature=0.8, seed=seed, max_chars=n))
    t0 = time.perf_counter()
    count = sum(1 for _ in stream)
    return count / (time.perf_counter() - t0)


def first_ms(engine: Engine, ids: list[int], precision: str) -> float:
    engine.set_prompt_precision(precision)
    sync(engine.device)
    t0 = time.perf_counter()
    logits, state = engine.feed(ids, engine.initial_state())
    next(iter(engine.stream(logits, state, SamplingParams(temperature=0.8, seed=0, max_chars=1))))
    return (time.perf_counter() - t0) * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chars", type=int, default=2000)
    ap.add_argument("--naive-chars", type=int, default=500)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; run with --device cpu to check the script", file=sys.stderr)
        return 1
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    models = [random_model(c) for c in ("lstm", "gru", "rnn")]
    models += [load_checkpoint(BUNDLED)] if BUNDLED.exists() else []
    text = CORPUS.read_text(encoding="utf-8") if CORPUS.exists() else "To be, or not to be. " * 100
    print(f"# device_speed on {name}: batch 1, temperature 0.8, {args.repeats} repeats (medians)")
    header = (f"{'model':<36} {'backend':<10} {'naive c/s':>9} {'rnnchat c/s':>11} {'x naive':>7} "
              f"{'same':>5} {'1st char ms fp32/bf16':>22}")
    print(header)
    print("-" * len(header))
    for loaded in models:
        engine = Engine(loaded, device)
        reference = Engine(loaded, device, fast=False)  # the same weights, model.step per character
        greedy = SamplingParams(temperature=0, max_chars=300)
        same = stream_text(engine, greedy) == stream_text(reference, greedy)
        parts = naive_module(loaded)
        parts = tuple(p.to(device) for p in parts)
        ids = engine.encode(text[:2000]).ids
        rnnchat_rate(engine, 200, 0)  # warm up (captures the graph)
        naive_rate(parts, device, 50, 0)
        r_naive, r_fast, f32, f16 = [], [], [], []
        for rep in range(args.repeats):
            r_naive.append(naive_rate(parts, device, args.naive_chars, rep))
            r_fast.append(rnnchat_rate(engine, args.chars, rep))
            f32.append(first_ms(engine, ids, "fp32"))
            f16.append(first_ms(engine, ids, "bf16"))
        naive, fast = statistics.median(r_naive), statistics.median(r_fast)
        c = loaded.model.config
        label = f"{loaded.path.name if loaded.path.exists() else loaded.path} ({c.layers}x{c.hidden} {c.cell})"
        firsts = f"{statistics.median(f32):.1f} / {statistics.median(f16):.1f}"
        print(f"{label:<36} {engine.backend:<10} {naive:>9,.0f} {fast:>11,.0f} {fast / naive:>6.1f}x "
              f"{'yes' if same else 'NO':>5} {firsts:>22}", flush=True)
    print("# targets (issue 6): rnnchat >= 20x naive; same greedy text as the reference path; "
          "first char <= 30 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
