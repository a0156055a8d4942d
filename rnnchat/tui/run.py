"""``run_app``: the chat app as a process (``rnnchat``, ``rnnchat chat``)."""

from __future__ import annotations

import sys

from rnnchat.core.process_exit import exit_now
from rnnchat.session.settings import Settings
from rnnchat.tui.app import RnnchatApp


def run_app(model: str | None = None, fast_exit: bool = True) -> None:
    """Open the chat app with the saved settings; exit with its code.

    When the app has closed (terminal restored, workers finished, history and settings written)
    and torch was loaded, the process ends with ``os._exit``: tearing torch down takes from half a
    second to several on a busy machine, and nothing is left to do, so quitting stays immediate.
    """
    settings, warning = Settings.load()
    app = RnnchatApp(model, settings=settings, settings_warning=warning)
    code = app.run()
    app.startup.report()
    code = code or 0
    if fast_exit and "torch" in sys.modules:
        exit_now(code)
    if code:
        raise SystemExit(code)
