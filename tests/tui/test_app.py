"""The chat app over the real ChatSession and a FakeEngine: sending, streaming, temperature, stop,
regenerate, rewind, reset, model switch, error panels, quit during a reply."""

from __future__ import annotations

import json
import re

from tui_helpers import idle, ready, send, wait_for

from rnnchat.core.errors import CheckpointError
from rnnchat.tui.widgets import Notice, TemperatureControl, TurnView


def views(app) -> list[TurnView]:
    return app.transcript.turn_views()


def notices(app, kind=None) -> list[Notice]:
    return [n for n in app.transcript.query(Notice) if kind is None or n.kind == kind]


def notice_text(n: Notice) -> str:
    return str(n.render())


async def test_typing_and_sending(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert notices(app, "tip"), "a welcome tip is shown once the model is ready"
        await pilot.press(*"Who goes there", "enter")
        await wait_for(pilot, lambda: not h.session.busy and app.chat.live is None, "the reply")
        user, model = views(app)
        assert (user.role, user.text, user.label) == ("user", "Who goes there", "You")
        assert model.label == "ROMEO" and model.text == h.session.turns[-1].text
        assert "ROMEO:" not in str(model.render().renderables[1])  # the speaker line is the label
        assert app.input.value == "" and not notices(app, "tip")
        assert h.session.turns[0].fed == "YOU:\nWho goes there\n\n"
        assert h.engine.reads[-1] == "YOU:\nWho goes there\n\n"[-len(h.engine.reads[-1]):]  # the rest after the read-ahead


async def test_the_draft_is_read_ahead_while_typed_but_not_commands_or_during_a_reply(harness, gate):
    h = harness(gate=gate, hold_after=3)
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press(*"Hi you")
        assert h.session.read_ahead_done(10)
        assert "".join(h.engine.reads).endswith("you") and h.engine.reads[:2] == ["\n\n", "YOU:\nH"]  # the primer, then the draft
        reads = len(h.engine.reads)
        await pilot.press("enter")
        await wait_for(pilot, lambda: h.session.busy, "the reply")
        await pilot.press(*"Sea")  # typed while the reply streams: not read (the model is busy)
        await pilot.press("backspace", "backspace", "backspace", *"/temp 1")
        assert h.engine.reads[reads:] == ["\n\n"]  # the send read only the template's end; nothing since
        assert h.session.turns[-1].read_ahead == len("YOU:\nHi you")
        await pilot.press("ctrl+a", "ctrl+k", *"Sea")
        gate.set()
        await wait_for(pilot, lambda: not h.session.busy and app.chat.live is None, "the reply to end")
        assert h.session.read_ahead_done(10)
        assert h.engine.reads[-1].endswith("YOU:\nSea")  # what was typed during the reply is read once it ends
        speed = str(app.panel.query_one("#speed").render())
        assert re.search(r"first char \d+ ms", speed) and "11 chars read ahead" in speed


async def test_streaming_arrives_in_batches_and_equals_the_session(harness, gate):
    h = harness(gate=gate, hold_after=12)
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "Speak", wait=False)
        produced = lambda: h.produced()
        await wait_for(pilot, lambda: len(produced()) == 12 and views(app)[1].streamed, "the first batch")
        live = views(app)[1]
        assert live.live and live.has_class("-live") and produced().startswith(live.streamed)
        gate.set()
        await wait_for(pilot, lambda: app.chat.live is None, "the reply")
        turn = h.session.turns[-1]
        assert live.streamed == live.text == turn.text == "".join(h.engine.generations[-1].produced)
        assert not live.live and turn.reason == "stop"
        assert "chars/s" in str(app.panel.query_one("#speed").render())


async def test_temp_command_and_keys_change_the_panel_and_the_session(harness):
    h = harness()
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        control = app.query_one(TemperatureControl)
        await send(pilot, "/temp 0.3", wait=False)
        await pilot.pause()
        assert h.session.params.temperature == 0.3 and control.value == 0.3
        assert "0.30" in str(control.render())
        app.input.value = "half typed"
        await pilot.press("ctrl+up", "ctrl+up", "ctrl+down", "ctrl+up")
        assert app.input.value == "half typed", "the keys work while typing and do not edit the text"
        assert h.session.params.temperature == 0.4 and control.value == 0.4
        await send(pilot, "/temp 200", wait=False)
        await send(pilot, "/temp hot", wait=False)
        assert len(h.errors()) == 2 and h.session.params.temperature == 0.4
        for _ in range(12):
            await pilot.press("ctrl+down")
        assert h.session.params.temperature == 0.0


