"""Alternatives: K replies written at once for the last reply, one of which the user keeps.

``ChatSession.alternatives(k)`` starts them from the exact state the last reply started from
(as ``regenerate`` does). The engine steps the K streams together (one batched step per
character; ``ChatEngine.alternatives``); alternative j has its own seed. Iterating gives
:class:`AltChunk` s (which alternative, its next characters); ``cancel()`` (Esc) stops them all,
keeping what each wrote. Then ``pick(j)`` puts alternative j in place of the last reply, in
the transcript and the history, and the conversation goes on from the state after exactly its
characters; ``discard()`` (or doing nothing) keeps the original reply.

Seeds: alternative j uses ``base + 1 + j``, where ``base`` is the seed a regenerate of that
reply would use (``reply_seed``): with ``/seed N`` the alternatives are reproducible and none
repeats the reply they stand beside. Each writes what a single reply with its seed writes, so
``regenerate(same_seed=True)`` after a pick writes the picked text again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from rnnchat.session.types import SessionError, Turn

if TYPE_CHECKING:
    from rnnchat.session.chat import ChatSession

K_MIN, K_MAX, K_DEFAULT = 2, 8, 3
SEED_LIMIT = 2**63


@dataclass(frozen=True)
class AltChunk:
    """The next characters of alternative ``index`` and their probabilities."""

    index: int
    text: str
    probs: tuple[float, ...]


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not K_MIN <= k <= K_MAX:
        raise SessionError(f"the number of alternatives must be a whole number from {K_MIN} to {K_MAX}, "
                           f"not {str(k)[:20]!r}")
    return k


class Alternatives:
    """See the module docstring. ``choices`` (one model :class:`Turn` each) is set when the
    iteration ends; ``texts`` grow while it runs. One iteration only."""

    def __init__(self, session: "ChatSession", k: int, base_seed: int) -> None:
        self.k = check_k(k)
        turns = session.turns
        last = turns[-1] if turns else None
        if last is not None and last.role == "model":
            snap, self.replaces = last.snapshot, last
        else:  # rewound to just after a user turn: the alternatives are for its pending reply
            snap, self.replaces = (session.current_state if last is not None else None), None
        if snap is None or not snap.can_reply:
            raise SessionError("no reply to write alternatives for yet; send a message first")
        self._session = session
        self.snapshot = snap
        self.params = session.params
        self.seeds = [(base_seed + 1 + j) % SEED_LIMIT for j in range(self.k)]
        self.texts: list[list[str]] = [[] for _ in range(self.k)]
        self.probs: list[list[float]] = [[] for _ in range(self.k)]
        self.choices: list[Turn] | None = None
        self.chars_per_s: float | None = None  # all the alternatives' characters together, per second
        self.notes: list[str] = []
        self.picked: int | None = None
        self.cancel_event = threading.Event()
        self.done = False
        self._before = (list(turns), session.current_state)
        self._ends: list = []
        self._started = False
        self._resolved = False

    def cancel(self) -> None:
        self.cancel_event.set()

    def __iter__(self) -> Iterator[AltChunk]:
        if self._started:
            raise SessionError("alternatives can be read only once")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[AltChunk]:
        s = self._session
        gen = None
        t0 = time.perf_counter()
        try:
            gen = s.engine.alternatives(self.snapshot, s.live, self.seeds, self.cancel_event)
            for tok in gen:
                self._add(tok)
                yield AltChunk(tok.index, tok.char, (tok.prob,))
        except GeneratorExit:  # the reader walked away: keep what was written, as stopped
            self.cancel_event.set()
            try:
                for tok in gen.drain() if gen is not None else ():
                    self._add(tok)
            except BaseException:  # noqa: BLE001 - nothing to tell a reader that left
                self._end()
                raise GeneratorExit from None
            self._finish(gen, t0)
            raise
        except BaseException:
            self._end()
            raise
        self._finish(gen, t0)

    def _add(self, tok) -> None:
        self.texts[tok.index].append(tok.char)
        self.probs[tok.index].append(tok.prob)

    def _end(self) -> None:
        self.done = True
        if self._session._reply is self:
            self._session._reply = None

    def _finish(self, gen, t0: float) -> None:
        if gen is None or len(gen.ends) != self.k:
            self._end()
            raise SessionError("the engine did not write every alternative")
        elapsed = time.perf_counter() - t0
        framing, now, choices = self._session.framing, time.time(), []
        for j, end in enumerate(gen.ends):
            text = "".join(self.texts[j])
            speaker, body = framing.split_speaker(text)
            choices.append(Turn("model", text, fed=end.fed, probs=list(self.probs[j]), speaker=speaker,
                                body_start=body, reason=end.reason, seed=self.seeds[j],
                                chars_per_s=len(end.fed) / elapsed if elapsed > 0 else None,
                                params=self.params.to_dict(), snapshot=self.snapshot, created=now))
        total = sum(len(e.fed) for e in gen.ends)
        self.chars_per_s = total / elapsed if elapsed > 0 else None
        self.choices, self._ends = choices, [e.end for e in gen.ends]
        self._end()

    def _unchanged(self) -> bool:
        turns, current = self._before
        now = self._session.turns
        return (self._session.current_state is current and len(now) == len(turns)
                and all(a is b for a, b in zip(now, turns)))

    def pick(self, j: int) -> Turn:
        """Keep alternative ``j`` (0-based) in place of the last reply; the conversation goes
        on from the state after its characters. Returns its turn."""
        s = self._session
        s._ready()
        if self.choices is None:
            raise SessionError("the alternatives are not written yet")
        if self._resolved:
            raise SessionError("one of these alternatives was already kept")
        if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < self.k:
            shown = j + 1 if isinstance(j, int) else str(j)[:20]  # numbered 1..k for the user
            raise SessionError(f"there is no alternative {shown} (1..{self.k})")
        if not self._unchanged():
            raise SessionError("the conversation changed since these alternatives were written; /alts again")
        turn = self.choices[j]
        if self.replaces is not None:
            s.turns[-1] = turn
        else:
            s.turns.append(turn)
        s._current = self._ends[j]
        s._ahead.clear()
        self.picked, self._resolved = j, True
        try:
            s._autosave()
        except SessionError as exc:
            self.notes.append(str(exc))
        return turn

    def discard(self) -> None:
        """Keep the original reply (the alternatives are forgotten; if they are being written
        they stop, and the session is free once their iteration ends)."""
        self.cancel_event.set()
        self._resolved = True
        if not self._started:  # never read: nothing will end them
            self._started = True
            self._end()
