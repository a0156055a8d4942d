"""``/state save NAME``, ``/state load NAME``, ``/state list``: the conversation's recurrent state,
kept as a file in the data directory (``rnnchat/session/state_files.py``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rnnchat.core.safe_text import printable
from rnnchat.session.types import SessionError
from rnnchat.tui.notices import tip

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp

USAGE = "/state save NAME, /state load NAME or /state list"


def parse(arg: str, name: str) -> tuple:
    """'save romeo' -> ("save", "romeo"); a mistyped one is a CommandError (it stays in the input)."""
    from rnnchat.session.state_files import check_name
    from rnnchat.tui.actions import CommandError

    word, _, rest = arg.partition(" ")
    word, rest = word.lower() or "list", rest.strip()
    if word == "list" and not rest:
        return ("list", None)
    if word not in ("save", "load"):
        raise CommandError(f"/state takes {USAGE}")
    try:
        return (word, check_name(rest))
    except SessionError as exc:
        raise CommandError(f"/state {word}: {exc}") from None


def state(app: "RnnchatApp", word: str, name: str | None) -> None:
    if word == "list":
        show_list(app)
        return

    def now() -> None:
        s = app.session
        if s is None or not s.loaded:
            app.notify("No model is open yet", severity="warning")
            return
        try:
            if word == "save":
                path = s.save_state(name)
                app.notify(f"Saved the state as {name} ({len(s.primer + s.history_text()):,} characters of text): "
                           f"{path}", markup=False)
                return
            saved = s.load_state(name)
        except SessionError as exc:
            app.notify(str(exc), severity="error", markup=False)
            return
        app.chat.transcript.clear()
        app.chat.transcript.add_notice(tip(f"New conversation from the state {name} ({saved.shape}, after "
                                           f"{len(saved.text):,} characters; /reset comes back here)."))

    app.chat.when_idle(now)


def show_list(app: "RnnchatApp") -> None:
    from rnnchat.session.state_files import list_states

    try:
        found, broken = list_states()
    except (SessionError, OSError) as exc:
        app.notify(f"cannot list the states: {printable(exc, 200)}", severity="error", markup=False)
        return
    if not found and not broken:
        app.notify("No saved states yet: /state save NAME keeps the state now", markup=False)
        return
    lines = [f"{s.name}  {printable(s.model, 40)} ({s.shape}) · {len(s.text):,} chars · "
             f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(s.created))}" for s in found[:20]]
    lines += [f"{n}  broken: {printable(why, 80)}" for n, why in broken[:5]]
    app.notify("\n".join(lines), title="Saved states (/state load NAME)", markup=False, timeout=12)
