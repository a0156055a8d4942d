"""The chat app's own generation speed: chars/s of replies streamed through the whole app
(session, reply worker, pacing, painting), headless, with the bundled model.

    .venv/bin/python benchmarks/app_speed.py [--messages 6] [--max 1500] [--model NAME]

Prints the characters written and the aggregate chars/s over all replies (each reply's
``chars_per_s`` is measured from its first character to its end). Run it interleaved with
another checkout (PYTHONPATH=...) to compare two versions on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile


async def run(model: str | None, messages: int, max_chars: int) -> tuple[int, float]:
    from rnnchat.session import Settings
    from rnnchat.tui.app import RnnchatApp

    app = RnnchatApp(model, settings=Settings(), persist_settings=False)
    n_total, t_total = 0, 0.0
    async with app.run_test(size=(100, 30)) as pilot:
        while app.session is None or not app.session.loaded:
            await pilot.pause(0.05)
        if hasattr(app, "set_params"):  # this version: immutable values, replaced whole
            app.set_params(max_chars=max_chars, seed=1, temperature=1.0)
        else:  # the version before the seam: one mutable object
            app.params.max_chars, app.params.seed, app.params.temperature = max_chars, 1, 1.0
        for i in range(messages):
            before = len(app.session.turns)
            app.input.value = f"Speak, good sir, of the {i} kings."
            await pilot.press("enter")
            while len(app.session.turns) < before + 2 or app.session.turns[-1].reason is None \
                    or app.session.busy:
                await pilot.pause(0.05)
            await pilot.pause(0.1)
            turn = app.session.turns[-1]
            n = len(turn.text)
            if turn.chars_per_s and n > 1:
                n_total += n - 1
                t_total += (n - 1) / turn.chars_per_s
        await pilot.press("ctrl+q")
    return n_total, t_total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=6)
    ap.add_argument("--max", type=int, default=1500)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    os.environ.setdefault("RNNCHAT_HOME", tempfile.mkdtemp(prefix="rnnchat-app-speed-"))
    n, t = asyncio.run(run(args.model, args.messages, args.max))
    print(f"app_speed chars {n} chars/s {n / t if t else 0:.0f} load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
