"""/alts in the app over the real ChatSession and a FakeEngine: K alternatives written side by side
(stacked when narrow), one kept with a key or a click, Esc stops them and then keeps the original,
a bad K is a one-line error."""

from __future__ import annotations

from contextlib import asynccontextmanager

from tui_helpers import idle, ready, send, wait_for

from rnnchat.session.fake_engine import DEFAULT_REPLIES
from rnnchat.tui.screens.alts import AltsScreen, AltView


def alts_screen(app) -> AltsScreen | None:
    return app.screen if isinstance(app.screen, AltsScreen) else None


async def written(pilot) -> AltsScreen:
    app = pilot.app
    await wait_for(pilot, lambda: alts_screen(app) is not None and not alts_screen(app).writing, "the alternatives")
    return alts_screen(app)


def model_views(app):
    return [v for v in app.transcript.turn_views() if v.role == "model"]


@asynccontextmanager
async def after_a_reply(h, size):
    """The app at ``size`` with one exchange done: (app, pilot)."""
    app = h.app()
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await send(pilot, "Speak")
        yield app, pilot


async def test_alts_key_writes_three_side_by_side_and_a_number_keeps_one(harness):
    h = harness()
    async with after_a_reply(h, (120, 30)) as (app, pilot):
        original = h.session.turns[-1]
        await pilot.press("f5")
        screen = await written(pilot)
        assert screen.query_one("#alts-columns") and len(screen.query(AltView)) == 3
        assert [v.text for v in screen.views] == [DEFAULT_REPLIES[1], DEFAULT_REPLIES[2], DEFAULT_REPLIES[0]]
        assert [v.streamed for v in screen.views] == [v.text for v in screen.views], "streamed as written"
        assert h.session.turns[-1] is original, "nothing changes before a pick"
        await pilot.press("2")
        await wait_for(pilot, lambda: alts_screen(app) is None and idle(app), "the pick")
        kept = h.session.turns[-1]
        assert kept.text == DEFAULT_REPLIES[2] and len(h.session.turns) == 2
        assert h.session.current_state.state == h.session.primer + h.session.history_text()
        assert [v.text for v in model_views(app)] == [kept.text] and model_views(app)[0].label == "MERCUTIO"
        await send(pilot, "More")  # the conversation goes on from the kept alternative
        assert h.session.turns[3].snapshot.state.endswith(DEFAULT_REPLIES[2] + "\n\nYOU:\nMore\n\n")


async def test_alts_stacked_when_narrow_and_a_click_keeps_one(harness):
    h = harness()
    async with after_a_reply(h, (70, 40)) as (app, pilot):
        await send(pilot, "/alts 4", wait=False)
        screen = await written(pilot)
        assert screen.query_one("#alts-stacked") and len(screen.views) == 4
        await pilot.click(AltView, offset=(2, 0))  # the first alternative
        await wait_for(pilot, lambda: alts_screen(app) is None, "the pick")
        assert h.session.turns[-1].text == DEFAULT_REPLIES[1]


async def test_esc_stops_them_then_keeps_the_original(harness, gate):
    h = harness()
    async with after_a_reply(h, (120, 30)) as (app, pilot):
        original = h.session.turns[-1]
        h.engine.gate, h.engine.hold_after = gate, 6
        await send(pilot, "/alts", wait=False)
        await wait_for(pilot, lambda: alts_screen(app) is not None and h.session.busy
                       and h.engine.alternative_runs
                       and all(len(r.produced) == 6 for r in h.engine.alternative_runs[-1]), "6 characters each")
        await pilot.press("escape")  # stops them: each keeps what it wrote
        screen = await written(pilot)
        assert [t.reason for t in screen.handle.choices] == ["cancelled"] * 3
        assert [v.text for v in screen.views] == [r[:6] for r in (DEFAULT_REPLIES[1], DEFAULT_REPLIES[2], DEFAULT_REPLIES[0])]
        await pilot.press("escape")  # closes, keeping the original reply
        await wait_for(pilot, lambda: alts_screen(app) is None, "the screen to close")
        assert h.session.turns[-1] is original and model_views(app)[0].text == original.text
        assert not h.session.busy and ("information", "Kept the original reply") in h.notes


async def test_a_key_while_writing_stops_them_and_keeps_that_one(harness, gate):
    h = harness(gate=gate, hold_after=4)
    app = h.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        gate.set()
        await send(pilot, "Speak")
        gate.clear()
        await pilot.press("f5")
        await wait_for(pilot, lambda: alts_screen(app) is not None and h.session.busy, "the alternatives")
        await pilot.press("3")
        await wait_for(pilot, lambda: alts_screen(app) is None and idle(app), "the pick")
        kept = h.session.turns[-1]
        assert kept.text == DEFAULT_REPLIES[0][:4] and kept.reason == "cancelled"
        assert h.session.current_state.state == h.session.primer + h.session.history_text()


async def test_bad_counts_and_no_reply_are_one_line_errors(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "/alts", wait=False)
        await pilot.pause()
        assert alts_screen(app) is None and any("send a message first" in m for _, m in h.notes)
        await send(pilot, "Speak")
        for bad in ("9", "1", "two"):
            app.input.value = ""
            await send(pilot, f"/alts {bad}", wait=False)
            await pilot.pause()
            assert alts_screen(app) is None and app.input.value == f"/alts {bad}", "left in the input to fix"
            error = h.errors()[-1]
            assert "from 2 to 8" in error and "\n" not in error
        assert len(h.session.turns) == 2 and not h.session.busy
