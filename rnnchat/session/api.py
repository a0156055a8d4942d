"""What the chat app may call on a session: the app side of the seam. Torch-free.

The app is typed against :class:`ChatAPI` and :class:`ReplyHandle`; the messages that cross
are the plain dataclasses of ``types.py`` (:class:`Turn`, :class:`Chunk`,
:class:`SessionInfo`) and ``history.py`` (:class:`Conversation`). :class:`ChatSession`
implements it (over the real or the fake engine).

Threads: a reply may be iterated from any thread (the engine produces it on its own);
``stop``, ``read_ahead`` and ``set_params`` never block and may be called from any thread;
``load`` and ``open_conversation`` wait for the engine: call them in a worker.

Sampling values cross by one rule: :class:`SamplingParams` is immutable; the app makes a new
one and hands it over whole with ``set_params``; the engine reads the session's current
values once per character, so the next character follows (see ``rnnchat/core/params.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

from rnnchat.core.params import SamplingParams
from rnnchat.session.alternatives import AltChunk
from rnnchat.session.framing import Framing
from rnnchat.session.history import Conversation, HistoryStore
from rnnchat.session.inspect_target import Target
from rnnchat.session.state_files import SavedState
from rnnchat.session.types import Chunk, SessionInfo, Turn

if TYPE_CHECKING:
    from rnnchat.session.inspector import Reading


class ReplyHandle(Protocol):
    """A reply in flight. Iterate it once; ``turn`` is final when the iteration ends."""

    turn: Turn
    notes: list[str]  # one-line remarks for the user, complete when the iteration ends
    on_progress: Callable[[int, int], None] | None  # (read, in all) of the user's turn, between chunks

    def cancel(self) -> None: ...

    def __iter__(self) -> Iterator[Chunk]: ...


class AlternativesHandle(Protocol):
    """K alternatives for the last reply (``session/alternatives.py``). Iterate once (any thread):
    :class:`AltChunk` s; then ``choices`` (a model :class:`Turn` each) is set and ``pick(j)``
    keeps alternative j (0-based) or ``discard()`` keeps the original reply."""

    k: int
    seeds: list[int]
    choices: list[Turn] | None
    chars_per_s: float | None
    notes: list[str]

    def cancel(self) -> None: ...

    def __iter__(self) -> Iterator[AltChunk]: ...

    def pick(self, j: int) -> Turn: ...

    def discard(self) -> None: ...


class ChatAPI(Protocol):
    model_name: str | None
    info: SessionInfo | None  # set by load()
    framing: Framing
    turns: list[Turn]
    conversation_id: int | None
    store: HistoryStore

    @property
    def loaded(self) -> bool: ...

    @property
    def busy(self) -> bool: ...  # a reply is in flight

    @property
    def params(self) -> SamplingParams: ...

    def load(self) -> SessionInfo: ...

    def close(self) -> None: ...

    def set_params(self, params: SamplingParams) -> SamplingParams: ...

    def send(self, text: str) -> ReplyHandle: ...

    def regenerate(self, seed: int | None = None, same_seed: bool = False) -> ReplyHandle: ...

    def alternatives(self, k: int = 3) -> AlternativesHandle: ...  # k in 2..8, from the last reply's start state

    def continue_reply(self) -> ReplyHandle: ...  # the last reply, from where it stopped (Esc, length)

    def read_ahead(self, draft: str) -> None: ...

    def stop(self) -> None: ...

    def rewind(self, k: int) -> None: ...

    def reset(self) -> None: ...

    def prime(self, text: str, watch=None) -> None: ...  # a new conversation from the state after ``text``

    def save_state(self, name: str) -> Path: ...  # the state now and its text, as a file (state_files.py)

    def load_state(self, name: str) -> SavedState: ...  # a new conversation from a saved state

    def save(self) -> int | None: ...

    def open_conversation(self, conv_id: int) -> Conversation: ...

    def export_markdown(self, path: str | Path | None = None) -> Path: ...

    def inspect(self, target: Target) -> "Reading": ...  # the inspector's re-read; waits for the engine


SessionFactory = Callable[[str | None, SamplingParams, bool], ChatAPI]
"""(model name or path or None, the sampling values, fall back to the default model) -> session."""


def default_session_factory(model: str | None, params: SamplingParams, fallback: bool) -> ChatAPI:
    from rnnchat.session.chat import ChatSession  # torch-free; load() opens the torch engine

    return ChatSession(model, params=params, fallback=fallback)
