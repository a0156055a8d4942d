"""The settings while the app runs (tui/settings_keeper.py): many changes are written once, soon;
a settings file that cannot be written is a warning and the app goes on; without ``persist``
nothing is written."""

from __future__ import annotations

import json

from tui_helpers import ready, send, wait_for

from rnnchat.core import paths
from rnnchat.session import Settings


async def test_many_changes_are_written_once_soon(harness, monkeypatch):
    writes = []
    real_save = Settings.save
    monkeypatch.setattr(Settings, "save", lambda self: (writes.append(self.sampling.temperature), real_save(self)))
    app = harness().app("mine", settings=Settings())
    async with app.run_test() as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: writes, "the write after the load")
        writes.clear()
        for value in (0.3, 0.4, 0.5):  # three changes in a row
            app.set_params(temperature=value)
        await wait_for(pilot, lambda: writes, "the settings to be written")
        await pilot.pause(0.7)
        assert writes == [0.5]
        assert json.loads(paths.settings_file().read_text())["temperature"] == 0.5


async def test_a_settings_file_that_cannot_be_written_is_a_warning(harness):
    paths.settings_file().mkdir(parents=True)  # a folder where the file should be
    h = harness()
    app = h.app("mine", settings=Settings())
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "/temp 0.3", wait=False)
        await wait_for(pilot, lambda: any("could not save the settings" in m for _, m in h.notes), "the warning")
        assert app.params.temperature == 0.3 and app.is_running
        assert ("warning", next(m for _, m in h.notes if "could not save" in m)) in h.notes


async def test_without_persist_nothing_is_written(harness):
    app = harness().app("mine", settings=Settings(), persist_settings=False)
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "/temp 0.3", wait=False)
        await pilot.pause(0.7)
        await pilot.press("ctrl+q")
    assert not paths.settings_file().exists() and app.settings.sampling.temperature == 0.3
