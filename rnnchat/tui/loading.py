"""Loading a model for the app: one daemon thread that waits for the engine's own thread.

The thread opens the model (``session.load``: torch is imported there, on the engine's
thread), looks at the history once and reopens a conversation if asked; it tells the app
with messages. It is a daemon, so quitting during a load (importing torch takes seconds)
never waits for it.
"""

from __future__ import annotations

import threading
from typing import Callable

from textual.message import Message

from rnnchat.session.api import ChatAPI
from rnnchat.tui.messages import ConversationFailed, ConversationOpened, LoadFailed, ModelLoaded, error_kind, one_line


def start_loading(session: ChatAPI, token: int, then_open: int | None, conv_token: int,
                  post: Callable[[Message], object]) -> threading.Thread:
    thread = threading.Thread(target=_load, args=(session, token, then_open, conv_token, post),
                              name="rnnchat-load", daemon=True)
    thread.start()
    return thread


def start_opening(session: ChatAPI, conv_id: int, token: int, post: Callable[[Message], object]) -> None:
    """Reopen a saved conversation on the loaded model, in the same kind of thread."""
    threading.Thread(target=_open, args=(session, conv_id, token, post), name="rnnchat-open", daemon=True).start()


def _open(session: ChatAPI, conv_id: int, token: int, post) -> None:
    try:
        conv = session.open_conversation(conv_id)
    except Exception as exc:  # noqa: BLE001
        post(ConversationFailed(token, one_line(exc)))
        return
    post(ConversationOpened(token, conv))


def _load(session: ChatAPI, token: int, then_open: int | None, conv_token: int, post) -> None:
    try:
        info = session.load()
    except BaseException as exc:  # noqa: BLE001 - reported to the UI
        session.close()
        post(LoadFailed(token, session.model_name, one_line(exc), error_kind(exc)))
        return
    try:  # a damaged history is found (and moved aside) now, not at the first save
        session.store.list(1)
    except Exception:  # noqa: BLE001 - reported when the history is used
        pass
    opened = error = None
    if then_open is not None:
        try:
            opened = session.open_conversation(then_open)
        except Exception as exc:  # noqa: BLE001
            error = one_line(exc)
    post(ModelLoaded(token, session, info, opened))
    if error is not None:
        post(ConversationFailed(conv_token, error))
