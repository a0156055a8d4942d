"""The loss cost of each weight format on a checkpoint, and (``--record``) that measurement written
into the checkpoint's metadata as ``weights_cost``, which ``--weights auto`` reads
(rnnchat/engine/quant.py: a format is chosen by ``auto`` only where its cost is below 0.002 nats/char).

    .venv/bin/python benchmarks/weights_cost.py MODEL --corpus PATH [--record]

The cost is measured as ``generate_speed.py --quality`` measures it: the validation loss over the
last 10% of the corpus (the model's own held-out part when it was trained on that corpus), read
statefully through the batched path in 16 contiguous pieces, for fp32, bf16 and int8; the cost of
a format is its loss less fp32's. ``--record`` changes the header only (the tensors stay
byte-identical), atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from generate_formats import format_quality  # noqa: E402
from rnnchat.engine.runtime import open_engine  # noqa: E402
from rnnchat.engine.quant import COST_KEY, FORMATS, bf16_weights_problem  # noqa: E402
from rnnchat.core.errors import RnnchatError, first_line  # noqa: E402
from rnnchat.core.safe_files import read_regular  # noqa: E402
from rnnchat.core.safe_text import printable  # noqa: E402

MAX_CORPUS = 256 * 2**20  # bytes

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a registered model name or a checkpoint path")
    ap.add_argument("--corpus", required=True, help="the UTF-8 text the model was trained on")
    ap.add_argument("--record", action="store_true", help="write the costs into the checkpoint's metadata")
    args = ap.parse_args(argv)
    try:
        engine, path = open_engine(args.model, "cpu", weights="fp32")
    except RnnchatError as exc:
        raise SystemExit(f"weights_cost.py: {printable(first_line(exc))}")
    try:  # a regular file of bounded size (a FIFO or a device is refused, not read forever)
        text = read_regular(args.corpus, MAX_CORPUS, "corpus").decode("utf-8")
    except (OSError, RnnchatError, UnicodeDecodeError) as exc:
        raise SystemExit(f"weights_cost.py: {printable(first_line(exc))}")
    ids = np.asarray(engine.encode(text[int(len(text) * 0.9):]).ids, np.int64)
    formats = [f for f in FORMATS if f != "bf16" or bf16_weights_problem() is None]
    losses = {fmt: format_quality(engine, fmt, ids) for fmt in formats}
    costs = {fmt: round(losses[fmt] - losses["fp32"], 4) for fmt in formats if fmt != "fp32"}
    print(f"{path}: validation loss over {len(ids):,} chars, nats/char: "
          + ", ".join(f"{fmt} {v:.4f}" for fmt, v in losses.items()) + f"; cost {json.dumps(costs)}")
    if args.record:
        from rnnchat.store.checkpoint_edit import set_meta

        try:
            set_meta(path, {COST_KEY: json.dumps(costs)})
        except (OSError, RnnchatError) as exc:  # a read-only or full disk: the file stays as it was
            raise SystemExit(f"weights_cost.py: {printable(first_line(exc))}")
        print(f"recorded {COST_KEY} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
