"""A long read after Enter shows its progress; Esc cancels it: nothing is sent, the draft is
back in the input unchanged, the session is as before; the next send is exact. The real
session over the fake engine, whose feeds are held one chunk at a time by a hook."""

from __future__ import annotations

import threading

from textual import events
from tui_helpers import idle, ready, wait_for

from rnnchat.tui.widgets import Notice

SPEECH = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
PASTE = (SPEECH * 400)[:30_000]


def hold_feeds(engine) -> tuple[list[int], threading.Semaphore]:
    """Make the fake engine wait before each feed until the test releases a permit; returns the
    sizes of the feeds asked for so far and the permits."""
    held: list[int] = []
    permits = threading.Semaphore(0)  # one per chunk the engine may read
    engine.feed_hook = lambda ids: held.append(len(ids)) or permits.acquire(timeout=30)
    return held, permits


def reading_notice(app) -> str | None:
    found = [n for n in app.chat.transcript.query(Notice) if n.kind == "reading"]
    if not found:
        return None
    return str(found[0].render())


async def test_a_long_read_shows_progress_and_esc_cancels_it(harness):
    starts: list[str] = []

    def replies(state: str, count: int) -> str:
        starts.append(state)
        return "ROMEO:\nAy."

    h = harness(replies=replies)
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        engine, session = h.engine, h.session
        before = session.current_state
        held, permits = hold_feeds(engine)
        try:
            app.input.focus()
            app.input.post_message(events.Paste(PASTE))
            await wait_for(pilot, lambda: app.input.text == PASTE, "the paste in the input", limit=200)
            await wait_for(pilot, lambda: held == [4096], "the read-ahead holding its first chunk")
            await pilot.press("enter")  # the send takes over from the read-ahead after that chunk
            await wait_for(pilot, lambda: session._ahead._taking == 1, "the send waiting for the read-ahead")
            total = len("YOU:\n" + PASTE + "\n\n")
            permits.release(2)  # the read-ahead's first chunk, then the send's first
            await wait_for(pilot, lambda: reading_notice(app) == f"reading 8,192 / {total:,} · Esc cancels",
                           "the first progress")
            permits.release()
            await wait_for(pilot, lambda: reading_notice(app) == f"reading 12,288 / {total:,} · Esc cancels",
                           "progress after one more chunk")
            assert app.input.text == "" and not engine.generations
            await pilot.press("escape")
            permits.release()  # the chunk in progress ends; the cancel is seen before the next one
            await wait_for(pilot, lambda: app.chat.live is None and app.input.text == PASTE, "the cancel")
        finally:
            engine.feed_hook = None
            permits.release(100)
        assert reading_notice(app) is None and not engine.generations and starts == []
        assert session.turns == [] and session.current_state is before and not session.busy
        assert not app.chat.transcript.turn_views()
        assert any("reading cancelled" in str(n.render()) for n in app.chat.transcript.query(Notice))
        # the next send works and reads exactly the framed paste from the state before
        await pilot.press("enter")
        await wait_for(pilot, lambda: idle(app) and starts, "the reply")
        assert starts[0] == "\n\nYOU:\n" + PASTE + "\n\n"
        assert [t.text for t in session.turns] == [PASTE, "ROMEO:\nAy."] and app.input.text == ""


async def test_a_short_message_shows_no_progress(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        kinds: list[str] = []
        add = app.chat.transcript.add_notice
        app.chat.transcript.add_notice = lambda notice: kinds.append(notice.kind) or add(notice)
        app.input.focus()
        app.input.value = "Good morrow."
        await pilot.press("enter")
        await wait_for(pilot, lambda: idle(app) and len(h.session.turns) == 2, "the reply")
        assert "reading" not in kinds and reading_notice(app) is None


def priming_notice(app) -> str | None:
    found = [n for n in app.chat.transcript.query(Notice) if n.kind == "priming"]
    return str(found[0].render()) if found else None


async def test_a_long_prime_runs_off_the_screen_thread_and_esc_cancels_it(harness, tmp_path):
    h = harness()
    app = h.app()
    text = (SPEECH * 400)[:20_000]
    f = tmp_path / "prime.txt"
    f.write_text(text, encoding="utf-8")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        engine, session = h.engine, h.session
        before = session.current_state
        held, permits = hold_feeds(engine)
        try:
            app.input.text = f"/prime @{f}"
            await pilot.press("enter")
            await wait_for(pilot, lambda: held == [4096], "the prime holding its first chunk")
            assert session.busy, "a prime in progress makes the session busy (a send waits)"
            app.input.text = "hello"
            await pilot.press("enter")  # said to wait for the priming, not for a reply
            await wait_for(pilot, lambda: any("priming text is still being read" in m for _, m in h.notes),
                           "the notice that a send waits for the priming")
            assert app.input.text == "hello"
            permits.release()
            await wait_for(pilot, lambda: priming_notice(app) == "priming 4,096 / 20,000 · Esc cancels",
                           "the prime's progress")
            await pilot.press("escape")
            permits.release()
            await wait_for(pilot, lambda: priming_notice(app) is None and not session.busy, "the cancel")
        finally:
            engine.feed_hook = None
            permits.release(100)
        assert session.current_state is before and session.primer != text
        assert any("Priming cancelled" in m for _, m in h.notes)
        app.input.text = f"/prime @{f}"  # uncancelled, it starts the conversation from the text
        await pilot.press("enter")
        await wait_for(pilot, lambda: not session.busy and session.primer == text, "the prime")
        assert session.current_state.state == text and session.turns == []


async def test_a_prime_that_fails_unexpectedly_leaves_sending_possible(harness, monkeypatch):
    h = harness()
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)

        def broken(text, watch=None):
            raise RuntimeError("a bug")

        monkeypatch.setattr(h.session, "prime", broken)
        app.input.text = "/prime some text"
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("/prime failed: RuntimeError: a bug" in m for _, m in h.notes), "the error")
        await wait_for(pilot, lambda: priming_notice(app) is None, "the notice gone")
        assert not app.chat.priming and app.chat.can_talk()
