"""FakeSession: the ChatSession interface with scripted replies and no torch.

The TUI tests drive the app with it (no environment variable selects it). Its "state" is simply the text fed so
far, so rewind, regenerate and reset can be checked exactly. It records the temperature it read
for every character it produced (``read_temperatures``), which is how tests see that a change
made mid-reply reaches the generator.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from rnnchat.errors import ModelNotFound
from rnnchat.params import SamplingParams
from rnnchat.session.chat import model_turns, reply_seed
from rnnchat.session.export import export_markdown
from rnnchat.session.framing import Framing
from rnnchat.session.history import Conversation, HistoryStore, title_of
from rnnchat.session.types import Chunk, ReplyBase, SessionBusy, SessionError, SessionInfo, Snapshot, Turn

DEFAULT_REPLIES = ("ROMEO:\nBut soft, what light through yonder window breaks?",
                   "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?",
                   "MERCUTIO:\nA plague on both your houses!")


def fake_prob(char: str, i: int) -> float:
    """A deterministic 'confidence' for scripted text: letters sure, punctuation less so."""
    if char.isalpha():
        return 0.55 + 0.4 * ((i * 7919) % 11) / 10
    if char.isspace():
        return 0.9
    return 0.02 + 0.3 * ((i * 104729) % 7) / 6


class FakeReply(ReplyBase):
    def __init__(self, session: "FakeSession", turn: Turn, user_turn: Turn | None, text: str, seed: int) -> None:
        super().__init__(session, turn, user_turn, seed)
        self.text = text
        self.produced: list[str] = []

    def _run(self) -> Iterator[Chunk]:
        s = self.session
        probs: list[float] = []
        reason = "stop"
        t0 = time.perf_counter()
        try:
            if s.fail_reply:
                raise SessionError(s.fail_reply)
            for i, ch in enumerate(self.text):
                if s.hold_after is not None and i >= s.hold_after and s.gate is not None:
                    while not s.gate.is_set() and not self.cancel_event.is_set():
                        time.sleep(0.002)
                if s.fail_after is not None and i >= s.fail_after:
                    raise s.fail_error if s.fail_error is not None else RuntimeError("generation failed")
                if self.cancel_event.is_set():
                    reason = "cancelled"
                    break
                if i >= s.params.max_chars:
                    reason = "length"
                    break
                s.read_temperatures.append((len(self.produced), s.params.temperature))
                p = fake_prob(ch, i)
                if i == 0:
                    self.turn.first_char_ms = 2.0  # a fixed figure: the fake takes no time
                self.produced.append(ch)
                probs.append(p)
                if s.char_delay:
                    time.sleep(s.char_delay)
                yield Chunk(ch, (p,))
        except GeneratorExit:
            reason = "cancelled"
            raise
        except BaseException:
            if self.turn in s.turns:
                i = s.turns.index(self.turn)
                if self.user_turn is not None and i > 0:
                    i -= 1
                    s._current = self.user_turn.snapshot
                del s.turns[i:]
            s._reply = None
            self.done = True
            raise
        finally:
            if not self.done:
                self._finish("".join(self.produced), probs, reason, time.perf_counter() - t0)

    def _finish(self, text: str, probs: list[float], reason: str, elapsed: float) -> None:
        s = self.session
        t = self.turn
        t.text, t.probs, t.reason = text, probs, reason
        t.fed = text + (s.framing.stop[0] if reason == "stop" and s.framing.stop else "")
        t.speaker, t.body_start = s.framing.split_speaker(text)
        t.chars_per_s = len(text) / elapsed if text and elapsed > 0 else None
        s._current = Snapshot(t.snapshot.state + t.fed)
        s._reply = None
        self.done = True
        if s.autosave:
            try:
                s.save()
            except SessionError as exc:
                self.notes.append(str(exc))


class FakeSession:
    """Scripted stand-in for :class:`rnnchat.session.chat.ChatSession` (same public interface)."""

    def __init__(self, model: str | None = None, *, params: SamplingParams | None = None,
                 replies: tuple[str, ...] | list[str] | Callable[[str, int], str] = DEFAULT_REPLIES,
                 store: HistoryStore | None = None, autosave: bool = False,
                 load_error: Exception | None = None, missing: tuple[str, ...] = ("missing",),
                 load_gate: threading.Event | None = None, gate: threading.Event | None = None,
                 hold_after: int | None = None, char_delay: float = 0.0,
                 template: str = "YOU:\n{text}\n\n", stop: tuple[str, ...] = ("\n\n",)) -> None:
        self.model_name = model
        self.params = params if params is not None else SamplingParams()
        self.replies = replies
        self.store = store if store is not None else HistoryStore()
        self.autosave = autosave
        self.load_error = load_error
        self.missing = missing
        self.load_gate = load_gate
        self.gate = gate
        self.hold_after = hold_after
        self.char_delay = char_delay
        self.fail_reply: str | None = None  # a reply raises SessionError(fail_reply) before its first character
        self.fail_after: int | None = None  # ...or raises fail_error (default RuntimeError) after this many
        self.fail_error: BaseException | None = None
        self.framing = Framing(template, stop)
        self.info: SessionInfo | None = None
        self.turns: list[Turn] = []
        self.conversation_id: int | None = None
        self.read_temperatures: list[tuple[int, float]] = []
        self.replies_made: list[FakeReply] = []
        self.drafts: list[str] = []  # what read_ahead was asked to read, in order
        self.closed = False
        self.engine_calls = 0
        self._initial = Snapshot("")
        self._current = self._initial
        self._reply: FakeReply | None = None
        self._loaded = False
        self._count = 0

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def busy(self) -> bool:
        return self._reply is not None

    @property
    def current_state(self) -> str:
        return self._current.state

    def history_text(self) -> str:
        return "".join(t.fed for t in self.turns)

    def _ready(self) -> None:
        if not self._loaded:
            raise SessionError("the model is not loaded yet")
        if self._reply is not None:
            raise SessionBusy("a reply is still streaming; stop it first (Esc)")

    def load(self) -> SessionInfo:
        if self.load_gate is not None:
            self.load_gate.wait(30)
        if self.load_error is not None:
            raise self.load_error
        if self.model_name in self.missing:
            raise ModelNotFound(f"no model named {self.model_name!r} and no such file; see `rnnchat models`")
        name = self.model_name or "fake"
        self.params.stop = self.framing.stop
        self.info = SessionInfo(name=name, path=f"/fake/{name}.safetensors", cell="lstm", layers=2, hidden=8,
                                parameters=1234, device="cpu", val_loss=1.5, vocab_size=65,
                                template=self.framing.template, stop=self.framing.stop)
        self._loaded = True
        return self.info

    def _script(self, text: str) -> str:
        if callable(self.replies):
            return self.replies(text, self._count)
        return self.replies[self._count % len(self.replies)]

    def send(self, text: str) -> FakeReply:
        self._ready()
        if not text.strip():
            raise SessionError("type something to send")
        prev = self.turns[-1] if self.turns else None
        fed = self.framing.frame(text, close_previous=prev is not None and prev.role == "model"
                                 and prev.reason != "stop")
        seed = reply_seed(self.params, index=model_turns(self.turns))
        user = Turn("user", text, fed=fed, snapshot=self._current, created=time.time())
        model = Turn("model", "", seed=seed, params=self.params.to_dict(),
                     snapshot=Snapshot(self._current.state + fed), created=time.time())
        model.read_ahead = max((len(d) for d in self.drafts if text.startswith(d)), default=0)
        self.drafts.clear()
        self.turns += [user, model]
        return self._start(model, user, seed)

    def close(self) -> None:
        self.closed = True

    def on_engine_thread(self, fn, *args):
        self.engine_calls += 1
        return fn(*args)

    def read_ahead(self, draft: str) -> None:
        if self._loaded and self._reply is None and draft:
            self.drafts.append(draft)

    def read_ahead_done(self, timeout: float | None = None) -> bool:
        return True

    def _start(self, model: Turn, user: Turn | None, seed: int) -> FakeReply:
        self._reply = FakeReply(self, model, user, self._script(model.snapshot.state), seed)
        self._count += 1
        self.replies_made.append(self._reply)
        return self._reply

    def regenerate(self, seed: int | None = None, same_seed: bool = False) -> FakeReply:
        self._ready()
        if not self.turns:
            raise SessionError("nothing to regenerate yet")
        last = self.turns[-1]
        if last.role == "model":
            snap, old = last.snapshot, last.seed
            self.turns.pop()
        else:
            snap, old = self._current, None
        seed = reply_seed(self.params, old if seed is None and same_seed else seed, index=model_turns(self.turns))
        model = Turn("model", "", seed=seed, params=self.params.to_dict(), snapshot=snap, created=time.time())
        self.turns.append(model)
        return self._start(model, None, seed)

    def stop(self) -> None:
        reply = self._reply
        if reply is not None:
            reply.cancel()

    def rewind(self, k: int) -> None:
        self._ready()
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(self.turns):
            raise SessionError(f"there is no turn {k} to go back to (0..{len(self.turns)})")
        if k < len(self.turns):
            self._current = self.turns[k].snapshot
            del self.turns[k:]

    def reset(self) -> None:
        self._ready()
        self.turns = []
        self._current = self._initial
        self.conversation_id = None

    def save(self) -> int | None:
        if not self.turns or self.info is None or any(t.reason is None and t.role == "model" for t in self.turns):
            return self.conversation_id
        conv = Conversation(id=self.conversation_id, title=title_of(self.turns), model=self.info.source,
                            signature=self.info.signature, params=self.params.to_dict(),
                            turns=[Turn(**{**t.__dict__, "snapshot": None}) for t in self.turns])
        self.conversation_id = self.store.save(conv)
        return self.conversation_id

    def open_conversation(self, conv_id: int) -> Conversation:
        self._ready()
        conv = self.store.load(conv_id)
        if conv.signature and conv.signature != self.info.signature:
            raise SessionError(f"conversation {conv_id} was with model {conv.model!r}; open it first")
        fed = ""
        for t in conv.turns:
            t.snapshot = Snapshot(fed)
            fed += t.fed
        self.turns = conv.turns
        self._current = Snapshot(fed)
        self.conversation_id = conv.id
        for key, value in conv.params.items():
            if key != "stop" and hasattr(self.params, key):
                setattr(self.params, key, value)
        return conv

    def export_markdown(self, path: str | Path | None = None) -> Path:
        return export_markdown(self.turns, self.info, self.params.to_dict(), path)
