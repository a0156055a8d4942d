"""FakeEngine: a torch-free, deterministic engine with scripted replies.

It stands in for :class:`rnnchat.engine.chat.ChatEngine` behind the real
:class:`~rnnchat.session.chat.ChatSession`, so the app's tests exercise the session's own
send, regenerate, rewind, read-ahead and history. Its "state" is the text fed so far, so
state checks are exact. Like the real engine it runs everything on its own
:class:`~rnnchat.engine.worker.EngineWorker` thread and produces a reply with a
:class:`~rnnchat.engine.pipe.Generation`.

Test controls (attributes, changeable at any time): ``gate`` and ``hold_after`` (the reply
waits before character ``hold_after`` until ``gate`` is set), ``fail_reply`` (a reply raises
SessionError before its first character), ``fail_after``/``fail_error`` (raise after that many
characters), ``char_delay`` (seconds per character), ``unknown`` (characters not in the
vocabulary: encode drops them), ``read_chunk`` (ids per chunk of a turn's read),
``feed_hook`` (called with the ids of every feed, on the engine thread, before it: a test
can hold a long read there, chunk by chunk) and ``corpus`` (the text ``probe_text`` gives the
inspector's "auto"; None: the model's corpus is not on this machine). What it did: ``generations``
(a :class:`FakeRun` each), ``alternative_runs`` (a list of them per ``alternatives`` call),
``read_temperatures`` ((index, temperature) per character of a reply), ``reads`` (every
text it was asked to read, read-ahead included), ``inspected`` (the length of each
inspector read), ``closed``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from rnnchat.engine.alts import AltEnd, AltGeneration, AltToken
from rnnchat.engine.pipe import Generation
from rnnchat.engine.worker import EngineWorker
from rnnchat.core.errors import RnnchatError
from rnnchat.core.params import LiveParams
from rnnchat.plugins.resolve import not_found
from rnnchat.core.read_chunks import Watch, chunks
from rnnchat.store.st_bytes import build, split, tensor_bytes
from rnnchat.session.types import SessionError
from rnnchat.core.vocab import Encoded

DEFAULT_REPLIES = ("ROMEO:\nBut soft, what light through yonder window breaks?",
                   "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?",
                   "MERCUTIO:\nA plague on both your houses!")
Script = tuple[str, ...] | list[str] | Callable[[str, int], str]
FAKE_QUANTITIES = (("c", "state", "cell state"), ("h", "state", "hidden state"), ("f", "gate", "forget gate"))


def fake_prob(char: str, i: int) -> float:
    """A deterministic 'confidence' for scripted text: letters sure, punctuation less so."""
    if char.isalpha():
        return 0.55 + 0.4 * ((i * 7919) % 11) / 10
    if char.isspace():
        return 0.9
    return 0.02 + 0.3 * ((i * 104729) % 7) / 6


@dataclass(frozen=True, slots=True)
class FakeState:
    state: str  # every character read so far
    logits: Any  # None before anything was read
    blob: bytes

    @property
    def can_reply(self) -> bool:
        return self.logits is not None


@dataclass
class FakeRun:
    """What one reply of the fake engine did: the characters it produced, its cancel flag."""

    produced: list[str]
    cancel: threading.Event


@dataclass(frozen=True, slots=True)
class FakeToken:
    char: str
    prob: float


def _state(text: str, started: bool) -> FakeState:
    """A state and its blob: safetensors bytes (``fake.text``: the text read, UTF-8; ``fake.started``)."""
    raw = text.encode()
    blob = build({"fake.text": ("U8", [len(raw)], raw), "fake.started": ("U8", [1], b"\x01" if started else b"\x00")})
    return FakeState(text, len(text) if started else None, blob)


class FakeEngine:
    """See the module docstring. Every character is in its vocabulary (id = code point)."""

    backend = "fake"

    def __init__(self, name: str = "fake", *, replies: Script = DEFAULT_REPLIES, template: str = "YOU:\n{text}\n\n",
                 stop: tuple[str, ...] = ("\n\n",), note: str = "", gate: threading.Event | None = None,
                 hold_after: int | None = None, char_delay: float = 0.0, unknown: str = "",
                 meta: dict | None = None, corpus: str | None = None) -> None:
        self.replies = replies
        self.corpus = corpus  # the inspector's "held-out text" (None: not on this machine)
        self.unknown = unknown  # characters outside the vocabulary: encode drops them
        self.gate, self.hold_after, self.char_delay = gate, hold_after, char_delay
        self.fail_reply: str | None = None
        self.fail_after: int | None = None
        self.fail_error: BaseException | None = None
        self.meta = {"chat": {"template": template, "stop": list(stop)}, **(meta or {})}
        self.facts = dict(name=name, path=f"/fake/{name}.safetensors", cell="lstm", layers=2, hidden=8,
                          parameters=1234, device="cpu", val_loss=1.5, vocab_size=65, note=note, source=name)
        self.stop = stop
        self.worker = EngineWorker("rnnchat-fake-engine")
        self.read_chunk = 4096
        self.feed_hook: Callable[[list[int]], None] | None = None
        self.generations: list[FakeRun] = []
        self.read_temperatures: list[tuple[int, float]] = []
        self.reads: list[str] = []
        self.alternative_runs: list[list[FakeRun]] = []  # one FakeRun per alternative, per call
        self.inspected: list[int] = []  # the characters of each inspector read (activations)
        self.closed = False
        self._count = 0

    @classmethod
    def opener(cls, *, load_gate: threading.Event | None = None, load_error: BaseException | None = None,
               missing: tuple[str, ...] = ("missing",), made: list | None = None, **kw):
        """An ``engine=`` argument for ChatSession: opens a FakeEngine named after the model,
        after ``load_gate`` (if any) is set; ``load_error`` is raised; a name in ``missing`` is
        not found (with ``fallback``, "fake" opens instead). Engines made go into ``made``."""

        def open_engine(model: str | None, device: str | None, fallback: bool) -> FakeEngine:
            if load_gate is not None:
                load_gate.wait(30)
            if load_error is not None:
                raise load_error
            note = ""
            if model in missing:
                if not fallback:
                    raise not_found(model)
                model, note = None, f"model {model!r} was not found; opened the default model instead"
            engine = cls(model or "fake", note=note, **kw)
            if made is not None:
                made.append(engine)
            return engine

        return open_engine

    # ---- the ChatEngine protocol ------------------------------------------------------
    def initial(self) -> FakeState:
        return _state("", False)

    def encode(self, text: str) -> Encoded:
        dropped = "".join(dict.fromkeys(c for c in text if c in self.unknown))
        return Encoded([ord(c) for c in text if c not in self.unknown], dropped)

    def decode(self, ids) -> str:
        return "".join(map(chr, ids))

    def read(self, state: str, ids: list[int], logits: Any = None, watch: Watch | None = None) -> FakeState:
        return self.worker.call(self._read, state, ids, logits, watch)

    def _read(self, state: str, ids: list[int], logits: Any, watch: Watch | None = None) -> FakeState:
        for _, piece in chunks(ids, self.read_chunk, watch):
            logits, state = self.feed(piece, state)
        return FakeState(state, logits, _state(state, True).blob)

    def feed(self, ids: list[int], state: str) -> tuple[Any, str]:
        if self.feed_hook is not None:
            self.feed_hook(list(ids))
        text = self.decode(ids)
        self.reads.append(text)
        state += text
        return len(state), state

    def restore(self, blob: bytes) -> FakeState:
        try:
            _, tensors, body = split(blob, "a saved state")
            if set(tensors) != {"fake.text", "fake.started"} or tensors["fake.started"].shape != (1,) \
                    or any(t.dtype != "U8" for t in tensors.values()):
                raise RnnchatError("a saved state is corrupt: not a fake engine's state")
            text = tensor_bytes(tensors, body, "fake.text").decode()
        except UnicodeDecodeError:
            raise RnnchatError("a saved state is corrupt: not a fake engine's state") from None
        return _state(text, tensor_bytes(tensors, body, "fake.started") == b"\x01")

    # ---- the inspector: deterministic fake activations of the text read so far --------------
    def quantities(self) -> list[tuple[int, str, str, int, str]]:
        return [(layer, name, kind, 8, desc) for layer in (1, 2) for name, kind, desc in FAKE_QUANTITIES]

    def activations(self, state: str, ids: list[int], select=None):
        return self.worker.call(self._activations, state, ids, select)

    def _activations(self, state: str, ids: list[int], select) -> tuple[dict, str]:
        """Unit 3 of layer 2's ``c`` is minus a tenth of the position in the line (what "auto"
        finds); every other unit a fixed function of the character, its position and the unit."""
        text = state + self.decode(ids)
        self.inspected.append(len(ids))
        lines = np.array([k - text.rfind("\n", 0, k + 1) for k in range(len(state), len(text))], np.float64)
        codes = np.array(ids, np.float64)[:, None]
        pos = np.arange(len(state), len(text), dtype=np.float64)[:, None]
        out = {}
        for layer in (1, 2):
            c = np.sin(0.37 * codes + 1.7 * np.arange(8) + 0.9 * layer + 0.11 * pos) * (1 + np.arange(8) % 3)
            if layer == 2:
                c[:, 3] = -lines / 10
            for name, value in (("c", c), ("h", np.tanh(c)), ("f", 1 / (1 + np.exp(-c)))):
                if select is None or (layer, name) in select:
                    out[(layer, name)] = value.astype(np.float32)
        return out, text

    def probe_text(self, chars: int) -> tuple[list[int], str, str]:
        if self.corpus is None:
            raise RnnchatError("the model's corpus is not on this machine")
        text = self.corpus[:chars]
        return [ord(c) for c in text], text, "the held-out part of the fake corpus"

    def close(self) -> None:
        self.closed = True
        self.worker.close()

    def generate(self, start: FakeState, params: LiveParams, seed: int, cancel: threading.Event) -> Generation:
        script = self._script(start.state)
        run = FakeRun([], cancel)
        self.generations.append(run)

        def produce(gen: Generation):
            reason = "stop"
            for i, ch in enumerate(script):
                self._hold(i, cancel)
                if self.fail_reply:
                    raise SessionError(self.fail_reply)
                if self.fail_after is not None and i >= self.fail_after:
                    raise self.fail_error if self.fail_error is not None else RuntimeError("generation failed")
                if cancel.is_set():
                    reason = "cancelled"
                    break
                p = params.current  # read once per character, as the real sampler does
                if i >= p.max_chars:
                    reason = "length"
                    break
                self.read_temperatures.append((i, p.temperature))
                run.produced.append(ch)
                if self.char_delay:
                    time.sleep(self.char_delay)
                gen.buf.append(FakeToken(ch, fake_prob(ch, i)))
                if i == 0:  # the first at once; the reader polls for the rest
                    gen.ready.set()
            if self.fail_reply:
                raise SessionError(self.fail_reply)
            fed = "".join(run.produced) + (self.stop[0] if reason == "stop" and self.stop else "")
            return reason, fed, _state(start.state + fed, True)

        return Generation(self.worker, produce, cancel)

    def alternatives(self, start: FakeState, params: LiveParams, seeds: list[int],
                     cancel: threading.Event) -> AltGeneration:
        """One scripted reply per seed (the scripts of the next ``len(seeds)`` replies), written
        together, one character of each per step, as the real engine's batched step does."""
        scripts = [self._script(start.state) for _ in seeds]
        runs = [FakeRun([], cancel) for _ in seeds]
        self.alternative_runs.append(runs)

        def produce(gen: AltGeneration):
            reasons: list[str | None] = [None] * len(scripts)
            for i in range(max(map(len, scripts), default=0) + 1):
                self._hold(i, cancel)
                if self.fail_reply:
                    raise SessionError(self.fail_reply)
                p = params.current
                for j, script in enumerate(scripts):
                    if reasons[j] is not None:
                        continue
                    if cancel.is_set():
                        reasons[j] = "cancelled"
                    elif i >= len(script):
                        reasons[j] = "stop"
                    elif i >= p.max_chars:
                        reasons[j] = "length"
                    else:
                        runs[j].produced.append(script[i])
                        gen.buf.append(AltToken(j, script[i], fake_prob(script[i], i)))
                if i == 0:
                    gen.ready.set()
                if self.char_delay:
                    time.sleep(self.char_delay)
                if all(reasons):
                    break
            ends = []
            for run, reason in zip(runs, reasons):
                fed = "".join(run.produced) + (self.stop[0] if reason == "stop" and self.stop else "")
                ends.append(AltEnd(reason or "stop", fed, _state(start.state + fed, True)))
            return ("cancelled" if cancel.is_set() else "done"), "", ends

        return AltGeneration(self.worker, produce, cancel)

    def _script(self, state: str) -> str:
        script = self.replies(state, self._count) if callable(self.replies) else \
            self.replies[self._count % len(self.replies)]
        self._count += 1
        return script

    def _hold(self, i: int, cancel: threading.Event) -> None:
        if self.hold_after is not None and i >= self.hold_after and self.gate is not None:
            while not self.gate.is_set() and not cancel.is_set():
                self.gate.wait(0.01)
