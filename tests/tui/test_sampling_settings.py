"""min-p, presence and frequency penalties in the chat (/commands, panel, presets, exports,
settings file) and the settings screen (F3, /settings), over the real session and a fake engine."""

from __future__ import annotations

import json

from textual.widgets import Input
from tui_helpers import ready, send, wait_for

from rnnchat.tui.screens.settings import FIELDS, SettingsScreen


def panel_text(app) -> str:
    return str(app.panel.query_one("#sampling").render())


async def test_commands_aliases_panel_replies_and_exports(harness, tmp_path):
    h = harness()
    app = h.app()
    async with app.run_test(size=(120, 34)) as pilot:
        await ready(pilot)
        await send(pilot, "/minp 0.1")
        await send(pilot, "/pp 0.5")
        await send(pilot, "/frequency-penalty 0.2")
        p = h.session.params
        assert (p.min_p, p.presence_penalty, p.frequency_penalty) == (0.1, 0.5, 0.2)
        text = panel_text(app)
        assert "min-p      0.1" in text and "presence   0.5" in text and "frequency  0.2" in text
        await send(pilot, "/presence 3")
        assert h.errors()[-1] == "presence penalty must be a number in [-2, 2] (0 turns it off), not 3.0"
        assert h.session.params.presence_penalty == 0.5 and app.input.text == ""
        await send(pilot, "/min-p x")
        assert h.errors()[-1] == "/minp needs a number, not 'x'"
        await send(pilot, "/set parameter min_p 0.2")  # ollama's way
        await send(pilot, "/set freq -1")
        assert (h.session.params.min_p, h.session.params.frequency_penalty) == (0.2, -1.0)
        await send(pilot, "/set nosuch 1")
        assert h.errors()[-1].startswith("/set NAME VALUE: NAME is one of temp, topk, topp, minp")
        await send(pilot, "Hi")
        await send(pilot, "/presence 0")
        await send(pilot, "Again")
        first, second = [t for t in h.session.turns if t.role == "model"]
        assert (first.params["min_p"], first.params["presence_penalty"], first.params["frequency_penalty"]) == \
            (0.2, 0.5, -1.0)
        assert second.params["presence_penalty"] == 0.0
        await send(pilot, "/values 1")
        assert "min-p 0.2, presence penalty 0.5, frequency penalty -1" in h.notes[-1][1]
        md = h.session.export_markdown(tmp_path / "c.md").read_text()
        assert "min-p 0.2, presence penalty 0.5, frequency penalty -1, max" in md
        assert "min-p 0.2, presence penalty off, frequency penalty -1, max" in md
        data = json.loads(h.session.export_markdown(tmp_path / "c.json").read_text())
        replies = [t["params"] for t in data["turns"] if t["role"] == "model"]
        assert [r["presence_penalty"] for r in replies] == [0.5, 0.0] and replies[0]["min_p"] == 0.2


async def test_presets_set_the_new_values_and_old_presets_turn_them_off(harness):
    h = harness()
    app = h.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "/preset precise")
        assert h.session.params.min_p == 0.1 and h.session.params.presence_penalty == 0.0
        await send(pilot, "/presence 0.4")
        await send(pilot, "/preset save mine")
        assert app.settings.presets["mine"]["presence_penalty"] == 0.4
        # a preset saved before these values existed: they are off when it is applied
        app.settings.presets["old"] = {"temperature": 0.5, "top_k": 3, "top_p": 0.9, "repetition_penalty": 1.0}
        await send(pilot, "/preset old")
        p = h.session.params
        assert (p.temperature, p.min_p, p.presence_penalty, p.frequency_penalty) == (0.5, 0.0, 0.0, 0.0)
        await send(pilot, "/preset mine")
        assert h.session.params.presence_penalty == 0.4


def test_the_settings_file_keeps_the_new_values(rnnchat_home):
    from rnnchat.core import paths
    from rnnchat.session.settings import Settings

    s = Settings()
    s.sampling = s.sampling.replace(min_p=0.05, presence_penalty=-0.5, frequency_penalty=1.5)
    s.presets = {"old": {"temperature": 0.5, "top_k": 3, "top_p": 0.9, "repetition_penalty": 1.0}}
    s.save()
    raw = json.loads(paths.settings_file().read_text())
    assert (raw["min_p"], raw["presence_penalty"], raw["frequency_penalty"]) == (0.05, -0.5, 1.5)
    loaded, warning = Settings.load()
    assert warning is None and loaded.sampling == s.sampling and loaded.presets == s.presets
    raw["frequency_penalty"] = 7
    paths.settings_file().write_text(json.dumps(raw))
    loaded, warning = Settings.load()
    assert "frequency_penalty=7" in warning and loaded.frequency_penalty == 0.0 and loaded.min_p == 0.05


async def test_settings_screen_lists_checks_and_applies_live(harness, gate):
    h = harness(gate=gate, hold_after=6)
    app = h.app()
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "/minp 0.05")
        await send(pilot, "Speak", wait=False)
        await wait_for(pilot, lambda: len(h.engine.read_temperatures) == 6, "6 chars")
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), "the settings screen")
        screen = app.screen
        values = {f: screen.query_one(f"#set-{f}", Input).value for f in FIELDS}
        assert values == {"temperature": "0.8", "top_k": "0", "top_p": "1", "min_p": "0.05",
                          "repetition_penalty": "1", "presence_penalty": "0", "frequency_penalty": "0",
                          "max_chars": "1000", "seed": "off"}
        ranges = " ".join(str(w.render()) for w in screen.query(".setting-range"))
        assert "-2 to 2, 0 is off" in ranges and "[0, 1), 0 is off" in ranges
        helps = " ".join(str(w.render()) for w in screen.query(".setting-help"))
        assert "likeliest" in helps and "already in the reply" in helps

        box = screen.query_one("#set-min_p", Input)
        box.focus()
        box.value = "1.5"
        await pilot.press("enter")
        error = str(screen.query_one("#help-min_p").render())
        assert error == "min-p must be a number in [0, 1) (0 turns it off), not 1.5"
        assert h.session.params.min_p == 0.05  # the old value stays in use
        box.value = "abc"
        await pilot.press("enter")
        assert str(screen.query_one("#help-min_p").render()) == "/minp needs a number, not 'abc'"
        box.value = "0.2"
        await pilot.press("enter")
        assert h.session.params.min_p == 0.2 and "likeliest" in str(screen.query_one("#help-min_p").render())

        temp = screen.query_one("#set-temperature", Input)
        temp.focus()
        temp.value = "0.3"
        await pilot.press("enter")  # while the reply waits after 6 characters
        seed = screen.query_one("#set-seed", Input)
        seed.focus()
        seed.value = "42"
        await pilot.press("down")  # leaving a row applies it too
        await wait_for(pilot, lambda: h.session.params.seed == 42, "the seed", limit=100)
        assert h.session.params.temperature == 0.3
        assert "min-p      0.2" in panel_text(app)
        gate.set()
        await wait_for(pilot, lambda: app.chat.live is None, "the reply")
        temps = [t for _, t in h.engine.read_temperatures]
        assert temps[:6] == [0.8] * 6 and set(temps[6:]) == {0.3}
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen), "the chat")
        await send(pilot, "/settings")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), "the settings screen")
        assert app.screen.query_one("#set-min_p", Input).value == "0.2"
        await pilot.press("f3")  # F3 closes it again
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen), "the chat")
