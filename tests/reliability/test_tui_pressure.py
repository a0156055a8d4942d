"""The TUI under pressure (Pilot, the real session over a FakeEngine, no torch).

- A 5,000-character reply while 500 keys are pressed and the terminal is resized 20 times
  (10x3 up to 300x100): no exception, and the transcript holds exactly what the session produced.
- Quit during a reply, during model loading and during a model switch: the app exits promptly and
  no worker thread is left running.
- An exception inside generation shows in the chat as an error; the app keeps working.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from rnnchat.session.types import SessionError
from rnnchat.tui.widgets import Notice
from tests.tui.tui_helpers import Harness, idle, ready, send, wait_for

QUIT_LIMIT = 2.0  # seconds from ctrl+q to the app having exited (the bound)

WORDS = ["To", "be", "or", "not", "to", "be,", "that", "is", "the", "question:\n", "whether", "'tis", "nobler",
         "in", "mind", "suffer", "slings", "arrows!", "é", "🙂", "عربي"]
_rng = random.Random(0)
LONG = ("HAMLET:\n" + " ".join(_rng.choice(WORDS) for _ in range(2000)))[:5000]
assert len(LONG) == 5000 and "\n\n" not in LONG

# Keys that do not end the reply (Esc, ctrl+r, ctrl+n, ctrl+q would) nor open a modal screen.
KEYS = ["ctrl+up", "ctrl+down", "a", "b", "z", "space", "backspace", "tab", "shift+tab", "left", "right", "up",
        "down", "pageup", "pagedown", "home", "end", "ctrl+o", "enter", "shift+left", "shift+right", "delete"]


@pytest.fixture
def gate():
    ev = threading.Event()
    yield ev
    ev.set()  # never leave a worker waiting


def model_views(app):
    return [v for v in app.transcript.turn_views() if v.role == "model"]


def error_notices(app) -> list[str]:
    return [str(n.render()) for n in app.transcript.query(Notice) if n.kind == "error"]


@pytest.mark.slow  # 40+ s: run by .ci/run with -m slow
async def test_long_reply_with_500_keys_and_20_resizes(gate):
    h = Harness(replies=(LONG,), char_delay=0.0002, gate=gate, hold_after=4000)
    app = h.app()
    rng = random.Random(1)
    sizes = [(10, 3), (300, 100), (11, 4), (299, 99)] + [(rng.randint(10, 300), rng.randint(3, 100))
                                                          for _ in range(16)]
    presses = [rng.choice(KEYS) for _ in range(500)]
    app.animation_level = "none"  # Pilot waits out each smooth scroll (Home, PageUp…): wall time, not CPU
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        app.set_params(max_chars=100_000)
        await send(pilot, "Speak the speech", wait=False)
        for i in range(0, 500, 25):  # 20 rounds: 25 keys, then a resize
            assert app.chat.replying, "every key is pressed while the reply is being written (it waits at the gate)"
            await pilot.press(*presses[i:i + 25])
            assert len(app.screen_stack) == 1, "no key opened a screen"
            await pilot.resize_terminal(*sizes[i // 25])
            await pilot.pause()
        assert app.chat.replying
        gate.set()
        await wait_for(pilot, lambda: idle(app), "the reply", limit=3000)
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        turn = h.session.turns[-1]
        produced = "".join(h.engine.generations[-1].produced)
        [view] = model_views(app)
        assert produced == LONG and turn.reason == "stop"
        assert view.streamed == view.text == turn.text == produced
        assert len(h.engine.generations) == 1, "no key started another reply"
        assert app.is_running and not h.errors() and not error_notices(app)


# ---- quitting --------------------------------------------------------------------------------
async def _quit_and_check(pilot, app, baseline: set[threading.Thread]) -> None:
    """Press ctrl+q; the app must have exited within QUIT_LIMIT, and its workers must be finished."""
    t0 = time.monotonic()
    await pilot.press("ctrl+q")
    for _ in range(int(QUIT_LIMIT / 0.01)):
        if app._exit_renderables is not None or not app.is_running or app.return_code is not None:
            break
        await asyncio.sleep(0.01)
    assert app.return_code == 0, "ctrl+q exits with status 0"
    # every thread worker must end: shutting the executor down waits for them
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.shutdown_default_executor(), QUIT_LIMIT)
    assert time.monotonic() - t0 < QUIT_LIMIT + 1.0


def leftover_threads(baseline: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.is_alive() and not t.daemon and t is not threading.main_thread() and t not in baseline]


async def test_quit_during_a_reply(gate):
    baseline = set(threading.enumerate())
    h = Harness(gate=gate, hold_after=5, replies=(LONG,))
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "Speak", wait=False)
        await wait_for(pilot, lambda: len(h.engine.generations[-1].produced) == 5, "the reply to start")
        await _quit_and_check(pilot, app, baseline)
    assert h.session.turns[-1].reason == "cancelled"
    assert leftover_threads(baseline) == []


async def test_quit_during_model_loading(gate):
    baseline = set(threading.enumerate())
    h = Harness(load_gate=gate)  # load() blocks until the gate opens: it never does before quitting
    app = h.app()
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._painted and app.loading_model is not None, "the loading screen")
        await pilot.pause(0.1)
        assert not h.session.loaded
        await _quit_and_check(pilot, app, baseline)
    assert leftover_threads(baseline) == [], "only the daemon load thread may still wait"


@pytest.mark.parametrize("replying", [False, True], ids=["idle", "while-replying"])
async def test_quit_during_a_model_switch(gate, replying):
    baseline = set(threading.enumerate())
    reply_gate = threading.Event()
    h = Harness(gate=reply_gate, hold_after=3)
    app = h.app()
    try:
        async with app.run_test() as pilot:
            await ready(pilot)
            if replying:
                await send(pilot, "Speak", wait=False)
                await wait_for(pilot, lambda: len(h.engine.generations[-1].produced) == 3, "the reply")
            else:
                reply_gate.set()
            h.fake_kwargs["load_gate"] = gate  # the next model's load blocks
            first = h.session
            await send(pilot, "/model other", wait=False)
            await wait_for(pilot, lambda: len(h.sessions) == 2 and app.loading_model == "other", "the switch")
            assert app.session is first
            await _quit_and_check(pilot, app, baseline)
        assert leftover_threads(baseline) == []
    finally:
        reply_gate.set()


# ---- an exception inside generation ------------------------------------------------------------
@pytest.mark.parametrize("error", [RuntimeError("CUDA error: device-side assert triggered"),
                                   SessionError("the model produced NaN"), MemoryError("out of memory"),
                                   ValueError("a\nmulti-line\nerror")], ids=lambda e: type(e).__name__)
async def test_exception_inside_generation_shows_and_the_app_keeps_working(error):
    h = Harness(replies=lambda text, n: f"ROMEO:\n{'x' * 300} reply {n}")
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "First")
        assert len(h.session.turns) == 2
        h.engine.fail_after, h.engine.fail_error = 120, error
        await send(pilot, "Second")
        shown = error_notices(app)
        first_line = str(error).splitlines()[0]
        assert len(shown) == 1 and "The reply failed" in shown[0] and first_line in shown[0]
        assert any(first_line in m for m in h.errors()), "and a notification"
        assert len(h.session.turns) == 2, "the failed exchange was undone"
        assert app.input.value == "Second", "the message is back in the input to resend"
        h.engine.fail_after = None
        app.input.value = ""
        await send(pilot, "Third")
        views = model_views(app)
        assert [v.text for v in views] == [t.text for t in h.session.turns if t.role == "model"]
        assert views[-1].text.endswith("reply 2") and h.session.turns[-1].reason == "stop"
        assert app.is_running


# ---- any prompt, through the app ----------------------------------------------------------------
NASTY = ["emoji 🙂👍🏽👨‍👩‍👧", "nul \x00 byte", "controls \x01\x07\x1b[31m\x7f\u200b\ufeff",
         "right-to-left \u202eعربي עברית\u202c", "combining e\u0301\u0301\u0301 \U0010ffff", "[bold]not markup[/b]"]


@pytest.mark.slow  # real processes, 5-10 s: run by .ci/run's second call (-m slow)
async def test_any_unicode_prompt_and_a_1mb_paste_through_the_app():
    from textual import events

    h = Harness(replies=lambda text, n: f"ROMEO:\nreply {n} 🙂\x00[red]x")
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        for i, prompt in enumerate(NASTY):
            await send(pilot, prompt)
            assert h.session.turns[-2].text == prompt and h.session.turns[-1].reason == "stop"
        big = ("All the world's a stage 🙂 عربي " * 40_000)[:1_000_000]  # Input keeps a paste's first line
        app.input.focus()
        app.input.value = ""
        app.input.post_message(events.Paste(big))
        await wait_for(pilot, lambda: len(app.input.value) > 900_000, "the paste")
        await pilot.press("enter")
        await wait_for(pilot, lambda: idle(app)
                       and len(h.session.turns) == 2 * len(NASTY) + 2, "the reply to the paste", limit=3000)
        assert len(h.session.turns[-2].text) >= 900_000
        [paste_view] = [v for v in app.transcript.turn_views() if v.role == "user" and len(v.text) > 900_000]
        assert "more characters (not shown; the model read them all)" in str(paste_view.render().renderables[1])
        await pilot.resize_terminal(60, 20)  # re-wrapping shows only the first 20,000 characters
        await pilot.resize_terminal(100, 30)
        await pilot.press(*"still typing")
        assert app.input.value == "still typing", "the app stays responsive"
        views = app.transcript.turn_views()
        assert [v.text for v in views if v.role == "model"] == [t.text for t in h.session.turns if t.role == "model"]
        assert app.is_running and not h.errors()
