"""The composer: a paste keeps every line, ctrl+j inserts a newline, ↑ recalls, Tab completes
/commands, a mistyped command stays, Enter while loading queues the message."""

from __future__ import annotations

import threading

import pytest
from textual import events
from tui_helpers import idle, ready, send, wait_for

from tests.conftest import SHARED_CORPORA

CORPUS = SHARED_CORPORA / "tinyshakespeare.txt"


def recording(starts: list[str]):
    def replies(state: str, count: int) -> str:
        starts.append(state)
        return "ROMEO:\nAy."

    return replies


async def test_paste_keeps_every_character_and_line(harness):
    if not CORPUS.is_file():
        pytest.skip(f"{CORPUS} is missing")
    paste = CORPUS.read_text(encoding="utf-8")[:6000]
    assert paste.count("\n") > 100
    starts: list[str] = []
    h = harness(replies=recording(starts))
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        app.input.focus()
        app.input.post_message(events.Paste(paste))
        await wait_for(pilot, lambda: len(app.input.text) >= len(paste), "the paste in the input", limit=200)
        assert app.input.text == paste
        await pilot.press("enter")
        await wait_for(pilot, lambda: idle(app) and starts, "the reply")
        # the model's state is every character it read: the primer (the stop sequence), then the
        # framed paste, whole
        assert h.session.primer == "\n\n" and starts[0] == "\n\nYOU:\n" + paste + "\n\n"
        assert h.session.turns[0].text == paste and h.session.turns[0].fed == "YOU:\n" + paste + "\n\n"
        assert h.engine.encode(starts[0]).ids == [ord(c) for c in "\n\nYOU:\n" + paste + "\n\n"]


async def test_newline_keys_and_enter_sends(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        app.input.focus()
        await pilot.press(*"one", "ctrl+j", *"two", "shift+enter", *"three")
        assert app.input.text == "one\ntwo\nthree"
        await pilot.press("enter")
        await wait_for(pilot, lambda: idle(app) and len(h.session.turns) == 2, "the reply")
        assert h.session.turns[0].text == "one\ntwo\nthree" and app.input.text == ""


async def test_up_recalls_earlier_messages_and_down_the_draft(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "first")
        await send(pilot, "second\nline")
        app.input.focus()
        await pilot.press(*"draft")
        await pilot.press("up")
        assert app.input.text == "second\nline"
        await pilot.press("up")  # the cursor is on the first line: the next older one
        assert app.input.text == "first"
        await pilot.press("down")
        assert app.input.text == "second\nline"
        await pilot.press("down", "down")  # to the last line, then past the newest: the draft
        assert app.input.text == "draft"


async def test_tab_completes_and_a_mistyped_command_stays(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        app.input.focus()
        await pilot.press(*"/rewi", "tab")
        assert app.input.text == "/rewind "
        app.input.value = "/temp abc"
        await pilot.press("enter")
        await wait_for(pilot, lambda: h.errors(), "the error")
        assert app.input.text == "/temp abc" and "number" in h.errors()[-1]
        app.input.value = "/nosuch"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(h.errors()) == 2, "the error")
        assert app.input.text == "/nosuch" and "unknown command" in h.errors()[-1]


async def test_enter_while_loading_queues_the_message(harness):
    gate = threading.Event()
    h = harness(load_gate=gate)
    app = h.app()
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app._painted, "the first frame")
            app.input.focus()
            await pilot.press(*"Hello", "enter")
            await pilot.pause()
            assert app.chat.pending == "Hello" and app.input.text == ""
            assert [n for n in app.transcript.query("Notice") if n.kind == "pending"]
            gate.set()
            await wait_for(pilot, lambda: len(h.session.turns) == 2 and idle(app), "the queued message's reply")
            assert h.session.turns[0].text == "Hello" and app.chat.pending is None
    finally:
        gate.set()


async def test_panel_hides_when_narrow_and_ctrl_b_toggles_it(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert not app.panel.display, "below 90 columns the panel is hidden"
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert app.panel.display
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert not app.panel.display
    app = h.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        assert app.panel.display
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert not app.panel.display


def resuming(script: str):
    """Replies that go on with ``script`` from what the reply in progress already wrote."""
    return lambda state, count: script[len(state) - state.rfind("\n\n") - 2:]


async def test_continue_key_and_command_extend_the_last_reply(harness):
    h = harness(replies=resuming("ROMEO:\nBut soft, what light through yonder window breaks?"))
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        app.set_params(max_chars=6)
        await send(pilot, "Who?")
        assert h.session.turns[-1].text == "ROMEO:" and h.session.turns[-1].reason == "length"
        app.set_params(max_chars=12)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: idle(app) and len(h.session.turns[-1].text) > 6, "the continuation")
        view = app.transcript.turn_views()[-1]
        assert len(app.transcript.turn_views()) == 2 and view.text == h.session.turns[-1].text
        assert h.session.turns[-1].text.startswith("ROMEO:\nBut") and len(h.session.turns[-1].text) == 18
        await send(pilot, "/continue")
        assert len(h.session.turns[-1].text) == 30 and len(app.transcript.turn_views()) == 2


