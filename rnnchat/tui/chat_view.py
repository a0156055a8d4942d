"""ChatView: the transcript and the input, and the reply in flight (its worker, its pacer).

The view sends what is typed to the session, starts the reply's thread worker, which only
iterates the reply and posts batches of characters (paced by :class:`Pacer`), and paints them.
It knows nothing about loading models or settings: the app sets ``session`` and ``loading_model``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from rich.text import Text
from textual import on, work
from textual.containers import Vertical
from textual.message import Message
from textual.worker import get_current_worker

from rnnchat.core.errors import ReadCancelled
from rnnchat.core.safe_text import printable
from rnnchat.session.api import ChatAPI, ReplyHandle
from rnnchat.session.types import SessionError, Turn
from rnnchat.tui.messages import ReplyChunk, ReplyDone, ReplyFailed, one_line
from rnnchat.tui.pacer import Pacer
from rnnchat.tui.read_progress import ReadCancelledMessage, ReadProgressView
from rnnchat.tui.widgets import Notice, Transcript, TurnView
from rnnchat.tui.widgets.composer import Composer


@dataclass
class LiveReply:
    id: int
    reply: ReplyHandle
    view: TurnView
    user_text: str | None  # the text sent (None for a regenerate), put back if the reply fails
    notes_shown: int = 0  # the reply's notes already shown (those known at send)


class ChatView(ReadProgressView, Vertical):
    class Command(Message):
        """The user entered a /command."""

        def __init__(self, line: str, typed: str = "") -> None:
            super().__init__()
            self.line = line
            self.typed = typed  # the input as typed: put back if the command is mistyped

    def __init__(self, on_ended: Callable[[Turn | None], None] = lambda turn: None,
                 commands: tuple[str, ...] = (), **kw) -> None:
        """``on_ended(turn)`` is called (on the UI thread) when a reply ended: finished, stopped,
        or failed (``turn`` None)."""
        super().__init__(**kw)
        self.on_ended = on_ended
        self.session: ChatAPI | None = None
        self.loading_model: str | None = None  # the model being loaded, set by the app (``loading`` is Textual's)
        self.confidence = False
        self.live: LiveReply | None = None
        self.priming = False  # a /prime is reading (tui/priming.py): a send waits for it
        self.quitting = threading.Event()  # set when the app quits: the worker stops its reply
        self._counter = 0
        self._after_reply: list[Callable[[], None]] = []
        self.commands = commands
        self.pending: str | None = None  # sent while the model loads: sent when it is ready

    def compose(self):
        yield Transcript(id="transcript")
        yield Composer(id="input", commands=self.commands, recall=self.earlier_messages,
                       placeholder="Say something… (Enter sends · ctrl+j new line · /help)")

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)

    @property
    def input(self) -> Composer:
        return self.query_one("#input", Composer)

    def earlier_messages(self) -> list[str]:
        """What ↑ recalls, newest first: this conversation's messages, then older ones."""
        mine = [t.text for t in reversed(self.session.turns) if t.role == "user"] if self.session else []
        older = self.session.store.user_messages() if self.session is not None else []
        seen, out = set(), []
        for text in mine + older:
            if text not in seen:
                seen.add(text)
                out.append(text)
        return out

    @property
    def replying(self) -> bool:
        """A reply is in flight: its worker has not reported the end yet (it may be saving)."""
        return self.live is not None or (self.session is not None and self.session.busy)

    def warn(self, text: str, severity: str = "warning") -> None:
        self.app.notify(text, severity=severity, markup=False)

    # ---- typing -----------------------------------------------------------------------
    @on(Composer.Submitted, "#input")
    def _submitted(self, event: Composer.Submitted) -> None:
        text = event.value
        if not text.strip():
            return
        self.input.value = ""
        if text.lstrip().startswith("/"):
            self.post_message(self.Command(text.strip(), text))
        else:
            self.send_text(text)

    @on(Composer.Changed, "#input")
    def _draft_changed(self, event: Composer.Changed) -> None:
        self.read_draft(self.input.text)

    def read_draft(self, text: str) -> None:
        """Let the model read the draft while it is typed (or pasted): Enter then has only the
        template's last characters left to read (see rnnchat/session/readahead.py)."""
        s = self.session
        if (not text.strip() or text.lstrip().startswith("/") or s is None or not s.loaded
                or self.loading_model is not None or self.replying):
            return
        s.read_ahead(text)

    def restore_input(self, text: str) -> None:
        self.input.value = text

    def can_talk(self, restore: str | None = None) -> bool:
        s, problem = self.session, None
        if self.loading_model is not None and (s is None or not s.loaded):
            problem = f"{self.loading_model} is still loading…"
        elif s is None or not s.loaded:
            problem = "No model is open: pick one with /model (ctrl+l)"
        elif self.loading_model is not None:
            problem = f"switching to {self.loading_model}…"
        elif self.priming:
            problem = "The priming text is still being read: Esc cancels it"
        elif self.replying:
            problem = "A reply is still being written: Esc stops it"
        if problem:
            self.warn(problem)
            if restore is not None:
                self.restore_input(restore)
            return False
        return True

    def send_text(self, text: str) -> None:
        if self.loading_model is not None and self.pending is None and not self.replying:
            self.pending = text  # queued: sent when the model is ready (send_pending)
            self.transcript.add_notice(Notice(Text.assemble(("pending: ", "bold"), printable(text.replace("\n", " ⏎ "))[:60],
                                                            (" · sent when the model is ready", "dim")),
                                              kind="pending"))
            return
        if not self.can_talk(restore=text):
            return
        try:
            reply = self.session.send(text)
        except SessionError as exc:
            self.warn(str(exc), "error")
            self.restore_input(text)
            return
        self.transcript.remove_notices("tip")
        self.transcript.add_turn(TurnView("user", text=text, number=self.user_number()))
        for note in reply.notes:  # characters the model does not know: said at once, not after the reply
            self.warn(note)
        self.start_reply(reply, text)
        self.live.notes_shown = len(reply.notes)

    def user_number(self, upto: int | None = None) -> int:
        """The number of the user's message ``turns[upto - 1]`` (default: the last), as /rewind N takes it."""
        return sum(t.role == "user" for t in self.session.turns[:upto])

    def send_pending(self) -> None:
        """The model is ready: send the message queued while it loaded."""
        text, self.pending = self.pending, None
        self.transcript.remove_notices("pending")
        if text is not None:
            self.send_text(text)

    def drop_pending(self) -> None:
        """The load failed: the queued message goes back into the input."""
        text, self.pending = self.pending, None
        self.transcript.remove_notices("pending")
        if text is not None and not self.input.text:
            self.restore_input(text)

    def _ask(self, start: Callable[[], ReplyHandle]) -> ReplyHandle | None:
        """A new reply from ``start`` (regenerate, continue), or None with the reason shown."""
        if not self.can_talk():
            return None
        try:
            return start()
        except SessionError as exc:
            self.warn(str(exc))
            return None

    def regenerate(self) -> None:
        reply = self._ask(lambda: self.session.regenerate())
        if reply is not None:
            self.rebuild()
            self.start_reply(reply, None)

    def continue_reply(self) -> None:
        """Continue the last reply from where it stopped: its view streams on."""
        reply = self._ask(lambda: self.session.continue_reply())
        if reply is None:
            return
        views = [v for v in self.transcript.turn_views() if v.role == "model"]
        if not views:
            self.rebuild()
            views = [v for v in self.transcript.turn_views() if v.role == "model"]
        views[-1].resume()
        self._counter += 1
        self.live = LiveReply(self._counter, reply, views[-1], None)
        self.transcript.anchor()
        self._stream(reply, self._counter)

    # ---- the reply in flight ----------------------------------------------------------
    def when_idle(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` now, or stop the reply in flight and run it when the reply has ended."""
        if self.replying:
            self._after_reply.append(fn)
            if self.session is not None:
                self.session.stop()
            return
        fn()

    def model_view(self, live: bool = False, turn: Turn | None = None) -> TurnView:
        info = self.session.info if self.session is not None else None
        kw = {}
        if turn is not None:
            kw = dict(text=turn.text, probs=turn.probs, reason=turn.reason, chars_per_s=turn.chars_per_s)
        return TurnView("model", model_name=info.name if info else "model", framing=self.session.framing,
                        live=live, confidence=self.confidence, **kw)

    def start_reply(self, reply: ReplyHandle, user_text: str | None) -> None:
        self._counter += 1
        view = self.transcript.add_turn(self.model_view(live=True))
        self.live = LiveReply(self._counter, reply, view, user_text)
        self.transcript.anchor()
        self.follow_read(reply, self._counter)
        self._stream(reply, self._counter)

    @work(thread=True, group="reply", exit_on_error=False, name="reply")
    def _stream(self, reply: ReplyHandle, reply_id: int) -> None:
        """Iterate the reply (the engine produces it on its own thread); post what arrived in
        paced batches. Only post_message touches the UI."""
        worker = get_current_worker()
        pacer = Pacer()  # the first character goes out at once, the rest in paced batches
        text: list[str] = []
        probs: list[float] = []
        try:
            for chunk in reply:
                text.append(chunk.text)
                probs.extend(chunk.probs)
                if worker.is_cancelled or self.quitting.is_set():
                    reply.cancel()
                now = time.monotonic()
                if pacer.ready(now):
                    pacer.sent(now)
                    self.post_message(ReplyChunk(reply_id, "".join(text), tuple(probs), pacer, now))
                    text.clear()
                    probs.clear()
        except ReadCancelled as exc:  # Esc while the turn was read: nothing was sent
            self.post_message(ReadCancelledMessage(reply_id, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - the session undid the exchange; the UI says why
            self.post_message(ReplyFailed(reply_id, one_line(exc)))
            return
        if text:
            self.post_message(ReplyChunk(reply_id, "".join(text), tuple(probs)))
        self.post_message(ReplyDone(reply_id, reply.turn, list(reply.notes)))

    def on_reply_chunk(self, message: ReplyChunk) -> None:
        live = self.live
        if live is not None and live.id == message.reply_id:
            live.view.append(message.text, message.probs)
        if message.pacer is not None:  # tell the worker once this batch is on the screen
            self.call_after_refresh(message.pacer.painted, message.posted_at)

    def on_reply_done(self, message: ReplyDone) -> None:
        live = self.live
        if live is None or live.id != message.reply_id:
            return
        self.live = None
        live.view.finish(message.turn)
        for note in message.notes[live.notes_shown:]:
            self.warn(note)
        self.on_ended(message.turn)
        self._run_pending()
        self.read_draft(self.input.value)  # typed while the reply streamed

    def on_reply_failed(self, message: ReplyFailed) -> None:
        live = self.live
        if live is None or live.id != message.reply_id:
            return
        self.live = None
        self.rebuild()
        if live.user_text is not None and not self.input.value:
            self.restore_input(live.user_text)
        self.transcript.add_notice(Notice(Text.assemble(("The reply failed: ", "bold"), message.error), kind="error"))
        self.app.notify(message.error, title="The reply failed", severity="error", markup=False)
        self.on_ended(None)
        self._run_pending()

    def _run_pending(self) -> None:
        pending, self._after_reply = self._after_reply, []
        for fn in pending:
            fn()

    def rebuild(self) -> None:
        """Redraw the transcript from the session's turns (after rewind, regenerate, reopen)."""
        t = self.transcript
        t.clear()
        if self.session is None:
            return
        for i, turn in enumerate(self.session.turns):
            if turn.role == "user":
                t.add_turn(TurnView("user", text=turn.text, number=self.user_number(i + 1)))
            elif turn.reason is not None:
                t.add_turn(self.model_view(turn=turn))
        t.anchor()

    def set_confidence(self, on: bool) -> None:
        self.confidence = on
        for view in self.transcript.turn_views():
            view.set_confidence(on)

    def on_unmount(self) -> None:
        self.quitting.set()
        if self.session is not None:
            self.session.stop()
