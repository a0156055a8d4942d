"""The app with a real (tiny, hidden 8) model: load in the worker, chat, reopen from history."""

from __future__ import annotations

from tui_helpers import idle, ready, send, wait_for

CHAT = {"template": "BOB:\n{text}\n\n", "stop": ["\n\n"]}


async def test_chat_with_a_tiny_real_model(make_checkpoint):
    from rnnchat.session import Settings
    from rnnchat.tui.app import RnnchatApp

    path = make_checkpoint("gru", chat=CHAT)
    from rnnchat.core.params import SamplingParams

    settings = Settings(sampling=SamplingParams(max_chars=80, seed=3))
    app = RnnchatApp(str(path), settings=settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        info = app.session.info
        assert (info.cell, info.hidden, info.device) == ("gru", 8, "cpu")
        assert "gru 2×8" in str(app.panel.query_one("#model-facts").render())
        await send(pilot, "Cat tree")
        # the draft was read while it stood in the input: Enter only read the closing "\n\n"
        assert app.session.turns[1].read_ahead == len(app.session.engine.encode("BOB:\nCat tree").ids)
        assert "chars read ahead" in str(app.panel.query_one("#speed").render())
        await send(pilot, "Day night")
        views = app.transcript.turn_views()
        turns = app.session.turns
        assert [v.role for v in views] == [t.role for t in turns] == ["user", "model"] * 2
        for v, t in zip(views, turns):
            assert v.text == t.text
        assert views[1].streamed == turns[1].text
        conv = app.session.conversation_id
        assert conv is not None and app.session.store.list()[0].turns == 4
        await send(pilot, "/reset", wait=False)
        await pilot.pause()
        assert app.transcript.turn_views() == []
        assert info.source == str(path)
        app.open_conversation(conv, info.source)
        await wait_for(pilot, lambda: len(app.transcript.turn_views()) == 4, "the reopened conversation")
        assert [v.text for v in app.transcript.turn_views()] == [t.text for t in turns]
