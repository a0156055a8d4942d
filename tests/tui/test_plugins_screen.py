"""The plugins screen shows a broken plugin with its error, and the app keeps working."""

from __future__ import annotations

from tui_helpers import ready, send, wait_for

from tests import fakeplugins as fp


async def test_broken_plugin_error_is_shown_in_the_plugins_screen(harness, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    fp.make_plugin(site, "kaputt", fp.IMPORT_ERROR)
    monkeypatch.syspath_prepend(str(site))
    from rnnchat.plugins.manager import get_host

    get_host(reload=True)
    h = harness()
    app = h.app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await send(pilot, "/plugins", wait=False)
        from rnnchat.tui.screens import PluginsScreen

        await wait_for(pilot, lambda: isinstance(app.screen, PluginsScreen)
                       and "plugin(s)" in str(app.screen.query_one("#plugins-body").render()), "plugins")
        body = str(app.screen.query_one("#plugins-body").render())
        assert "kaputt" in body and "broken on purpose" in body and "rnnchat.cells" in body
        await pilot.press("escape")
        await send(pilot, "Hello")
        assert h.session.turns, "the app keeps working after showing the error"
