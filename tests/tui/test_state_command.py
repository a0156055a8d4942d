"""/state save, /state list and /state load in the app (the real session over the fake engine)."""

from __future__ import annotations

from tui_helpers import idle, ready, send, wait_for

from rnnchat.session import state_files


async def test_state_save_list_load(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "Who goes there?")
        saved_at = h.session.current_state.state
        await send(pilot, "/state save watch-1", wait=False)
        await wait_for(pilot, lambda: (state_files.states_dir() / "watch-1.safetensors").is_file(), "the file")
        await send(pilot, "And then?")
        assert h.session.current_state.state != saved_at
        await send(pilot, "/state list", wait=False)
        await wait_for(pilot, lambda: any("watch-1  fake (lstm 2x8)" in m for _, m in h.notes), "the list")
        await send(pilot, "/state load watch-1", wait=False)
        await wait_for(pilot, lambda: idle(app) and h.session.turns == [], "the load")
        assert h.session.current_state.state == saved_at == h.session.primer
        assert not app.chat.transcript.turn_views()
        await send(pilot, "/state save ../x", wait=False)
        await pilot.pause()
        assert app.input.text == "/state save ../x"  # a mistyped command stays, with its error
        assert any("a state name is 1 to 64 letters" in m for m in h.errors())
        await send(pilot, "Again")
        assert h.engine.generations and h.session.turns[0].fed == "YOU:\nAgain\n\n"
        assert h.session.current_state.state.startswith(saved_at + "YOU:\nAgain\n\n")


async def test_the_model_picker_shows_the_hint_and_description(harness):
    from textual.widgets import DataTable, Static

    from rnnchat.tui.screens import ModelPicker

    h = harness()
    app = h.app()
    async with app.run_test(size=(120, 35)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen.rows, "the model list")
        names = [r["name"] for r in app.screen.rows]
        app.screen.query_one(DataTable).move_cursor(row=names.index("shakespeare"))
        about = app.screen.query_one("#models-about", Static)
        await wait_for(pilot, lambda: "try: a line of a play" in str(about.render()), "the hint")
        assert "trained on tinyshakespeare" in str(about.render())
