"""What the 16-client goal of `benchmarks/serve_speed.py` can reach on this machine without HTTP.

In one run, interleaved, on the bundled model (its default int8 weights):

* one stream   -- ``Engine.feed`` + ``Engine.stream`` in this process (the CLI's path; its kernels
                  on every core), 2,000 characters, timed from the prompt;
* 16 streams   -- as a server runs them at 16 clients: two processes of 8 streams each
                  (``BatchedStreams``, one kernel thread each), started together, 2,000
                  characters each; all characters over the time from the first start to the last end.

It prints each round's two rates and their ratio, then the median ratio: the most the served
16-client / 1-client ratio could be if HTTP (the server's process, the clients) cost nothing.

    .venv/bin/python benchmarks/serve_ceiling.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
CHARS = 2000


def half(seeds, rounds: int, go, done) -> None:
    """One engine process's 8 streams, ``rounds + 1`` times (the first a warm-up)."""
    sys.path.insert(0, str(ROOT))
    from rnnchat.core import heap
    from rnnchat.core.params import SamplingParams
    from rnnchat.engine import quant
    from rnnchat.engine.blas import set_blas_threads
    from rnnchat.engine.multi import BatchedStreams
    from rnnchat.engine.runtime import open_engine
    from rnnchat.engine.sampling import Sampler

    engine, _ = open_engine("shakespeare", "cpu")
    heap.freeze()
    logits, state = engine.feed(engine.encode("ROMEO:").ids, engine.initial_state())
    quant.set_threads(1)
    set_blas_threads(1)
    for rnd in range(rounds + 1):
        streams = BatchedStreams(engine)
        for seed in seeds:
            params = SamplingParams(temperature=0.8, seed=seed, max_chars=CHARS)
            streams.add(logits, state, params, Sampler(params, seed, banned=engine.vocab.unk))
        go.wait()
        t0, n = time.perf_counter(), 0
        while streams.rows:
            n += sum(len(t) for t in streams.step().values())
        done.put((rnd, n, t0, time.perf_counter()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    rounds = ap.parse_args().rounds
    from serve_speed import in_process  # (the same single stream: engine opened and frozen once)

    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    ctx = mp.get_context("spawn")
    done, go = ctx.Queue(), ctx.Barrier(3)
    procs = [ctx.Process(target=half, args=(range(j, 16, 2), rounds, go, done)) for j in range(2)]
    for p in procs:
        p.start()
    ratios = []
    for rnd in range(rounds + 1):
        single = statistics.median(in_process("shakespeare", CHARS, "auto") for _ in range(3))
        go.wait()
        ends = [done.get() for _ in range(2)]
        together = sum(n for _, n, _, _ in ends) / (max(e for *_, e in ends) - min(s for _, _, s, _ in ends))
        if rnd:  # (round 0 warms both up)
            ratios.append(together / single)
            print(f"one stream {single:8,.0f} chars/s   16 streams (2 x 8) {together:8,.0f} chars/s   "
                  f"ratio {together / single:.2f}", flush=True)
    for p in procs:
        p.join()
    print(f"median ratio without HTTP: {statistics.median(ratios):.2f}x (serve_speed.py's goal: 4x over HTTP)")


if __name__ == "__main__":
    main()
