"""/alts K: K alternatives for the last reply (``screens/alts.py``), one kept in its place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnchat.session.alternatives import K_DEFAULT, K_MAX, K_MIN
from rnnchat.session.types import SessionError

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp


def parse_count(arg: str, name: str) -> tuple:
    """'/alts 4' -> (4,); '/alts' -> (None,): the default. Raises CommandError."""
    from rnnchat.tui.actions import CommandError

    if not arg:
        return (None,)
    try:
        k = int(arg)
    except ValueError:
        k = None
    if k is None or not K_MIN <= k <= K_MAX:
        raise CommandError(f"/{name} takes a number of alternatives from {K_MIN} to {K_MAX}, not {arg[:20]!r}")
    return (k,)


def alternatives(app: "RnnchatApp", k: int | None = None) -> None:
    from rnnchat.tui.screens.alts import AltsScreen

    if isinstance(app.screen, AltsScreen):  # F5 again while they are shown: nothing new
        return
    app.chat.when_idle(lambda: _start(app, k or K_DEFAULT))


def _start(app: "RnnchatApp", k: int) -> None:
    from rnnchat.tui.screens.alts import AltsScreen, stacked

    chat = app.chat
    if not chat.can_talk():
        return
    try:
        handle = chat.session.alternatives(k)
    except SessionError as exc:
        chat.warn(str(exc))
        return
    info = chat.session.info
    screen = AltsScreen(handle, stacked=stacked(app.size.width, k), model_name=info.name if info else "model",
                        framing=chat.session.framing, confidence=chat.confidence)
    app.push_screen(screen, lambda index: _kept(app, handle, index))


def _kept(app: "RnnchatApp", handle, index: int | None) -> None:
    chat = app.chat
    try:
        if index is None:
            handle.discard()
            app.notify("Kept the original reply", markup=False)
            return
        try:
            turn = handle.pick(index)
        except SessionError as exc:
            app.notify(str(exc), severity="error", markup=False)
            return
        chat.rebuild()
        for note in handle.notes:
            chat.warn(note)
        chat.on_ended(turn)
        app.notify(f"Kept alternative {index + 1} of {handle.k}", markup=False)
    finally:
        chat._run_pending()  # what a key asked for while they were written (ctrl+r, /rewind) runs now
