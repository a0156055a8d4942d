"""One registry of actions: keys, F1 help, palette and /commands derived from it; keys remapped
by the settings' ``keys`` table, with a one-line notice for what cannot be used."""

from __future__ import annotations

import pytest
from tui_helpers import ready, send, wait_for

from rnnchat.session import Settings
from rnnchat.tui import actions
from rnnchat.tui.app import RnnchatApp
from rnnchat.tui.commands import PALETTE


def test_everything_is_derived_from_the_registry():
    ids = [a.id for a in actions.ACTIONS]
    assert len(ids) == len(set(ids))
    assert sorted(b.id for b in RnnchatApp.BINDINGS) == sorted(a.id for a in actions.ACTIONS if a.key)
    assert [b.description for b in RnnchatApp.BINDINGS if b.show] == ["Quit", "Stop", "Temp+", "Temp−", "Regen",
                                                                       "Help"]  # the footer: fits 60 columns
    assert {b.key for b in RnnchatApp.BINDINGS} >= {"ctrl+q", "escape", "ctrl+r", "f1", "ctrl+up"}
    assert [title for title in (a.title for a in PALETTE)] == [a.title for a in actions.ACTIONS if a.title]
    rows = dict(actions.command_rows())
    assert {"/temp X", "/rewind [N]", "/model [NAME]", "/save [PATH|json]"} <= set(rows)
    for a in actions.ACTIONS:
        for name in (a.command, *a.aliases):
            if name:
                assert actions.BY_COMMAND[name] is a


@pytest.mark.parametrize("line, expected", [("/temp 0.7", ("temperature", (0.7,))), ("/t 1", ("temperature", (1.0,))),
                                            ("/rewind", ("rewind", (None,))), ("/seed off", ("seed", (None,))),
                                            ("/MODEL tiny", ("models", ("tiny",))), ("/exit", ("quit", ()))])
def test_commands_parse(line, expected):
    action, args = actions.parse(line)
    assert (action.id, args) == expected


@pytest.mark.parametrize("line, error", [("/bogus", "unknown command /bogus"), ("/temp", "give a value"),
                                         ("/topk many", "needs a whole number")])
def test_bad_commands_are_one_line_errors(line, error):
    with pytest.raises(actions.CommandError, match=error):
        actions.parse(line)


def test_keymap_keeps_the_default_for_what_it_cannot_use():
    keys, notices = actions.keymap({"regenerate": "ctrl+g", "plugins": "f7", "bogus": "x", "stop": "ctrl+nope",
                                    "temperature": "f6", "help": 7})
    assert keys["regenerate"] == "ctrl+g" and keys["plugins"] == "f7"
    assert keys["stop"] == "escape" and keys["help"] == "f1" and keys["temperature"] is None
    assert len(notices) == 4 and all("\n" not in n for n in notices)
    assert any("no action 'bogus'" in n for n in notices) and any("'ctrl+nope' is not a key" in n for n in notices)
    assert any("temperature needs a value" in n for n in notices)


async def test_remapped_keys_work_and_show_in_the_help(harness):
    h = harness()
    settings = Settings(keys={"regenerate": "ctrl+g", "plugins": "f9", "bogus": "ctrl+x"})
    app = h.app(settings=settings, persist_settings=False)
    async with app.run_test(size=(120, 35)) as pilot:
        await ready(pilot)
        assert [m for _, m in h.notes if "bogus" in m], "an unknown id is a one-line notice"
        await send(pilot, "Speak")
        first = h.session.turns[-1].text
        await pilot.press("ctrl+r")  # the old key does nothing now
        await pilot.pause()
        assert len(h.engine.generations) == 1
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(h.engine.generations) == 2 and not h.session.busy
                       and app.chat.live is None, "the regenerate")
        assert h.session.turns[-1].text != first
        await pilot.press("f1")
        from rnnchat.tui.screens import HelpScreen

        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        assert ("ctrl+g", "regenerate the last reply") in app.screen.keys
        await pilot.press("escape")
        await pilot.press("f9")
        from rnnchat.tui.screens import PluginsScreen

        await wait_for(pilot, lambda: isinstance(app.screen, PluginsScreen), "the plugins screen")


def test_the_keys_table_and_the_sampling_values_round_trip_through_the_settings_file(rnnchat_home):
    import json

    from rnnchat.core import paths
    from rnnchat.core.params import SamplingParams

    Settings(sampling=SamplingParams(temperature=0.3), keys={"regenerate": "ctrl+g"}).save()
    saved = json.loads(paths.settings_file().read_text())
    assert saved["temperature"] == 0.3 and saved["keys"] == {"regenerate": "ctrl+g"} and "sampling" not in saved
    settings, warning = Settings.load()
    assert warning is None and settings.keys == {"regenerate": "ctrl+g"} and settings.sampling.temperature == 0.3
    paths.settings_file().write_text(json.dumps({"keys": ["ctrl+g"]}))
    settings, warning = Settings.load()
    assert settings.keys == {} and "keys=" in warning


def test_a_key_two_actions_would_share_stays_with_its_owner():
    keys, notices = actions.keymap({"plugins": "f1", "history": "ctrl+g", "models": "ctrl+g"})
    assert keys["help"] == "f1" and keys["plugins"] == actions.BY_ID["plugins"].key
    assert keys["history"] == "ctrl+g" and keys["models"] == actions.BY_ID["models"].key
    assert any("f1 already runs help; plugins keeps" in n for n in notices)
    assert any("ctrl+g already runs history; models keeps" in n for n in notices)
