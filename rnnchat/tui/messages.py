"""Messages the worker threads post to the app (the only thing a worker does with the UI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from rnnchat.session.api import ChatAPI
    from rnnchat.session.history import Conversation
    from rnnchat.session.types import SessionInfo, Turn


class ModelLoaded(Message):
    def __init__(self, token: int, session: "ChatAPI", info: "SessionInfo", opened: "Conversation | None" = None) -> None:
        super().__init__()
        self.token, self.session, self.info, self.opened = token, session, info, opened


class LoadFailed(Message):
    def __init__(self, token: int, model: str | None, error: str, kind: str) -> None:
        super().__init__()
        self.token, self.model, self.error, self.kind = token, model, error, kind


class ReplyChunk(Message):
    def __init__(self, reply_id: int, text: str, probs: tuple[float, ...], pacer=None,
                 posted_at: float = 0.0) -> None:
        super().__init__()
        self.reply_id, self.text, self.probs = reply_id, text, probs
        self.pacer, self.posted_at = pacer, posted_at


class ReplyDone(Message):
    def __init__(self, reply_id: int, turn: "Turn", notes: list[str]) -> None:
        super().__init__()
        self.reply_id, self.turn, self.notes = reply_id, turn, notes


class ReplyFailed(Message):
    def __init__(self, reply_id: int, error: str) -> None:
        super().__init__()
        self.reply_id, self.error = reply_id, error


class ConversationOpened(Message):
    def __init__(self, token: int, conversation: "Conversation") -> None:
        super().__init__()
        self.token, self.conversation = token, conversation


class ConversationFailed(Message):
    def __init__(self, token: int, error: str) -> None:
        super().__init__()
        self.token, self.error = token, error


def one_line(exc: BaseException) -> str:
    """A user-facing line for an exception: our own errors as they are, others with their type."""
    from rnnchat.core.errors import RnnchatError
    from rnnchat.core.safe_text import printable
    from rnnchat.plugins.manager import plugin_prefix

    text = printable(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
    if isinstance(exc, RnnchatError):
        return text or type(exc).__name__
    return plugin_prefix(exc) + (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def error_kind(exc: BaseException) -> str:
    from rnnchat.core.errors import CheckpointError, DeviceError, ModelNotFound, PluginError

    for cls, kind in ((ModelNotFound, "not-found"), (CheckpointError, "broken"), (DeviceError, "device"),
                      (PluginError, "plugin")):
        if isinstance(exc, cls):
            return kind
    return "other"
