"""/prime TEXT or /prime @FILE: a new conversation from the state after reading a text.

The read runs in a thread worker (the session waits for the engine's thread), so a long text
never stops the screen: while it is read the transcript shows "priming 12,288 / 300,000 · Esc
cancels" (the read's progress, polled every 0.2 s), and Esc (the stop action: the session's
``stop``) cancels it between two chunks, leaving the conversation as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from rnnchat.core.errors import ReadCancelled, RnnchatError
from rnnchat.session.types import SessionError
from rnnchat.tui.notices import tip
from rnnchat.tui.widgets import Notice

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp

MAX_PRIME_BYTES = 1 << 20
KIND = "priming"


def _progress(done: int, total: int) -> Text:
    return Text.assemble(("priming ", "bold"), f"{done:,} / {total:,}", (" · Esc cancels", "dim"))


def prime(app: "RnnchatApp", arg: str | None = None) -> None:
    """/prime TEXT or /prime @FILE (a regular file, at most 1 MiB of UTF-8)."""
    from rnnchat.core.safe_files import read_regular

    if not arg:
        app.notify("give a text or a file: /prime TEXT or /prime @FILE", severity="error")
        return
    text = arg
    if arg.startswith("@"):
        try:
            text = read_regular(arg[1:], MAX_PRIME_BYTES, "priming text").decode("utf-8")
        except (OSError, RnnchatError, UnicodeDecodeError) as exc:
            app.notify(f"/prime: {str(exc)[:200]}", severity="error", markup=False)
            return

    def now() -> None:
        if app.session is None or not app.session.loaded:
            app.notify("No model is open yet", severity="warning")
            return
        _start(app, text)

    app.chat.when_idle(now)


def _start(app: "RnnchatApp", text: str) -> None:
    session, seen = app.session, [0, len(text)]
    app.chat.priming = True
    notice = app.chat.transcript.add_notice(Notice(_progress(0, len(text)), kind=KIND))

    def watch(done: int, total: int) -> bool:  # the engine's thread: only record
        seen[0], seen[1] = done, total
        return True

    timer = app.set_interval(0.2, lambda: notice.update(_progress(*seen)))

    def work() -> None:  # every way out ends the priming on screen (its flag, notice and timer)
        error, severity = None, None
        try:
            session.prime(text, watch=watch)
        except ReadCancelled:
            error, severity = "Priming cancelled: the conversation is as it was.", "information"
        except (SessionError, RnnchatError) as exc:
            error, severity = str(exc)[:200], "error"
        except Exception as exc:  # a bug: said in one line, and sending works again afterwards
            error, severity = f"/prime failed: {type(exc).__name__}: {str(exc)[:150]}", "error"
        app.call_from_thread(_ended, app, timer, error, severity)

    app.run_worker(work, thread=True, group="prime", exit_on_error=False)


def _ended(app: "RnnchatApp", timer, error: str | None, severity: str | None) -> None:
    timer.stop()
    app.chat.priming = False
    app.chat.transcript.remove_notices(KIND)
    if error is not None:
        app.notify(error, severity=severity or "error", markup=False)
        return
    app.chat.transcript.clear()
    app.chat.transcript.add_notice(tip(f"New conversation from the state after {len(app.session.primer):,} characters "
                                       "of priming text (/reset comes back here)."))