async def test_temperature_control_arrows_click_and_wheel(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(120, 35)) as pilot:
        await ready(pilot)
        control = app.query_one(TemperatureControl)
        await pilot.click(TemperatureControl)
        assert app.focused is control
        await pilot.press("right", "right", "up")
        assert h.session.params.temperature == 0.95
        control.action_nudge(1)  # two nudges before the app handles either: they add up
        control.action_nudge(1)
        await pilot.pause()
        assert h.session.params.temperature == 1.05
        await pilot.press("left", "left")
        await pilot.press("shift+left")
        assert h.session.params.temperature == 0.7
        await pilot.press("home")
        assert h.session.params.temperature == 0.0
        # a click on the bar's far end is the top of its scale (2.0); the middle is about 1.0
        await pilot.click(TemperatureControl, offset=(control.size.width - 2, 1))
        assert h.session.params.temperature == 2.0
        await pilot.click(TemperatureControl, offset=(control.size.width // 2, 1))
        assert 0.9 <= h.session.params.temperature <= 1.1
        before = h.session.params.temperature
        await pilot.scroll_up(TemperatureControl) if hasattr(pilot, "scroll_up") else control.action_nudge(1)
        await pilot.pause()
        assert h.session.params.temperature == round(before + 0.05, 2)


async def test_temperature_change_mid_reply_reaches_the_next_character(harness, gate):
    h = harness(gate=gate, hold_after=8)
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "Speak", wait=False)
        await wait_for(pilot, lambda: len(h.engine.read_temperatures) == 8, "8 chars")
        await pilot.press("ctrl+up")  # 0.80 -> 0.85 while the reply waits after 8 characters
        gate.set()
        await wait_for(pilot, lambda: app.chat.live is None, "the reply")
        temps = [t for _, t in h.engine.read_temperatures]
        assert temps[:8] == [0.8] * 8 and set(temps[8:]) == {0.85}


async def test_escape_stops_the_reply_and_keeps_the_text(harness, gate):
    h = harness(gate=gate, hold_after=6)
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "Speak", wait=False)
        await wait_for(pilot, lambda: len(h.engine.read_temperatures) == 6 and views(app)[1].streamed, "6 chars")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.chat.live is None, "the stop")
        turn = h.session.turns[-1]
        view = views(app)[1]
        assert turn.reason == "cancelled" and turn.text == "ROMEO:" and view.text == "ROMEO:"
        assert view.has_class("-stopped") and "stopped" in str(view.render().renderables[0])
        # the next message is sent normally; the session closes the cut turn first
        gate.set()
        await send(pilot, "Again")
        assert h.session.turns[2].fed.startswith("\n\nYOU:\nAgain")


async def test_regenerate_replaces_the_last_reply(harness):
    h = harness()
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "Speak")
        first = views(app)[1].text
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.chat.live is None and len(h.engine.generations) == 2, "regenerate")
        await wait_for(pilot, lambda: not h.session.busy, "the reply")
        vs = views(app)
        assert [v.role for v in vs] == ["user", "model"] and vs[1].text != first
        assert vs[1].text == h.session.turns[1].text and len(h.session.turns) == 2
        await send(pilot, "/regen")
        assert len(views(app)) == 2 and views(app)[1].label == "MERCUTIO"


async def test_regenerate_during_a_reply_stops_it_first(harness, gate):
    h = harness(gate=gate, hold_after=4)
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "Speak", wait=False)
        await wait_for(pilot, lambda: len(h.engine.read_temperatures) == 4, "4 chars")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(h.engine.generations) == 2, "the second reply to start")
        gate.set()
        await wait_for(pilot, lambda: idle(app), "the reply")
        assert [t.role for t in h.session.turns] == ["user", "model"]
        assert views(app)[1].text == h.session.turns[1].text and h.session.turns[1].reason == "stop"


