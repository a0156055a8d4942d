"""The settings action: F3 and ``/settings`` open the sampling settings screen (F3 again closes
it); ``/set NAME VALUE`` (also ollama's ``/set parameter NAME VALUE``) sets one value as its own
``/command`` would."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp


def show_settings(app: "RnnchatApp", arg: str | None = None) -> None:
    from rnnchat.tui.screens.settings import FIELDS, SettingsScreen

    if arg:
        set_one(app, arg, FIELDS)
    elif isinstance(app.screen, SettingsScreen):
        app.screen.dismiss(None)
    else:
        app.push_screen(SettingsScreen())


def set_one(app: "RnnchatApp", arg: str, fields: tuple[str, ...]) -> None:
    """``NAME VALUE``: NAME is a sampling value's /command or one of its aliases."""
    from rnnchat.tui.actions import BY_COMMAND, BY_ID, CommandError

    words = arg.split()
    if words and words[0].lower() == "parameter":  # ollama: /set parameter temperature 0.5
        words = words[1:]
    action = BY_COMMAND.get(words[0].lower()) if words else None
    if len(words) != 2 or action is None or action.id not in fields:
        names = ", ".join(BY_ID[f].command for f in fields)
        app.notify(f"/set NAME VALUE: NAME is one of {names}", severity="error", markup=False)
        return
    try:
        args = action.parse(words[1], action.command)
    except CommandError as exc:
        app.notify(str(exc), severity="error", markup=False)
        return
    action.handler(app, *args)

