"""The chat session layer: a conversation with a model, independent of any screen.

Nothing here imports torch or Textual: the session talks to an engine through
``engine_api.ChatEngine`` (the torch one lives in ``rnnchat.engine.chat``) and holds its
states as opaque handles. ``api.py`` is what the app may call. See ``docs/chat.md``.
"""

from rnnchat.session.chat import ChatSession
from rnnchat.session.reply import Reply
from rnnchat.session.framing import Framing
from rnnchat.session.history import Conversation, ConversationSummary, HistoryStore
from rnnchat.session.settings import Settings
from rnnchat.session.types import Chunk, SessionBusy, SessionError, SessionInfo, Snapshot, Turn

__all__ = ["ChatSession", "Reply", "Framing", "Conversation", "ConversationSummary", "HistoryStore", "Settings",
           "Chunk", "SessionBusy", "SessionError", "SessionInfo", "Snapshot", "Turn"]