async def test_rewind_and_reset(harness):
    h = harness()
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        for text in ("One", "Two", "Three"):
            await send(pilot, text)
        await send(pilot, "/rewind 2", wait=False)
        await pilot.pause()
        assert [t.text for t in h.session.turns if t.role == "user"] == ["One"]
        assert len(views(app)) == 2 and app.input.value == "Two"
        assert h.session.current_state.state == h.session.primer + h.session.turns[0].fed + h.session.turns[1].fed
        app.input.value = ""
        await send(pilot, "/rewind", wait=False)
        await pilot.pause()
        assert h.session.turns == [] and views(app) == []
        await send(pilot, "/rewind 5", wait=False)
        assert h.errors() or any("Nothing to rewind" in m for _, m in h.notes)
        await send(pilot, "Four")
        await send(pilot, "/reset", wait=False)
        await pilot.pause()
        assert h.session.turns == [] and views(app) == [] and h.session.current_state.state == h.session.primer
        assert any("New conversation" in notice_text(n) for n in notices(app))


async def test_model_switch_by_command(harness):
    h = harness()
    app = h.app("first")
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "Hello")
        assert app.panel.query_one("#model-name").render().plain == "first"
        await send(pilot, "/model second", wait=False)
        await ready(pilot)
        await wait_for(pilot, lambda: app.session.info.name == "second", "the switch")
        assert app.session is h.sessions[-1] and app.session.params == app.params.replace(stop=("\n\n",))
        assert views(app) == [] and app.sub_title == "second" and app.settings.model == "second"
        assert h.engines[0].closed and not app.session.engine.closed  # the old engine thread may end
        assert app.panel.query_one("#model-name").render().plain == "second"


async def test_model_picker_lists_checkpoints_and_switches(harness, rnnchat_home, make_checkpoint):
    models = rnnchat_home / "data" / "models"
    models.mkdir(parents=True)
    for name, cell in (("alpha", "lstm"), ("beta", "gru")):  # real headers: a listing checks them fully
        make_checkpoint(cell, name=name, vocab=list("abc"), val_loss=1.25).rename(models / f"{name}.safetensors")
    (models / "gamma.safetensors").write_bytes(b"garbage")
    from rnnchat.testing import reload_plugins

    reload_plugins()  # the host made for the saves has not seen the models folder's new files
    h = harness()
    app = h.app("alpha")
    async with app.run_test(size=(120, 35)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+l")
        from rnnchat.tui.screens import ModelPicker
        from textual.widgets import DataTable

        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen.rows, "the model list")
        table = app.screen.query_one(DataTable)
        names = [r["name"] for r in app.screen.rows]
        assert {"alpha", "beta", "gamma"} <= set(names) and table.row_count == len(names)
        status = str(app.screen.query_one("#models-status").render())
        assert "1 broken" in status
        assert table.cursor_row == names.index("alpha")  # the current model
        moves = names.index("beta") - names.index("alpha")
        await pilot.press(*(["down"] * moves if moves > 0 else ["up"] * -moves), "enter")
        await wait_for(pilot, lambda: app.session.info is not None and app.session.info.name == "beta", "beta")


async def test_error_panels_keep_the_app_usable(harness):
    h = harness()
    app = h.app("missing")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: notices(app, "error"), "the error panel")
        text = notice_text(notices(app, "error")[0])
        assert "Could not open missing" in text and "What to do" in text and "rnnchat train" in text
        assert app.panel.query_one("#model-name").render().plain == "no model"
        await send(pilot, "Hello", wait=False)
        assert any("No model is open" in m for _, m in h.notes) and app.input.value == "Hello"
        await send(pilot, "/help", wait=False)
        from rnnchat.tui.screens import HelpScreen

        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await pilot.press("escape")
        await send(pilot, "/model fine", wait=False)
        await ready(pilot)
        assert not notices(app, "error")
        await send(pilot, "Hello")
        assert len(views(app)) == 2


