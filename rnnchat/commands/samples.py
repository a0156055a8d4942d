"""``rnnchat generate --samples K`` / ``--json``: K continuations written after one batched run."""

from __future__ import annotations

import json
import sys
import time

import click


def write_samples(engine, logits, state, params, k: int, as_json: bool, stats: bool, t0: float, path) -> None:
    """Generate ``k`` samples together, then print each after a ``--- sample j ---`` line (or one
    JSON list). Streaming K interleaved texts would be unreadable, so nothing is printed before
    all are done."""
    from rnnchat.engine.multi import alternatives

    t1 = time.perf_counter()
    alts = alternatives(engine, logits, state, params, k)
    t2 = time.perf_counter()
    out = sys.stdout
    if as_json:
        out.write(json.dumps([{"sample": j + 1, "seed": a.seed, "text": a.text, "finish_reason": a.reason}
                              for j, a in enumerate(alts)], ensure_ascii=False) + "\n")
    else:
        for j, a in enumerate(alts):
            out.write(f"--- sample {j + 1} ---\n{a.text}\n")
    out.flush()
    if stats:
        n = sum(len(a.text) for a in alts)
        rate = n / (t2 - t1) if t2 > t1 else 0.0
        click.echo(f"{k} samples, {n} chars, {rate:,.0f} chars/s together, prompt read in "
                   f"{(t1 - t0) * 1000:.1f} ms, device {engine.device} (batched steps, {engine.weights} weights), "
                   f"model {path}, seeds {alts[0].seed}..{alts[-1].seed}", err=True)
