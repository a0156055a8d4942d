"""The inspector's action (F4, ``/inspect``): open, retarget or close the :class:`Inspector`
widget, which sits between the transcript and the input while it is on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnchat.session.inspect_target import Target, parse_target
from rnnchat.session.types import SessionError

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp

OFF = "off"


def parse_inspect(arg: str, name: str) -> tuple:
    """'' -> (None,): toggle; 'off'; a unit ``LAYER:UNIT[:QUANTITY]``; ``auto [FEATURE]``."""
    from rnnchat.tui.actions import CommandError

    if not arg:
        return (None,)
    if arg.strip().lower() == OFF:
        return (OFF,)
    try:
        return (parse_target(arg),)
    except SessionError as exc:
        raise CommandError(str(exc)) from None


def inspect(app: "RnnchatApp", what: Target | str | None = None) -> None:
    """Toggle (no argument), close ('off') or colour the transcript by a unit (a Target)."""
    from rnnchat.tui.widgets.inspector import Inspector

    found = list(app.query(Inspector))
    current = found[0] if found else None
    if what == OFF or (what is None and current is not None):
        if current is None:
            app.notify("The inspector is off", markup=False, timeout=3)
            return
        current.remove()
        app.chat.input.focus()
        return
    if app.session is None or not app.session.loaded:
        app.notify("No model is open yet", severity="warning")
        return
    target = what if isinstance(what, Target) else Target(auto=True)
    if current is not None:
        current.retarget(target)
        current.focus()
        return
    widget = Inspector(target, id="inspector")
    app.chat.mount(widget, before=app.chat.input)
    widget.focus()
