"""A long reply while many keys are pressed and the terminal is resized: no exception, and the
transcript holds exactly what the session produced."""

from __future__ import annotations

import random

from tui_helpers import ready, send, wait_for

LONG = "HAMLET:\n" + " ".join(
    random.Random(0).choice(["To", "be", "or", "not", "to", "be,", "that", "is", "the", "question:\n", "whether",
                             "'tis", "nobler", "in", "mind", "suffer", "slings", "arrows!"]) for _ in range(200))


async def test_long_reply_with_keys_and_resizes(harness):
    h = harness(replies=(LONG,), char_delay=0.001)
    app = h.app()
    rng = random.Random(1)
    keys = ["ctrl+up", "ctrl+down", "a", "b", "backspace", "tab", "shift+tab", "left", "right", "ctrl+o",
            "up", "down", "pageup", "pagedown", "end", "home", "space"]
    sizes = [(120, 35), (80, 24), (60, 20), (150, 50), (40, 12), (100, 30)]
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        h.session.params.max_chars = 100_000
        await send(pilot, "Speak the speech", wait=False)
        rounds = 0
        while h.session.busy or app._live is not None:
            await pilot.press(*rng.sample(keys, 4))
            if rounds % 3 == 0:
                await pilot.resize_terminal(*sizes[rounds // 3 % len(sizes)])
            rounds += 1
            if rounds > 3000:
                break
        await wait_for(pilot, lambda: app._live is None, "the reply")
        turn = h.session.turns[-1]
        produced = "".join(h.session.replies_made[-1].produced)
        view = [v for v in app.transcript.turn_views() if v.role == "model"][-1]
        assert turn.reason == "stop" and produced == LONG
        assert view.streamed == view.text == turn.text == produced
        assert rounds > 1, "keys and resizes happened during the reply"
        assert app.is_running
