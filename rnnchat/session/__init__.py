"""The chat session layer: a conversation with a model, independent of any screen.

Nothing here imports torch at import time (``ChatSession.load`` does) and nothing imports
Textual. See ``docs/chat.md`` for the API.
"""

from rnnchat.session.chat import ChatSession, Reply
from rnnchat.session.framing import Framing
from rnnchat.session.history import Conversation, ConversationSummary, HistoryStore
from rnnchat.session.settings import Settings
from rnnchat.session.types import Chunk, SessionBusy, SessionError, SessionInfo, Snapshot, Turn

__all__ = ["ChatSession", "Reply", "Framing", "Conversation", "ConversationSummary", "HistoryStore", "Settings",
           "Chunk", "SessionBusy", "SessionError", "SessionInfo", "Snapshot", "Turn"]
