"""Weight formats x batched samples for ``generate_speed.py`` (issue 17), measured side by side.

For each format (fp32, bf16, int8) and K = 1, 4, 8 streams: total chars/s (K = 1: ``Engine.stream``,
the whole single-stream path, at the thread count the stream chooses by timing itself, shown
as ``/a``; K > 1: ``multi.alternatives``, K seeds in one batched step, at 1 and at all BLAS/torch
threads, the faster count shown), interleaved with the fp32 limit of
``generate_speed.py`` in every repeat. A format's "limit" is computed the same way from its bytes:
the fp32 limit x fp32 bytes / the format's bytes (what it would reach if it streamed its weights as
fast as fp32 does). Resident memory: what building the format's weights added to the process.

``--quality``: the validation loss of each format over the last 10% of the corpus, read statefully
through the batched path (teacher forcing) in PIECES contiguous pieces side by side, so that every
format is measured by the same reading; the fp32 figure of ``rnnchat.engine.evaluate`` (the whole
text as one stream, torch) is printed beside it.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch

from rnnchat.engine.batched import BatchedModel
from rnnchat.engine.generate import Engine
from rnnchat.engine.multi import alternatives
from rnnchat.engine.quant import BYTES, FORMATS
from rnnchat.core.params import SamplingParams

KS = (1, 4, 8)
PIECES = 16


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def rate(engine: Engine, fmt: str, k: int, n: int, seed: int) -> float:
    engine.set_weights(fmt)
    logits, state = engine.feed([engine.default_start()], engine.initial_state())
    params = SamplingParams(temperature=0.8, seed=seed, max_chars=n)
    t0 = time.perf_counter()
    if k == 1:
        count = sum(1 for _ in engine.stream(logits, state, params))
    else:
        count = sum(len(a.text) for a in alternatives(engine, logits, state, params, k))
    return count / (time.perf_counter() - t0)


def set_threads(n: int, set_blas_threads) -> None:
    from rnnchat.engine.quant import set_threads as kernel_threads

    set_blas_threads(n)
    kernel_threads(n)  # torch's and rnnchat's own int8 kernel's


def format_quality(engine: Engine, fmt: str, ids: np.ndarray, pieces: int = PIECES) -> float:
    """Mean NLL (nats/char) of ``ids[1:]`` read through the batched path in ``fmt``."""
    bm = BatchedModel(engine.packed_weights(fmt))
    n = (len(ids) - 1) // pieces
    for _ in range(pieces):
        bm.add(engine.initial_state())
    x = ids[:n * pieces].reshape(pieces, n)
    y = ids[1:n * pieces + 1].reshape(pieces, n)
    total = 0.0
    rows = np.arange(pieces)
    for t in range(n):
        logits = bm.step(x[:, t]).astype(np.float64)
        m = logits.max(1)
        lse = m + np.log(np.exp(logits - m[:, None]).sum(1))
        total += float((lse - logits[rows, y[:, t]]).sum())
    return total / (n * pieces)


def run_formats(loaded, args, weight_matrices, limit_rate, set_blas_threads, corpus=None) -> None:
    engine = Engine(loaded, "cpu")
    mats = weight_matrices(loaded.model)
    fp32_bytes = sum(w.nbytes for w in mats)
    mem = {}
    for fmt in FORMATS:
        before = rss_mb()
        engine.packed_weights(fmt)
        mem[fmt] = rss_mb() - before
    threads = [int(t) for t in args.format_threads.split(",")] if args.format_threads \
        else sorted({1, os.cpu_count() or 1})
    n = args.format_chars
    for fmt in FORMATS:  # warm up
        rate(engine, fmt, 1, 50, 0)
    runs: dict = {}
    limits: dict = {}
    for rep in range(args.repeats):
        for th in threads:
            set_threads(th, set_blas_threads)
            limits.setdefault(th, []).append(limit_rate(mats, n))
            for fmt in FORMATS:
                for k in KS:
                    # (a single stream times its own thread count and leaves it set: set it again, so
                    # that K > 1 runs at th; K = 1's own choice is the one a user's stream makes)
                    set_threads(th, set_blas_threads)
                    runs.setdefault((fmt, k, "a" if k == 1 else th), []).append(rate(engine, fmt, k, n, rep))
    set_threads(1, set_blas_threads)
    lim = {th: statistics.median(v) for th, v in limits.items()}
    best_th = max(lim, key=lim.get)
    limit = lim[best_th]
    c = loaded.model.config
    name = f"{loaded.path.name if loaded.path.exists() else loaded.path} ({c.layers}x{c.hidden} {c.cell})"
    print(f"\n{name}: fp32 limit {limit:,.0f} c/s/{best_th} ({fp32_bytes / 1e6:.1f} MB per char); "
          f"{args.repeats} repeats, {n} chars per stream; load avg "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    head = f"{'weights':<7} {'MB/char':>7} {'RSS MB':>6} {'limit c/s':>9}" + "".join(
        f" {'K=' + str(k) + ' c/s/thr':>14} {'of limit':>8}" for k in KS) + f" {'K=8 / K=1':>9}"
    print(head)
    print("-" * len(head))
    base = None
    for fmt in FORMATS:
        wbytes = engine.packed_weights(fmt).nbytes
        flimit = limit * BYTES["fp32"] / BYTES[fmt]
        cells = []
        med = {}
        for k in KS:
            by_th = {th: statistics.median(runs[(fmt, k, th)]) for th in (["a"] if k == 1 else threads)}
            th = max(by_th, key=by_th.get)
            med[k] = by_th[th]
            cells.append(f" {med[k]:>12,.0f}/{th} {med[k] / flimit:>8.0%}")
        base = base or med[1]
        print(f"{fmt:<7} {wbytes / 1e6:>7.2f} {mem[fmt]:>6.0f} {flimit:>9,.0f}" + "".join(cells)
              + f" {med[8] / med[1]:>8.1f}x", flush=True)
        print(f"{'':<7} vs the fp32 limit: " + ", ".join(f"K={k} {med[k] / limit:.2f}x" for k in KS)
              + f"; vs fp32 single stream: K=1 {med[1] / base:.2f}x", flush=True)
    if corpus is not None:
        text = corpus.read_text(encoding="utf-8")
        val = text[int(len(text) * 0.9):]
        ids = np.asarray(engine.encode(val).ids, np.int64)
        set_threads(max(threads), set_blas_threads)
        from rnnchat.engine.evaluate import evaluate

        whole = evaluate(engine.model, torch.tensor(ids), "cpu")
        losses = {fmt: format_quality(engine, fmt, ids) for fmt in FORMATS}
        set_threads(1, set_blas_threads)
        print(f"validation loss, last 10% ({len(ids):,} chars), nats/char: fp32 whole text as one stream "
              f"(torch) {whole:.4f}; batched path in {PIECES} stateful pieces: "
              + ", ".join(f"{fmt} {v:.4f} ({v - losses['fp32']:+.4f})" for fmt, v in losses.items()), flush=True)