async def test_broken_checkpoint_while_another_model_is_open(harness):
    h = harness()
    app = h.app("good")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        h.fake_kwargs["load_error"] = CheckpointError("/x/bad.safetensors is corrupt: truncated")
        await send(pilot, "/model bad", wait=False)
        await wait_for(pilot, lambda: notices(app, "error"), "the error panel")
        text = notice_text(notices(app, "error")[0])
        assert "corrupt" in text and "rnnchat inspect bad" in text and "Still chatting with good" in text
        assert app.session.info.name == "good"
        assert h.sessions[1].closed and not app.session.closed  # the failed one is let go
        h.fake_kwargs.pop("load_error")
        await send(pilot, "Hello")
        assert len(views(app)) == 2


async def test_a_failing_reply_shows_an_error_and_gives_the_text_back(harness):
    h = harness()
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        h.engine.fail_reply = "model produced invalid values (NaN)"
        await send(pilot, "Hello")
        assert views(app) == [] and app.input.value == "Hello"
        assert any("NaN" in m for m in h.errors()) and notices(app, "error")


async def test_quit_during_a_reply(harness, gate):
    h = harness(gate=gate, hold_after=3)
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "Speak", wait=False)
        await wait_for(pilot, lambda: len(h.engine.read_temperatures) == 3, "3 chars")
        await pilot.press("ctrl+q")
    run = h.engine.generations[-1]
    assert run.cancel.is_set() and app.return_code == 0
    assert h.session.turns[-1].reason == "cancelled"


async def test_confidence_colours_toggle(harness):
    h = harness()
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "Hello")
        view = views(app)[1]
        plain = view.render().renderables[1]
        assert not [s for s in plain.spans if s.style]
        await pilot.press("ctrl+o")
        body = view.render().renderables[1]
        colours = {str(s.style) for s in body.spans if s.style}
        assert len(colours) >= 2, "several confidence levels show"
        assert "on" in str(app.panel.query_one("#confidence").render())
        await send(pilot, "/colors", wait=False)
        assert not view.confidence and app.settings.confidence is False


async def test_other_commands(harness, tmp_path):
    h = harness()
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        for line in ("/topk 20", "/topp 0.9", "/max 300", "/seed 7"):
            await send(pilot, line, wait=False)
        p = h.session.params
        assert (p.top_k, p.top_p, p.max_chars, p.seed) == (20, 0.9, 300, 7)
        sampling = str(app.panel.query_one("#sampling").render())
        assert "20" in sampling and "0.90" in sampling and "300" in sampling and "7" in sampling
        await send(pilot, "/seed off", wait=False)
        assert h.session.params.seed is None
        await send(pilot, "/topp 2", wait=False)
        await send(pilot, "/bogus", wait=False)
        assert any("top-p" in m for m in h.errors()) and any("/help" in m for m in h.errors())
        await send(pilot, "Hello")
        out = tmp_path / "chat.md"
        await send(pilot, f"/save {out}", wait=False)
        assert "### You\n\nHello" in out.read_text(encoding="utf-8")
        await send(pilot, "/plugins", wait=False)
        from rnnchat.tui.screens import PluginsScreen

        await wait_for(pilot, lambda: isinstance(app.screen, PluginsScreen)
                       and "plugin(s)" in str(app.screen.query_one("#plugins-body").render()), "plugins")
        assert "rnnchat.cells" in str(app.screen.query_one("#plugins-body").render())


def palette_hits(app) -> list[str]:
    from textual.command import CommandList

    lists = app.screen.query(CommandList)
    if not lists:
        return []
    options = lists.first()
    return [str(options.get_option_at_index(i).hit.text) for i in range(options.option_count)]


async def test_command_palette_runs_chat_actions(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"temp 0.45")
        await wait_for(pilot, lambda: "/temp 0.45" in palette_hits(app), "the hit")
        assert palette_hits(app)[0] == "/temp 0.45"
        await pilot.press("enter")
        await wait_for(pilot, lambda: h.session.params.temperature == 0.45, "the palette command")
        await send(pilot, "Hello")
        await pilot.press("ctrl+p", *"new conv")
        await wait_for(pilot, lambda: "New conversation" in palette_hits(app), "hits")
        await pilot.press("enter")
        await wait_for(pilot, lambda: h.session.turns == [], "the reset")