async def test_unknown_characters_are_said_at_send_and_messages_are_numbered(harness, gate):
    h = harness(unknown="ж", gate=gate, hold_after=1)
    app = h.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "Hello жук", wait=False)
        await wait_for(pilot, lambda: any("does not know" in m for _, m in h.notes), "the notice at send")
        assert app.chat.live is not None, "said while the reply is still being written"
        gate.set()
        await wait_for(pilot, lambda: idle(app), "the reply")
        assert sum("does not know" in m for _, m in h.notes) == 1, "said once"
        await send(pilot, "Again")
        users = [v for v in app.transcript.turn_views() if v.role == "user"]
        assert [v.number for v in users] == [1, 2] and str(users[1].render().renderables[0]).startswith("#2 You")


async def test_ctrl_c_copies_a_selection_else_quits(harness):
    h = harness()
    app = h.app()
    copied = []
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        app.copy_to_clipboard = copied.append
        app.input.focus()
        app.input.value = "keep this"
        app.input.select_all()
        await pilot.press("ctrl+c")
        assert copied == ["keep this"] and app.is_running
        app.input.value = ""
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running


async def test_copy_last_reply_a_message_and_the_transcript(harness):
    h = harness()
    app = h.app()
    copied = []
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        app.copy_to_clipboard = copied.append
        await send(pilot, "One")
        await send(pilot, "Two")
        await pilot.press("f2")
        assert copied[-1] == h.session.turns[3].text
        await send(pilot, "/copy 1")
        assert copied[-1] == h.session.turns[1].text
        await send(pilot, "/copy all")
        assert copied[-1].startswith("You: One\n\nModel: ") and "You: Two" in copied[-1]
        await send(pilot, "/copy 9")
        assert "1 to 2" in h.errors()[-1] and len(copied) == 3


async def test_presets_and_repetition_penalty(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "/repeat 1.2")
        assert h.session.params.repetition_penalty == 1.2
        assert "repeat     1.2" in str(app.panel.query_one("#sampling").render())
        await send(pilot, "/preset precise")
        p = h.session.params
        assert (p.temperature, p.top_k, p.top_p, p.repetition_penalty) == (0.3, 10, 0.9, 1.1)
        await send(pilot, "/temp 0.55")
        await send(pilot, "/preset save mine")
        assert app.settings.presets["mine"]["temperature"] == 0.55
        await send(pilot, "/preset creative")
        await send(pilot, "/preset mine")
        assert h.session.params.temperature == 0.55 and h.session.params.top_k == 10
        await send(pilot, "/preset nosuch")
        assert "no preset 'nosuch'" in h.errors()[-1] and app.input.text == ""


def test_presets_round_trip_through_the_settings_file(rnnchat_home):
    import json

    from rnnchat.core import paths
    from rnnchat.session.settings import Settings

    s = Settings(presets={"mine": {"temperature": 0.5, "top_k": 3, "top_p": 0.9, "repetition_penalty": 1.0}})
    s.save()
    loaded, warning = Settings.load()
    assert warning is None and loaded.presets == s.presets
    raw = json.loads(paths.settings_file().read_text())
    raw["presets"]["bad one"] = {"temperature": -1}
    paths.settings_file().write_text(json.dumps(raw))
    loaded, warning = Settings.load()
    assert loaded.presets == {} and "presets=" in warning


async def test_values_shows_what_each_reply_was_written_with(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "/temp 0")
        await send(pilot, "One")
        await send(pilot, "/temp 1.5")
        await send(pilot, "Two")
        await send(pilot, "/values 1")
        assert h.notes[-1][1].startswith("temperature 0.00")
        await send(pilot, "/values")
        assert h.notes[-1][1].startswith("temperature 1.50")


async def test_prime_text_and_file(harness, tmp_path):
    h = harness()
    app = h.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "Hi")
        await send(pilot, "/prime ROMEO: Here.")
        assert h.session.turns == [] and h.session.current_state.state == "ROMEO: Here."
        await send(pilot, "Hi")
        assert h.session.turns[1].snapshot.state.startswith("ROMEO: Here.YOU:\nHi")
        f = tmp_path / "p.txt"
        f.write_text("JULIET:\nSoft.\n\n", encoding="utf-8")
        await send(pilot, f"/prime @{f}")
        assert h.session.current_state.state == "JULIET:\nSoft.\n\n"
        await send(pilot, "/reset")
        assert h.session.current_state.state == "JULIET:\nSoft.\n\n", "reset comes back to the primed state"
        await send(pilot, f"/prime @{tmp_path}")
        assert "/prime:" in h.errors()[-1] and h.session.current_state.state == "JULIET:\nSoft.\n\n"
