"""A long read after Enter (a 30,000-character paste): its progress, and Esc to cancel it.

The session reads a sent turn in chunks (``rnnchat/core/read_chunks.py``) and tells the reply how
far it got; the reply's worker posts :class:`ReadProgress` from the engine's thread, and once
one chunk was read with more left, the transcript shows "reading 12,288 / 30,007 · Esc
cancels" until the read ends (a message read in one chunk shows nothing). Esc
(the stop action) cancels the read between two chunks: the session undoes the exchange, and
:class:`ReadCancelledMessage` puts the message back in the input, unchanged.
"""

from __future__ import annotations

from rich.text import Text
from textual.message import Message

from rnnchat.tui.widgets import Notice

KIND = "reading"


class ReadProgress(Message):
    def __init__(self, reply_id: int, done: int, total: int) -> None:
        super().__init__()
        self.reply_id, self.done, self.total = reply_id, done, total


class ReadCancelledMessage(Message):
    def __init__(self, reply_id: int, error: str) -> None:
        super().__init__()
        self.reply_id, self.error = reply_id, error


def progress_text(done: int, total: int) -> Text:
    return Text.assemble(("reading ", "bold"), f"{done:,} / {total:,}", (" · Esc cancels", "dim"))


class ReadProgressView:
    """ChatView's part: show the read's progress, and take a cancelled read back."""

    _read_reply: int | None = None  # the reply whose read has reported its start

    def follow_read(self, reply, reply_id: int) -> None:
        """Have the reply's progress posted here (from the engine's thread; post_message is safe)."""
        reply.on_progress = lambda done, total: self.post_message(ReadProgress(reply_id, done, total))

    def on_read_progress(self, message: ReadProgress) -> None:
        live = self.live
        if live is None or live.id != message.reply_id or live.view.text:
            return
        if self._read_reply != message.reply_id:  # its start, before the first chunk
            self._read_reply = message.reply_id
            return
        notices = [n for n in self.transcript.query(Notice) if n.kind == KIND]
        if message.done >= message.total:  # read: the reply is about to start
            self.transcript.remove_notices(KIND)
        elif notices:
            notices[0].update(progress_text(message.done, message.total))
        else:  # a chunk was read and more are left: a read worth showing
            self.transcript.add_notice(Notice(progress_text(message.done, message.total), kind=KIND))
            self.transcript.anchor()

    def on_read_cancelled_message(self, message: ReadCancelledMessage) -> None:
        live = self.live
        if live is None or live.id != message.reply_id:
            return
        self.live = None
        self.rebuild()  # the session undid the exchange: the transcript is as before the send
        text = live.user_text or ""
        typed = self.input.text  # typed while it read: kept after the message
        if text:
            self.restore_input(text + ("\n" + typed if typed.strip() else ""))
        self.transcript.add_notice(Notice(Text(message.error + "; your message is back in the input", style="dim"),
                                          kind="tip"))
        self.on_ended(None)
        self._run_pending()