async def test_history_reopens_a_conversation(harness):
    h = harness(autosave=True)
    app = h.app()
    async with app.run_test(size=(120, 35)) as pilot:
        await ready(pilot)
        await send(pilot, "First words")
        await send(pilot, "/temp 0.55", wait=False)
        await send(pilot, "Second words")
        texts = [t.text for t in h.session.turns]
        await send(pilot, "/reset", wait=False)
        await send(pilot, "/temp 1.2", wait=False)
        await send(pilot, "/history", wait=False)
        from rnnchat.tui.screens import HistoryScreen

        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.rows, "the history")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(views(app)) == 4, "the reopened transcript")
        assert [v.text for v in views(app)] == texts and h.session.params.temperature == 0.55
        assert app.query_one(TemperatureControl).value == 0.55


async def test_settings_persist_between_runs(harness, rnnchat_home):
    from rnnchat.core import paths
    from rnnchat.session import Settings

    h = harness()
    app = h.app("mine", settings=Settings())
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "/temp 0.35", wait=False)
        await pilot.press("ctrl+o")
        app.theme = "nord"
        await pilot.pause()
        await pilot.press("ctrl+q")
    saved = json.loads(paths.settings_file().read_text())
    assert saved["temperature"] == 0.35 and saved["model"] == "mine" and saved["confidence"] is True
    assert saved["theme"] == "nord"
    settings, warning = Settings.load()
    app2 = harness().app(None, settings=settings)
    async with app2.run_test() as pilot:
        await ready(pilot)
        assert app2.session.model_name == "mine" and app2.query_one(TemperatureControl).value == 0.35
        assert app2.theme == "nord" and app2.chat.confidence


async def test_exit_after_first_frame_and_ready(harness, monkeypatch, gate):
    monkeypatch.setenv("RNNCHAT_EXIT_AFTER", "first-frame")
    h = harness(load_gate=gate)
    app = h.app()
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: not app.is_running, "the exit", limit=400)
    assert [e for e, _ in app.startup.events] == ["first-frame"]
    monkeypatch.setenv("RNNCHAT_EXIT_AFTER", "ready")
    app = harness().app()
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: not app.is_running, "the exit", limit=400)
    assert [e for e, _ in app.startup.events] == ["first-frame", "ready"]
    assert all(s >= 0 for _, s in app.startup.events)


def test_pacer_waits_for_the_paint_and_bounds_its_share():
    from rnnchat.tui.pacer import Pacer

    p = Pacer(interval=0.04, share=0.25)
    assert p.ready(100.0)  # the first batch goes out at once
    p.sent(100.0)
    assert not p.ready(100.5), "not before the previous batch is painted"
    p.cost = 0.0
    p._painted.set()
    assert p.ready(100.05) and not p.ready(100.01)
    p.cost = 0.1  # painting took 100 ms: wait 400 ms between batches
    assert not p.ready(100.3) and p.ready(100.41)


class UnreadableStore:
    """A history store whose database cannot be read (and that had moved a damaged one aside)."""

    path = "/nowhere/history.db"

    def __init__(self) -> None:
        self.warnings = ["the history was damaged; it was moved aside to history.db.damaged"]

    def take_warnings(self) -> list[str]:
        taken, self.warnings = self.warnings, []
        return taken

    def list(self, limit: int = 200):
        raise OSError("disk I/O error")


async def test_the_history_screen_shows_a_read_error_and_the_store_warning_once(harness):
    from rnnchat.tui.screens import HistoryScreen

    h = harness()
    app = h.app()
    async with app.run_test(size=(120, 35)) as pilot:
        await ready(pilot)
        screen = HistoryScreen(UnreadableStore())
        app.push_screen(screen)
        await wait_for(pilot, lambda: app.screen is screen and screen.is_mounted, "the screen")
        status = lambda: str(screen.query_one("#history-status").render())  # noqa: E731
        await wait_for(pilot, lambda: "Could not read the history" in status(), "the error")
        assert "disk I/O error" in status() and screen.rows == []
        assert [m for _, m in h.notes if "moved aside" in m] == [UnreadableStore().warnings[0]]
