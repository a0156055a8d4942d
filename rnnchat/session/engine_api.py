"""What a chat session asks of its engine: the engine side of the seam. Torch-free.

The real engine is :class:`rnnchat.engine.chat.ChatEngine` (torch, on its own worker thread);
:class:`rnnchat.session.fake_engine.FakeEngine` is a deterministic stand-in without torch,
for the app's tests and demos. Both satisfy :class:`ChatEngine` structurally.

States are opaque :class:`StateHandle` s: the session keeps them in its turns and hands them
back; it reads only ``blob`` (to save) and ``can_reply`` (a state after some text).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable, Iterator, Protocol

from rnnchat.core.params import LiveParams
from rnnchat.core.vocab import Encoded


class StateHandle(Protocol):
    state: Any  # engine objects, never looked into outside the engine
    logits: Any
    blob: bytes | None  # the state as safetensors bytes, kept in the history

    @property
    def can_reply(self) -> bool: ...  # True once text was read: a reply can start here


class Token(Protocol):
    char: str
    prob: float


class Generation(Protocol):
    """A reply's characters, produced on the engine's thread, iterable from any thread once.
    After the iteration: ``reason`` ("stop", "length", "cancelled"), ``fed`` (every character
    fed into the state, the stop sequence included) and ``end`` (the state after them)."""

    reason: str | None
    fed: str
    end: StateHandle | None

    def __iter__(self) -> Iterator[Token]: ...

    def drain(self) -> list[Token]: ...  # wait for the end (cancel first); the tokens not read


class AltToken(Protocol):
    index: int  # which alternative (0..K-1)
    char: str
    prob: float


class AltEnd(Protocol):
    reason: str  # "stop", "length", "cancelled"
    fed: str  # every character fed into this alternative's state (the stop sequence included)
    end: StateHandle  # the state after ``fed``


class AltGeneration(Protocol):
    """K alternatives' tokens (:class:`AltToken`), produced on the engine's thread, iterable from
    any thread once. After the iteration: ``ends``, one :class:`AltEnd` per alternative."""

    reason: str | None  # "done" or "cancelled"

    @property
    def ends(self) -> list[AltEnd]: ...

    def __iter__(self) -> Iterator[AltToken]: ...

    def drain(self) -> list[AltToken]: ...


class Worker(Protocol):
    """The engine's one thread. The session's read-ahead queues its reads there."""

    def submit(self, fn: Callable, *args) -> Future: ...

    def is_current(self) -> bool: ...


class ChatEngine(Protocol):
    facts: dict  # SessionInfo fields the engine knows: name, path, cell, layers, hidden, ...
    meta: dict  # the checkpoint's metadata (the chat template and stop sequence are read from it)
    worker: Worker

    def initial(self) -> StateHandle: ...

    def encode(self, text: str) -> Encoded: ...

    def decode(self, ids: list[int]) -> str: ...

    def read(self, state: Any, ids: list[int], logits: Any = None,
             watch: Callable[[int, int], bool] | None = None) -> StateHandle: ...
    # waits for the engine thread; reads in chunks, asking ``watch(done, total)`` before the first and
    # after each (rnnchat/core/read_chunks.py): False stops the read with ReadCancelled

    def feed(self, ids: list[int], state: Any) -> tuple[Any, Any]: ...  # on the engine thread only

    def generate(self, start: StateHandle, params: LiveParams, seed: int,
                 cancel: threading.Event) -> Generation: ...

    def alternatives(self, start: StateHandle, params: LiveParams, seeds: list[int],
                     cancel: threading.Event) -> AltGeneration: ...  # one stream per seed, stepped together

    def restore(self, blob: bytes) -> StateHandle: ...  # raises RnnchatError when it does not fit

    # the chat inspector (session/inspector.py): a re-read of text, off the generation path
    def quantities(self) -> list[tuple[int, str, str, int, str]]: ...  # (layer, name, kind, units, description)

    def activations(self, state: Any, ids: list[int], select: list[tuple[int, str]] | None = None
                    ) -> tuple[dict[tuple[int, str], Any], Any]: ...  # ({(layer, name): float32 [T, K]}, state after); waits

    def probe_text(self, chars: int) -> tuple[list[int], str, str]: ...  # the start of the model's held-out
    # text, as ``rnnchat probe`` reads it: (ids, text, "the held-out part of NAME"); RnnchatError when absent

    def close(self) -> None: ...


EngineOpener = Callable[[str | None, str | None, bool], ChatEngine]


def open_torch_engine(model: str | None, device: str | None, fallback: bool) -> ChatEngine:
    """The real engine (imports torch: call it in a worker thread)."""
    from rnnchat.engine.chat import ChatEngine as TorchChatEngine

    return TorchChatEngine.open(model, device, fallback)
