"""Tang poem form: how many generated lines have the regular shape of classical verse.

    python benchmarks/tang_quality.py [--model tang-poems] [--temperature 0.8] [--per-title 5]

Generates 5 poems for each of 20 titles (100 poems) through the model's chat
framing (the title inside 《》; the model writes the author, then the poem, and
stops at a blank line), each from a fresh state with its own seed, and counts
the lines (after the author line) that are regular: two halves of 5 or of 7
characters, `，` between them and `。` at the end. Prints the percentage, the
validation loss recorded in the checkpoint, and a few poems.

Figures (rnnchat-tang 0.1.0, CPU): see plugins/rnnchat-tang/README.md.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

TITLES = ["春曉", "靜夜思", "送別", "秋夜", "山居", "登高", "江雪", "月夜", "望月懷遠", "早發白帝城",
          "贈友人", "宿山寺", "詠柳", "夜泊", "春望", "秋思", "邊詞", "聞笛", "山中", "寄遠"]
HALF = r"[^，。？！；：、\s《》]"
REGULAR = re.compile(rf"^(?:{HALF}{{5}}，{HALF}{{5}}。|{HALF}{{7}}，{HALF}{{7}}。)$")


def poem_lines(reply: str) -> list[str]:
    """The poem's lines: everything after the first line (the author), without empty lines."""
    return [line.strip() for line in reply.split("\n")[1:] if line.strip()]


def is_regular(line: str) -> bool:
    return bool(REGULAR.match(line))


def generate(engine, template: str, stop, title: str, seed: int, temperature: float, max_chars: int = 400):
    from rnnchat.core.params import SamplingParams

    logits, state = engine.feed(engine.encode(template.replace("{text}", title)).ids, engine.initial_state())
    params = SamplingParams(temperature=temperature, seed=seed, max_chars=max_chars, stop=tuple(stop)).validate()
    stream = engine.stream(logits, state, params)
    text = "".join(t.char for t in stream)
    return text, stream.reason


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tang-poems", help="registered model name or checkpoint path")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--per-title", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=4, help="poems to print")
    args = ap.parse_args(argv)

    import torch

    from rnnchat.engine.checkpoint import load_checkpoint
    from rnnchat.engine.generate import Engine
    from rnnchat.plugins.resolve import resolve_model

    torch.set_num_threads(1)
    loaded = load_checkpoint(resolve_model(args.model).path, "cpu")
    chat = loaded.meta["chat"]
    engine = Engine(loaded, "cpu")
    total = regular = stopped = 0
    shown, t0 = [], time.perf_counter()
    for i, title in enumerate(TITLES):
        for j in range(args.per_title):
            text, reason = generate(engine, chat["template"], chat["stop"], title, args.seed + 100 * i + j,
                                    args.temperature)
            lines = poem_lines(text)
            total += len(lines)
            regular += sum(map(is_regular, lines))
            stopped += reason == "stop"
            if len(shown) < args.show and j == 0:
                shown.append(f"《{title}》{text}")
    poems = len(TITLES) * args.per_title
    print(f"model {args.model}: {loaded.meta['cell']} {loaded.meta['layers']}x{loaded.meta['hidden']}, "
          f"validation loss {loaded.meta.get('val_loss')} nats/char ({loaded.meta.get('val_loss_method', '?')})")
    print(f"{poems} poems from {len(TITLES)} titles at temperature {args.temperature}: {total} lines, "
          f"{regular} regular = {100 * regular / max(total, 1):.1f}%; {stopped}/{poems} ended with the stop "
          f"sequence; {time.perf_counter() - t0:.0f}s")
    for poem in shown:
        print("\n" + poem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
