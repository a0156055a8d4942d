"""Time to the first character after a 2,000-character prompt, cold and read ahead.

For each model (the bundled one, and 2x512 LSTM/GRU/RNN with random weights
unless ``--bundled-only``) this measures, interleaved, with the median of
``--repeats``:

* engine fp32  -- ``Engine.feed`` of the whole prompt in one fused forward, read in fp32,
                  then one sampled character (the issue's definition);
* engine auto  -- the same with the default prompt precision (``auto``: bf16 for LSTM
                  layers on a CPU with native bf16, fp32 elsewhere);
* chat cold    -- a ``ChatSession`` (the chat app's engine): ``send`` of the 2,000
                  characters as one turn, to the first character of the reply;
* chat pasted  -- the same turn after ``read_ahead`` of the pasted draft has finished
                  (what the app does while the user looks at the paste before pressing
                  Enter); ``read`` is how long that background read took;
* chat typed   -- the same after the draft was read ahead one keystroke at a time;
                  ``per key`` is the median background read per keystroke.

    .venv/bin/python benchmarks/first_char.py [--repeats 5] [--bundled-only]

All torch work runs on the session's engine thread, as in the app: PyTorch keeps
an OpenMP pool per calling thread, and a second pool on the same 2 cores made
every forward 3x slower (see rnnchat/session/readahead.py).

Target (issue 6): <= 30 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from generate_speed import BUNDLED, CORPUS, blas_note, random_model  # noqa: E402
from rnnchat.engine.checkpoint import build_meta, save_checkpoint  # noqa: E402
from rnnchat.engine.blas import set_blas_threads  # noqa: E402
from rnnchat.engine.device import set_cpu_threads  # noqa: E402
from rnnchat.engine.generate import Engine  # noqa: E402
from rnnchat.core.params import SamplingParams  # noqa: E402
from rnnchat.session import ChatSession  # noqa: E402
from rnnchat.session.history import HistoryStore  # noqa: E402

TARGET_MS = 30.0


def engine_first_ms(engine: Engine, ids: list[int], precision: str) -> float:
    before = engine.prompt_precision
    engine.set_prompt_precision(precision)
    t0 = time.perf_counter()
    logits, state = engine.feed(ids, engine.initial_state())
    next(iter(engine.stream(logits, state, SamplingParams(temperature=0.8, seed=0, max_chars=1))))
    ms = (time.perf_counter() - t0) * 1000
    engine.prompt_precision = before
    return ms


def first_chunk_ms(session: ChatSession, text: str) -> float:
    t0 = time.perf_counter()
    reply = session.send(text)
    it = iter(reply)
    next(it)
    ms = (time.perf_counter() - t0) * 1000
    reply.cancel()
    for _ in it:
        pass
    session.reset()
    return ms


def chat_rows(session: ChatSession, prompt: str) -> dict[str, float]:
    out = {"cold": first_chunk_ms(session, prompt)}
    t0 = time.perf_counter()
    session.read_ahead(prompt)
    session.read_ahead_done()
    out["read"] = (time.perf_counter() - t0) * 1000
    out["pasted"] = first_chunk_ms(session, prompt)
    keys = []
    for k in range(1, len(prompt) + 1):
        t0 = time.perf_counter()
        session.read_ahead(prompt[:k])
        session.read_ahead_done()
        keys.append((time.perf_counter() - t0) * 1000)
    out["per key"] = statistics.median(keys)
    out["typed"] = first_chunk_ms(session, prompt)
    return out


def random_checkpoints(folder: Path) -> list[Path]:
    paths = []
    for cell in ("lstm", "gru", "rnn"):
        loaded = random_model(cell)
        p = folder / f"random-2x512-{cell}.safetensors"
        meta = build_meta(loaded.model, loaded.vocab, corpus={"name": "random", "sha256": "0" * 64},
                          chat={"template": "YOU:\n{text}\n\n", "stop": ["\n\n"]})
        paths.append(save_checkpoint(p, loaded.model, meta))
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bundled-only", action="store_true")
    ap.add_argument("--chars", type=int, default=2000)
    args = ap.parse_args(argv)
    set_cpu_threads()
    set_blas_threads()  # what the engine will use, so that the note below says it

    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="rnnchat-first-char-"))
    paths = [BUNDLED] if BUNDLED.exists() else []
    if not args.bundled_only:
        with ThreadPoolExecutor(1) as once:  # its thread (and OpenMP pool) ends with the block
            paths += once.submit(random_checkpoints, tmp).result()
    text = CORPUS.read_text(encoding="utf-8") if CORPUS.exists() else "To be, or not to be. " * 200
    prompt = text[10_000:10_000 + args.chars]

    print(f"# first_char: {len(prompt)}-char prompt, {args.repeats} repeats (medians), ms; {blas_note()}")
    cols = ["engine fp32", "engine auto", "chat cold", "read", "chat pasted", "per key", "chat typed"]
    header = f"{'model':<34} {'auto':>5} " + " ".join(f"{c:>11}" for c in cols)
    print(header)
    print("-" * len(header))
    ok = True
    for path in paths:
        session = ChatSession(str(path), store=HistoryStore(tmp / "history.db"), autosave=False)
        session.load()
        session.update_params(seed=0)
        engine = session.engine.engine  # the torch Engine behind the session's ChatEngine
        ids = engine.encode(prompt).ids
        on_engine = session.engine.worker.call  # on the engine's own thread, as the session does
        rows: dict[str, list[float]] = {c: [] for c in cols}
        on_engine(engine_first_ms, engine, ids, "auto")  # warm up
        for _ in range(args.repeats):
            rows["engine fp32"].append(on_engine(engine_first_ms, engine, ids, "fp32"))
            rows["engine auto"].append(on_engine(engine_first_ms, engine, ids, "auto"))
            for k, v in chat_rows(session, prompt).items():
                rows[f"chat {k}" if f"chat {k}" in rows else k].append(v)
        med = {c: statistics.median(v) for c, v in rows.items()}
        c = engine.loaded.model.config
        name = f"{path.name[:22]} ({c.layers}x{c.hidden} {c.cell})"
        ok &= med["chat pasted"] <= TARGET_MS and med["chat typed"] <= TARGET_MS
        print(f"{name:<34} {engine.prompt_precision:>5} " + " ".join(f"{med[c]:>11.1f}" for c in cols), flush=True)
        session.close()
    print(f"# target: first char <= {TARGET_MS:.0f} ms after the prompt is sent: "
          f"{'met' if ok else 'NOT met'} with read-ahead (chat pasted/typed); see 'engine' columns for one cold "
          f"fused forward. load avg {' '.join(f'{x:.1f}' for x in os.getloadavg())}; torch threads "
          f"{torch.get_num_threads()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
