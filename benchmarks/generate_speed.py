"""Generation speed at batch 1: rnnchat against the naive loop and the weight-streaming limit.

For each model (2x512 LSTM, GRU and RNN with random weights, and the bundled
model when it is present) this measures, interleaved in one run:

* naive   -- ``nn.LSTM``/``nn.GRU``/``nn.RNN`` called on one character per step, then
             ``softmax`` + ``torch.multinomial``: what most char-rnn ports do (with
             1 torch thread and with one per core: the faster counts);
* rnnchat -- ``Engine.stream`` (the whole per-character path: sampling at
             temperature 0.8 with the seeded RNG, the Stream's bookkeeping);
* limit   -- one fp32 matrix-vector product over every weight matrix of the model
             per character (NumPy, same process, same BLAS threads): the cost of
             streaming the weights once, nothing else;

and prints medians of the repeats and the two ratios the targets are about
(rnnchat / naive >= 20, rnnchat / limit >= 0.70). Then the time to the first
character after a 2,000-character prompt (one fused forward + one sample;
the better of 1 and all torch threads), read in fp32 and in bf16.

Then, side by side in the same run, the weight formats and batched samples
(issue 17): for fp32, bf16 and int8 weights and K = 1, 4, 8 streams, the total
chars/s of ``Engine.stream`` (K = 1) and of ``multi.alternatives`` (K > 1), the
fp32 limit above, and each format's "limit" computed the same way from its
bytes (fp32 limit x fp32 bytes / format bytes); the bytes a character reads and
the resident memory the format's weights add. ``--quality`` adds the validation
loss of each format on the bundled model (see :func:`format_quality`).

    .venv/bin/python benchmarks/generate_speed.py [--repeats 5] [--chars 2000] [--model PATH ...]
    .venv/bin/python benchmarks/generate_speed.py --only-formats --quality [--cells lstm]

Speed does not depend on the weights, so random ones are fine. Measure on a
quiet machine: other processes on the 2 cores change every absolute figure
(the ratios, measured side by side, move much less).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from rnnchat.engine.checkpoint import Loaded, load_checkpoint  # noqa: E402
from rnnchat.engine.blas import set_blas_threads  # noqa: E402
from rnnchat.engine.device import set_cpu_threads  # noqa: E402
from rnnchat.engine.generate import Engine  # noqa: E402
from rnnchat.engine.model import CharRNN, ModelConfig, registered_cell  # noqa: E402
from rnnchat.core.params import SamplingParams  # noqa: E402
from rnnchat.core.vocab import Vocab  # noqa: E402

BUNDLED = ROOT / "rnnchat" / "default_plugins" / "models" / "shakespeare.safetensors"
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
VOCAB = Vocab(sorted(set("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")))


def random_model(cell: str, hidden=512, layers=2, embedding=64) -> Loaded:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(cell=cell, vocab_size=len(VOCAB), hidden=hidden, layers=layers,
                                embedding=embedding), registered_cell(cell)).eval()
    return Loaded(model, VOCAB, {"cell": cell}, Path(f"<random {layers}x{hidden} {cell}>"))


# ---- naive: the torch.nn module per step ---------------------------------------
def naive_module(loaded: Loaded):
    m = loaded.model
    c = m.config
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}.get(c.cell)
    if cls is None:
        return None
    kw = {"nonlinearity": c.cell_options.get("nonlinearity", "tanh")} if c.cell == "rnn" else {}
    rnn = cls(c.embedding, c.hidden, c.layers, batch_first=True, **kw)
    with torch.no_grad():
        for i, cell in enumerate(m.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(rnn, f"{name}_l{i}").copy_(getattr(cell, name))
    return rnn.eval(), m.embedding, m.head


def naive_rate(parts, n: int, seed: int = 0) -> float:
    rnn, emb, head = parts
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = torch.tensor([[0]])
        h = None
        t0 = time.perf_counter()
        for _ in range(n):
            out, h = rnn(emb(x), h)
            probs = torch.softmax(head(out[0, -1]) / 0.8, -1)
            x = torch.multinomial(probs, 1, generator=gen).view(1, 1)
        return n / (time.perf_counter() - t0)


# ---- rnnchat ----------------------------------------------------------------
def rnnchat_rate(engine: Engine, n: int, seed: int = 0) -> float:
    logits, state = engine.feed([engine.default_start()], engine.initial_state())
    params = SamplingParams(temperature=0.8, seed=seed, max_chars=n)
    stream = engine.stream(logits, state, params)
    count = 0
    t0 = time.perf_counter()
    for _ in stream:
        count += 1
    return count / (time.perf_counter() - t0)


# ---- the weight-streaming limit ---------------------------------------------------
def weight_matrices(model) -> list[np.ndarray]:
    mats = []
    for cell in model.layers:
        for name in ("weight_ih", "weight_hh"):
            w = getattr(cell, name, None)
            if isinstance(w, torch.Tensor) and w.dim() == 2:
                mats.append(np.ascontiguousarray(w.detach().float().numpy()))
    mats.append(np.ascontiguousarray(model.head.weight.detach().float().numpy()))
    return mats


def limit_rate(mats, n: int) -> float:
    vecs = [np.random.default_rng(0).random(w.shape[1], dtype=np.float32) for w in mats]
    outs = [np.empty(w.shape[0], np.float32) for w in mats]
    pairs = list(zip(mats, vecs, outs))
    dot = np.dot
    t0 = time.perf_counter()
    for _ in range(n):
        for w, v, o in pairs:
            dot(w, v, out=o)
    return n / (time.perf_counter() - t0)


def first_char_ms(engine: Engine, prompt_ids: list[int], precision: str = "fp32") -> float:
    engine.prompt_precision = precision
    t0 = time.perf_counter()
    logits, state = engine.feed(prompt_ids, engine.initial_state())
    next(iter(engine.stream(logits, state, SamplingParams(temperature=0.8, seed=0, max_chars=1))))
    ms = (time.perf_counter() - t0) * 1000
    engine.prompt_precision = "fp32"
    return ms


def prompt_nats(engine: Engine, text: str, precision: str, window: int = 2000, windows: int = 10) -> float:
    """Mean loss (nats/char) of the model reading ``windows`` 2,000-char pieces of held-out text, each
    fed as one prompt from the initial state: how much a bf16 prompt read changes what the model knows."""
    import torch.nn.functional as F

    engine.prompt_precision = precision
    ids = engine.encode(text).ids
    total = 0.0
    for w in range(windows):
        piece = ids[w * window:(w + 1) * window + 1]
        x, y = piece[:-1], torch.tensor(piece[1:])
        with torch.inference_mode():
            if precision == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits, _ = engine.model(torch.tensor([x]), None)
            else:
                logits, _ = engine.model(torch.tensor([x]), None)
        total += F.cross_entropy(logits[0].float(), y).item()
    engine.prompt_precision = "fp32"
    return total / windows


def blas_note() -> str:
    notes = []
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            notes.append(f"{var}={os.environ[var]}")
    from rnnchat.engine.blas import blas_threads

    notes.append(f"BLAS threads {blas_threads()}")
    notes.append(f"torch threads {torch.get_num_threads()}")
    notes.append("load avg " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    return ", ".join(notes)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chars", type=int, default=2000, help="characters per rnnchat/limit repeat")
    ap.add_argument("--naive-chars", type=int, default=300)
    ap.add_argument("--model", action="append", default=[], help="a checkpoint to add (repeatable)")
    ap.add_argument("--cells", default="lstm,gru,rnn")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--no-prompt-quality", dest="prompt_quality", action="store_false",
                    help="skip the bf16 prompt-reading loss check on checkpoints")
    ap.add_argument("--only-formats", action="store_true", help="only the weight formats x samples table")
    ap.add_argument("--format-chars", type=int, default=400, help="characters per stream, formats table")
    ap.add_argument("--format-threads", default="", help="thread counts to try, formats table (default: 1 and all)")
    ap.add_argument("--quality", action="store_true", help="validation loss per format (bundled model)")
    args = ap.parse_args(argv)
    if args.only_formats:
        return formats_main(args)

    set_cpu_threads()
    engine_threads = set_blas_threads()
    torch_threads = torch.get_num_threads()
    limit_threads = sorted({1, os.cpu_count() or 1})
    models = [random_model(c, hidden=args.hidden) for c in args.cells.split(",") if c]
    paths = [Path(p) for p in args.model] + ([BUNDLED] if BUNDLED.exists() else [])
    models += [load_checkpoint(p) for p in paths]

    prompt = (CORPUS.read_text(encoding="utf-8") if CORPUS.exists() else "To be, or not to be. " * 100)[:2000]
    print(f"# generate_speed: batch 1, temperature 0.8, {args.repeats} repeats (medians); {blas_note()}")
    header = (f"{'model':<36} {'backend':<7} {'naive c/s':>9} {'rnnchat c/s/thr':>15} {'limit c/s/thr':>13} "
              f"{'x naive':>7} {'of limit':>8} {'1st char ms fp32/bf16':>22}")
    print(header)
    print("-" * len(header))
    ok = ok_limit = True
    for loaded in models:
        engine = Engine(loaded, "cpu")
        naive = naive_module(loaded)
        mats = weight_matrices(loaded.model)
        ids = engine.encode(prompt).ids
        rnnchat_rate(engine, 200)  # warm up
        limit_rate(mats, 200)
        r_naive: dict[int, list[float]] = {}
        first: dict[int, list[float]] = {}
        first16: dict[int, list[float]] = {}
        r_fast = []
        r_limit: dict[int, list[float]] = {}
        for rep in range(args.repeats):
            for n in limit_threads:  # torch threads too: the naive loop and the prompt at their best
                torch.set_num_threads(n)
                if naive is not None:
                    r_naive.setdefault(n, []).append(naive_rate(naive, args.naive_chars, rep))
                first.setdefault(n, []).append(first_char_ms(engine, ids))
                first16.setdefault(n, []).append(first_char_ms(engine, ids, "bf16"))
            torch.set_num_threads(torch_threads)
            r_fast.append(rnnchat_rate(engine, args.chars, rep))
            for n in limit_threads:  # the limit at every BLAS thread count; the best one counts
                set_blas_threads(n)
                r_limit.setdefault(n, []).append(limit_rate(mats, args.chars))
            set_blas_threads(engine_threads)
        limits = {n: statistics.median(v) for n, v in r_limit.items()}
        best = max(limits, key=limits.get)
        fast, limit = statistics.median(r_fast), limits[best]
        naive_by = {n: statistics.median(v) for n, v in r_naive.items()}
        naive_best = max(naive_by, key=naive_by.get) if naive_by else 0
        naive_med = naive_by.get(naive_best, float("nan"))
        f32 = min(statistics.median(v) for v in first.values())
        f16 = min(statistics.median(v) for v in first16.values())
        c = loaded.model.config
        name = f"{loaded.path.name if loaded.path.exists() else loaded.path} ({c.layers}x{c.hidden} {c.cell})"
        x_naive, of_limit = fast / naive_med, fast / limit
        ok &= (x_naive >= 20 or naive is None) and of_limit >= 0.70
        ok_limit &= of_limit >= 0.70
        first_ms = f"{f32:.1f} / {f16:.1f}"
        chosen = getattr(getattr(engine.fast, "threads", None), "threads", "-")
        print(f"{name:<36} {engine.backend:<7} {naive_med:>9,.0f} {fast:>13,.0f}/{chosen} {limit:>7,.0f}/{best} "
              f"{x_naive:>6.1f}x {of_limit:>8.0%} {first_ms:>22}", flush=True)
        if loaded.path.exists() and CORPUS.exists() and args.prompt_quality:
            held_out = CORPUS.read_text(encoding="utf-8")[-25000:]
            a, b = prompt_nats(engine, held_out, "fp32"), prompt_nats(engine, held_out, "bf16")
            print(f"{'':<36} prompt read in bf16: loss on 10 held-out 2,000-char prompts {b:.4f} nats/char "
                  f"(fp32: {a:.4f})", flush=True)
    print(f"# targets: >= 20x naive and >= 70% of limit: {'met' if ok else 'NOT met'} (70% of limit: "
          f"{'met' if ok_limit else 'NOT met'}); thr: BLAS threads (rnnchat: chosen per stream); "
          f"first char after a {len(prompt)}-char prompt (one fused forward + one sample) read in fp32 / bf16 "
          "(the default, auto, is bf16 for LSTM on CPUs with native bf16); chat first char: benchmarks/first_char.py")
    return formats_main(args)


def formats_main(args) -> int:
    """The weight formats x samples table (benchmarks/generate_formats.py)."""
    from generate_formats import run_formats

    set_cpu_threads()
    models = [random_model(c, hidden=args.hidden) for c in args.cells.split(",") if c]
    paths = [Path(p) for p in args.model] + ([BUNDLED] if BUNDLED.exists() else [])
    models += [load_checkpoint(p) for p in paths]
    print(f"# generate_speed --only-formats: temperature 0.8, {args.repeats} repeats (medians); {blas_note()}")
    for loaded in models:
        run_formats(loaded, args, weight_matrices, limit_rate, set_blas_threads,
                    CORPUS if args.quality and loaded.path.exists() else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
