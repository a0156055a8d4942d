"""Does a conversation read better from the primed start (the state after the stop sequence)
than from zeros? Loss of the bundled model over the first 200 characters of 100 held-out
speeches (tinyshakespeare's last 10%, split at blank lines).

    PYTHONPATH=. .venv/bin/python benchmarks/primed_start.py [--speeches 100] [--chars 200]

Both starts are scored on the same targets: characters 2..N of each speech, each predicted
from the characters before it (from zeros there is no prediction for the first character:
the model has read nothing). "primed, all" adds the first character, which only the primed
start can predict. Mean cross-entropy in nats per character.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from rnnchat.engine.checkpoint import load_checkpoint  # noqa: E402
from rnnchat.engine.generate import Engine  # noqa: E402

BUNDLED = ROOT / "rnnchat" / "default_plugins" / "models" / "shakespeare.safetensors"
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"


def held_out_speeches(text: str, n: int) -> list[str]:
    tail = text[int(len(text) * 0.9):]
    tail = tail[tail.find("\n\n") + 2:]  # start at a speech boundary
    speeches = [s.strip("\n") for s in tail.split("\n\n")]
    return [s for s in speeches if len(s) >= 2][:n]


def losses(engine: Engine, ids: list[int], state, first_logits) -> list[float]:
    """Cross-entropy of each of ``ids`` (the first only when ``first_logits`` is given)."""
    with torch.inference_mode():
        logits, _ = engine.model(torch.tensor([ids[:-1]]), state)
        logp = torch.log_softmax(logits[0].float(), -1)
        out = [-float(logp[i, ids[i + 1]]) for i in range(len(ids) - 1)]
        if first_logits is not None:
            out.insert(0, -float(torch.log_softmax(first_logits.float(), -1)[ids[0]]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speeches", type=int, default=100)
    ap.add_argument("--chars", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    engine = Engine(load_checkpoint(BUNDLED), "cpu")
    stop = engine.loaded.meta.get("chat", {}).get("stop", ["\n\n"])[0]
    prime_logits, primed = engine.feed(engine.encode(stop).ids, engine.initial_state())
    zero = engine.initial_state()
    z, p, p_all = [], [], []
    for speech in held_out_speeches(CORPUS.read_text(encoding="utf-8"), args.speeches):
        ids = engine.encode(speech[:args.chars]).ids
        z += losses(engine, ids, zero, None)
        both = losses(engine, ids, primed, prime_logits)
        p_all += both
        p += both[1:]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"bundled model, {args.speeches} held-out speeches, first {args.chars} characters, primer {stop!r}")
    print(f"zeros          {mean(z):.4f} nats/char  ({mean(z) / math.log(2):.3f} bits)  over {len(z):,} characters")
    print(f"primed         {mean(p):.4f} nats/char  ({mean(p) / math.log(2):.3f} bits)  same characters")
    print(f"primed, all    {mean(p_all):.4f} nats/char  with each speech's first character")


if __name__ == "__main__":
    main()
