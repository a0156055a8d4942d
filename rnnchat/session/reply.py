"""Reply: one model reply in flight. Iterate it from any thread (the engine's own thread
produces the characters); the session's turn becomes final when the iteration ends."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator

from rnnchat.session.types import Chunk, SessionError, Turn

if TYPE_CHECKING:
    from rnnchat.session.chat import ChatSession


class Reply:
    """A model reply. Iterating gives :class:`Chunk` s, one per character with its probability.
    When iteration ends, ``turn`` is final: its ``reason`` is "stop", "length" or "cancelled".
    ``notes`` holds one-line remarks for the user (characters the model does not know, a
    history save that failed). ``cancel()`` may be called from any thread; while the user's turn is
    still being read it stops the read between chunks (ReadCancelled: the exchange is undone).
    ``on_progress(done, total)`` hears how far that read got (on the engine's thread); ``progress``
    holds the latest. One iteration only."""

    def __init__(self, session: "ChatSession", turn: Turn, user_turn: Turn | None, feed_ids: list[int] | None,
                 seed: int, notes: list[str], continues: Turn | None = None) -> None:
        self._session = session
        self.turn, self.user_turn, self.seed, self.notes = turn, user_turn, seed, notes
        self.continues = continues  # a continue: the reply this one extends (``turn`` is its new part)
        self.cancel_event = threading.Event()
        self.done = False
        self.read_ahead = 0  # characters of the turn that were read while the user typed
        self.created = time.perf_counter()
        self._feed_ids = feed_ids
        self._started = False
        self.on_progress: Callable[[int, int], None] | None = None  # (read, in all) while the turn is read
        self.progress = (0, len(feed_ids) if feed_ids is not None else 0)

    @property
    def reason(self) -> str | None:
        return self.turn.reason

    def cancel(self) -> None:
        self.cancel_event.set()

    def reading(self, done: int, total: int) -> bool:
        """The engine read ``done`` of the turn's ``total`` ids (its thread, between chunks):
        tell ``on_progress``; False (stop reading) once the reply was cancelled."""
        self.progress = (done, total)
        hook = self.on_progress
        if hook is not None:
            hook(done, total)
        return not self.cancel_event.is_set()

    def __iter__(self) -> Iterator[Chunk]:
        if self._started:
            raise SessionError("a reply can be read only once")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[Chunk]:
        s = self._session
        chars: list[str] = []
        probs: list[float] = []
        gen = t0 = None
        try:
            if self._feed_ids is not None:
                self.turn.snapshot = s._read_turn(self.user_turn.snapshot, self._feed_ids, self)
            gen = s.engine.generate(self.turn.snapshot, s.live, self.seed, self.cancel_event)
            for tok in gen:
                if t0 is None:
                    t0 = time.perf_counter()
                    self.turn.first_char_ms = (t0 - self.created) * 1000
                chars.append(tok.char)
                probs.append(tok.prob)
                yield Chunk(tok.char, (tok.prob,))
        except GeneratorExit:  # the reader walked away: keep what was produced, as stopped
            if gen is None:
                self._abort()
            else:
                self.cancel_event.set()
                try:
                    for tok in gen.drain():
                        chars.append(tok.char)
                        probs.append(tok.prob)
                except BaseException:  # noqa: BLE001 - nothing to tell a reader that left
                    self._abort()
                    raise GeneratorExit from None
                self._finish(gen, "".join(chars), probs, t0, "cancelled")
            raise
        except BaseException:
            self._abort()
            raise
        self._finish(gen, "".join(chars), probs, t0, gen.reason)

    def _finish(self, gen, text: str, probs: list[float], t0: float | None, reason: str | None) -> None:
        s = self._session
        t = self.turn
        t.text, t.probs, t.reason = text, probs, reason
        t.fed = gen.fed
        t.speaker, t.body_start = s.framing.split_speaker(text)
        # speed from the first character to the end: the characters after the first, per second
        n = len(t.fed)
        elapsed = time.perf_counter() - t0 if t0 is not None else 0.0
        t.chars_per_s = (n - 1) / elapsed if n > 1 and elapsed > 0 else None
        if self.continues is not None:
            self._merge(t, self.continues)
        s._ended(self, gen.end)

    def _merge(self, part: Turn, into: Turn) -> None:
        """A continue ended: its text and characters fed join the reply it continued, which
        keeps its start state (so regenerate and rewind stay exact), its seed and values."""
        into.text += part.text
        into.probs = list(into.probs) + list(part.probs)
        into.fed += part.fed
        into.reason, into.chars_per_s = part.reason, part.chars_per_s
        into.speaker, into.body_start = self._session.framing.split_speaker(into.text)
        self.turn = into

    def _abort(self) -> None:
        """An error (or an abandoned iteration) before the reply finished: the session undoes
        this exchange, so it is exactly as before ``send``/``regenerate``."""
        self.turn.reason = self.turn.reason or "error"
        self._session._undo(self)
