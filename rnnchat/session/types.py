"""Plain data the session hands out: turns, reply chunks, model info. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rnnchat.core.errors import RnnchatError


class SessionError(RnnchatError):
    """Something the chat session cannot do right now (one line, shown to the user)."""


class SessionBusy(SessionError):
    """A reply is still streaming."""


@dataclass(frozen=True)
class Chunk:
    """A piece of a reply: ``text`` and the probability the model gave each of its characters."""

    text: str
    probs: tuple[float, ...]


@dataclass
class SessionInfo:
    """What the side panel shows about the loaded model."""

    name: str
    path: str
    cell: str
    layers: int
    hidden: int
    parameters: int
    device: str
    val_loss: float | None = None
    vocab_size: int = 0
    template: str = "{text}"
    stop: tuple[str, ...] = ()
    note: str = ""  # e.g. "the last model was not found; opened shakespeare"
    source: str = ""  # what reopens this model: its registered name, or the file path
    hint: str | None = None  # the checkpoint's one-line "what to type" (checkpoint_fields.py)
    description: str | None = None

    def __post_init__(self) -> None:
        self.source = self.source or self.name

    @property
    def signature(self) -> str:
        """Identifies the model's shape, so a saved conversation is only reopened on a model that fits."""
        return f"{self.cell}:{self.layers}x{self.hidden}:v{self.vocab_size}:p{self.parameters}"


@dataclass
class Snapshot:
    """A state as the history keeps it: ``blob`` holds safetensors bytes (``state``/``logits``
    stay None). The session restores it through its engine, which hands back its own opaque
    handle with the same three fields (see ``engine_api.StateHandle``)."""

    state: Any = None
    logits: Any = None
    blob: bytes | None = None

    @property
    def can_reply(self) -> bool:
        return self.logits is not None


@dataclass
class Turn:
    role: str  # "user" or "model"
    text: str  # what is shown: the user's text, or the model's reply without its stop sequence
    fed: str = ""  # exactly the characters this turn fed into the model
    probs: list[float] = field(default_factory=list)  # model turns: one per character of ``text``
    speaker: str | None = None  # model turns: the name the model chose ("ROMEO"), if the framing has one
    body_start: int = 0  # where the reply proper starts in ``text`` (after the "NAME:" line)
    reason: str | None = None  # model turns: "stop", "length", "cancelled" (or None while streaming)
    seed: int | None = None
    chars_per_s: float | None = None
    first_char_ms: float | None = None  # model turns: from send/regenerate to the first character (not saved)
    read_ahead: int = 0  # model turns: characters of the user's turn read while it was typed (not saved)
    params: dict | None = None  # the sampling values when the reply started
    snapshot: Snapshot | None = field(default=None, repr=False)  # the state this turn started from
    created: float = 0.0

    @property
    def stopped(self) -> bool:
        return self.reason == "cancelled"

    @property
    def body(self) -> str:
        return self.text[self.body_start:]
