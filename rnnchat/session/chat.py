"""ChatSession: one conversation with a model: sampling values, turns, recurrent states, history.

Torch-free: the session talks to a :class:`~rnnchat.session.engine_api.ChatEngine` (by default
the torch one, opened by :meth:`ChatSession.load`) and holds its states as opaque handles. A
turn feeds only its new text (framed by the checkpoint's chat template); the reply streams
one character at a time, reading the session's :class:`~rnnchat.core.params.LiveParams` once per
character. Each turn keeps the state it started from, so regenerate, rewind and reset are
exact and instant.

Threads: every engine call runs on the engine's own thread (``engine/worker.py``); any
thread may call the session. ``load`` and ``open_conversation`` wait for the engine (call
them in a worker); iterating a :class:`Reply` may happen in any thread; ``stop``,
``read_ahead`` and ``set_params`` never block.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rnnchat.store.checkpoint_fields import text_field
from rnnchat.core.errors import RnnchatError
from rnnchat.core.params import LiveParams, SamplingParams
from rnnchat.session import state_files
from rnnchat.session.alternatives import K_DEFAULT, Alternatives
from rnnchat.session.engine_api import ChatEngine, EngineOpener, StateHandle, open_torch_engine
from rnnchat.session.export import export_markdown
from rnnchat.session.framing import Framing
from rnnchat.session.history import Conversation, HistoryStore, title_of
from rnnchat.session.readahead import Idle, ReadAhead
from rnnchat.session.reply import Reply
from rnnchat.session.seeds import model_turns, reply_seed
from rnnchat.session.types import SessionBusy, SessionError, SessionInfo, Turn

if TYPE_CHECKING:
    from rnnchat.session.inspect_target import Target
    from rnnchat.session.inspector import Reading


class ChatSession:
    """A conversation with one model. See the module docstring and ``docs/chat.md``."""

    def __init__(self, model: str | None = None, *, device: str | None = None,
                 params: SamplingParams | None = None, store: HistoryStore | None = None,
                 autosave: bool = True, fallback: bool = False, engine: EngineOpener | None = None) -> None:
        self.model_name = model
        self.device_name = device
        self.live = LiveParams(params if params is not None else SamplingParams())
        self.store = store if store is not None else HistoryStore()
        self.autosave = autosave
        self.fallback = fallback  # when ``model`` is not found, open the default model instead
        self.info: SessionInfo | None = None
        self.framing = Framing()
        self.turns: list[Turn] = []
        self.conversation_id: int | None = None
        self.engine: ChatEngine | None = None
        self._open_engine = engine or open_torch_engine
        self._initial: StateHandle | None = None
        self.primer = ""  # read before the first turn (the stop sequence): the start state
        self._current: StateHandle | None = None
        self._reply: Reply | Alternatives | None = None
        self._priming: threading.Event | None = None  # set while a priming text is read: stop() sets it
        self._ahead: ReadAhead | Idle = Idle()
        self._closed = False

    # ---- state ---------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.engine is not None

    @property
    def busy(self) -> bool:
        return self._reply is not None or self._priming is not None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def params(self) -> SamplingParams:
        """The sampling values now (immutable; change them with :meth:`set_params`)."""
        return self.live.current

    def set_params(self, params: SamplingParams) -> SamplingParams:
        """Use ``params`` from the next character on (any thread); the stop sequence stays the
        model's. Raises SamplingError for a bad value."""
        return self.live.set(params.replace(stop=self.framing.stop))

    def update_params(self, **changes) -> SamplingParams:
        """``set_params`` with these values changed (``session.update_params(temperature=0.5)``)."""
        return self.set_params(self.params.replace(**changes))

    @property
    def current_state(self) -> StateHandle | None:
        """The state after everything said so far (an opaque engine handle)."""
        return self._current

    def _primed(self, engine: ChatEngine) -> StateHandle:
        """The state a new conversation starts from: after the model's stop sequence (what ends
        every turn it was trained on), not zeros; benchmarks/primed_start.py measures the gain."""
        start = engine.initial()
        ids = engine.encode(self.primer).ids if self.primer else []
        return engine.read(start.state, ids) if ids else start

    def history_text(self) -> str:
        """Every character fed into the model so far, in order (turns' ``fed`` joined)."""
        return "".join(t.fed for t in self.turns)

    def _ready(self) -> None:
        if self._closed:
            raise SessionError("this chat session was closed; open the model again")
        if self.engine is None:
            raise SessionError("the model is not loaded yet")
        if self._reply is not None:
            raise SessionBusy("a reply is still streaming; stop it first (Esc)")
        if self._priming is not None:
            raise SessionBusy("a priming text is being read; wait, or stop it (Esc)")

    def close(self) -> None:
        """Let the engine's thread end (after what it is doing). Call it when the session is
        replaced: a live engine thread keeps its OpenMP pool, which slows every other one."""
        self._closed = True
        self._ahead.clear()
        if self.engine is not None:
            self.engine.close()

    # ---- loading -------------------------------------------------------------------------
    def load(self) -> SessionInfo:
        """Open the model (importing torch for the real engine) and set up the initial state.
        Slow: call it in a worker."""
        if self._closed:
            raise SessionError("this chat session was closed; open the model again")
        engine = self._open_engine(self.model_name, self.device_name, self.fallback)
        if self._closed:  # closed while loading (the app moved on): let the engine go too
            engine.close()
            raise SessionError("this chat session was closed; open the model again")
        self.framing = Framing.from_meta(engine.meta)
        self._ahead = ReadAhead(engine.worker, engine.worker.is_current)
        self.primer = self.framing.stop[0] if self.framing.stop else ""
        self._initial = self._current = self._primed(engine)
        self.live.set(self.live.current.replace(stop=self.framing.stop))
        self.turns = []
        self.conversation_id = None
        self.info = SessionInfo(**engine.facts, template=self.framing.template, stop=self.framing.stop,
                                hint=text_field(engine.meta, "hint"), description=text_field(engine.meta, "description"))
        self.engine = engine
        return self.info

    # ---- talking -------------------------------------------------------------------------
    def send(self, text: str) -> Reply:
        """Add a user turn and return the model's reply, to iterate (in any thread)."""
        self._ready()
        if not text.strip():
            raise SessionError("type something to send")
        framed = self.framing.frame(text, close_previous=self._closes_previous())
        enc = self.engine.encode(framed)
        if not enc.ids:
            raise SessionError("the model knows none of these characters")
        notes = []
        if enc.dropped:
            notes.append(f"left out characters the model does not know: {enc.dropped}")
        if enc.mapped:
            notes.append(f"read as 'unknown' by the model: {enc.mapped}")
        now = time.time()
        user = Turn("user", text, fed=self.engine.decode(enc.ids), snapshot=self._current, created=now)
        seed = reply_seed(self.params, index=model_turns(self.turns))
        model = Turn("model", "", seed=seed, params=self.params.to_dict(), created=now)
        self.turns += [user, model]
        self._reply = Reply(self, model, user, enc.ids, seed, notes)
        return self._reply

    def _read_turn(self, base: StateHandle, ids: list[int], reply: Reply) -> StateHandle:
        """The state after the user's turn: what the read-ahead has read of it, then the rest, in
        chunks: ``reply.on_progress`` hears how far it got, and ``reply.cancel()`` stops it between
        two chunks (ReadCancelled: the exchange is undone, as if never sent)."""
        n, state, logits = self._ahead.take(base, ids)
        reply.read_ahead = reply.turn.read_ahead = n
        return self.engine.read(state if n else base.state, ids[n:], logits,
                                watch=lambda done, total: reply.reading(n + done, n + total))

    def _closes_previous(self) -> bool:
        prev = self.turns[-1] if self.turns else None
        return prev is not None and prev.role == "model" and prev.reason != "stop"

    def read_ahead(self, draft: str) -> None:
        """Start reading the user's ``draft`` in the background (any thread; never blocks), so that
        ``send`` of it, or of anything that starts with it, has little left to read. Ignored while
        the model loads or a reply streams. See ``readahead.py``."""
        if self.engine is None or self._reply is not None or not draft:
            return
        head = self.framing.head(draft, close_previous=self._closes_previous())
        if head is None:
            return
        engine = self.engine
        try:
            self._ahead.request(self._current, head, lambda t: engine.encode(t).ids, engine.feed)
        except RnnchatError:  # closed: nothing to read ahead for (send says it is closed)
            pass

    def read_ahead_done(self, timeout: float | None = None) -> bool:
        """Wait until every draft asked for so far has been read; True when it has."""
        return self._ahead.wait_idle(timeout)

    def regenerate(self, seed: int | None = None, same_seed: bool = False) -> Reply:
        """Replace the last reply with a new one from the exact same state. The seed is ``seed``,
        else the old reply's when ``same_seed``, else ``params.seed``, else a new random one."""
        self._ready()
        if not self.turns:
            raise SessionError("nothing to regenerate yet")
        last = self.turns[-1]
        if last.role == "model":
            snap, old_seed = last.snapshot, last.seed
        else:  # rewound to just after a user turn: its reply is pending
            snap, old_seed = self._current, None
        if snap is None or not snap.can_reply:
            raise SessionError("nothing to regenerate yet")
        if last.role == "model":
            self.turns.pop()
        if seed is None and same_seed:
            seed = old_seed
        seed = reply_seed(self.params, seed, index=model_turns(self.turns))
        model = Turn("model", "", seed=seed, params=self.params.to_dict(), snapshot=snap, created=time.time())
        self.turns.append(model)
        self._reply = Reply(self, model, None, None, seed, [])
        return self._reply

    def alternatives(self, k: int = K_DEFAULT) -> Alternatives:
        """``k`` (2..8) alternatives for the last reply, written together from the exact state it
        started from; iterate them, then ``pick(j)`` one or ``discard()``. See alternatives.py."""
        self._ready()
        last = self.turns[-1] if self.turns else None
        index = model_turns(self.turns) - (last is not None and last.role == "model")
        alts = Alternatives(self, k, reply_seed(self.params, index=index))
        self._reply = alts  # busy until they are written: stop() stops them
        return alts

    def continue_reply(self) -> Reply:
        """Continue the last reply from the exact state where it stopped (Esc or the length
        limit): the new characters join that reply, which keeps the state it started from."""
        self._ready()
        last = self.turns[-1] if self.turns else None
        if last is None or last.role != "model" or last.reason is None:
            raise SessionError("no reply to continue yet")
        if last.reason == "stop":
            raise SessionError("the last reply ended at its stop sequence; send a message or /regen")
        self._ahead.clear()
        seed = reply_seed(self.params, index=model_turns(self.turns))
        part = Turn("model", "", seed=seed, params=self.params.to_dict(), snapshot=self._current, created=time.time())
        self._reply = Reply(self, part, None, None, seed, [], continues=last)
        return self._reply

    def stop(self) -> None:
        """Stop the reply in flight (any thread); what it produced is kept, marked as stopped."""
        reply, priming = self._reply, self._priming
        if reply is not None:
            reply.cancel()
        if priming is not None:
            priming.set()

    def _ended(self, reply: Reply, end: StateHandle) -> None:
        """The reply finished (Reply calls this): the conversation moves on to its end state."""
        self._current = end
        self._reply = None
        reply.done = True
        if self.autosave:
            try:
                self.save()
            except SessionError as exc:
                reply.notes.append(str(exc))

    def _undo(self, reply: Reply) -> None:
        """The reply failed before it finished: undo its exchange (Reply calls this)."""
        t = reply.turn
        if t in self.turns:
            i = self.turns.index(t)
            if reply.user_turn is not None and i > 0 and self.turns[i - 1] is reply.user_turn:
                i -= 1
                self._current = reply.user_turn.snapshot
            elif t.snapshot is not None:  # a regenerate: keep the user turn, the state stays after its feed
                self._current = t.snapshot
            del self.turns[i:]
        self._reply = None
        reply.done = True

    def rewind(self, k: int) -> None:
        """Keep the first ``k`` turns and return to the exact state ``turns[k]`` started from.
        Rewinding to a model turn leaves its user turn waiting for a reply: ``regenerate()``."""
        self._ready()
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(self.turns):
            raise SessionError(f"there is no turn {k} to go back to (0..{len(self.turns)})")
        if k == len(self.turns):
            return
        self._current = self.turns[k].snapshot
        self._ahead.clear()
        del self.turns[k:]
        self._autosave()

    def reset(self) -> None:
        """Start a new conversation from the initial state (the old one stays in the history)."""
        self._ready()
        self.turns = []
        self._current = self._initial
        self._ahead.clear()
        self.conversation_id = None

    def prime(self, text: str, watch=None) -> None:
        """A new conversation from the state after reading ``text`` (from zeros; ``/reset`` returns
        to it). Waits for the engine (call it in a worker); ``watch(done, total)`` sees the progress;
        :meth:`stop` cancels the read (ReadCancelled: the conversation stays as it was)."""
        self._ready()
        enc = self.engine.encode(text)
        if not enc.ids:
            raise SessionError("the model knows none of the characters of that text")
        self._priming = cancel = threading.Event()
        try:
            go_on = lambda done, total: not cancel.is_set() and (watch is None or watch(done, total) is not False)  # noqa: E731
            state = self.engine.read(self.engine.initial().state, enc.ids, watch=go_on)
        finally:
            self._priming = None
        self._start_from(state, self.engine.decode(enc.ids))

    def _start_from(self, state: StateHandle, text: str) -> None:
        self._initial, self.primer = state, text
        self.reset()

    def save_state(self, name: str) -> Path:
        """Keep the state now and the text it came from as NAME (``state_files.py``)."""
        self._ready()
        return state_files.save(name, self._current.blob, self.info, self.primer + self.history_text())

    def load_state(self, name: str) -> state_files.SavedState:
        """A new conversation from the saved state NAME, exactly (a state of another model is refused)."""
        self._ready()
        handle, saved = state_files.restore(name, self.engine, self.info)
        self._start_from(handle, saved.text)
        return saved

    # ---- history -------------------------------------------------------------------------
    def _autosave(self) -> None:
        if self.autosave and self.turns:
            self.save()

    def save(self) -> int | None:
        """Write the conversation (turns, seeds, settings, states) to the history database."""
        if not self.turns or self.info is None:
            return self.conversation_id
        if any(t.role == "model" and t.reason is None for t in self.turns):
            return self.conversation_id  # a reply is streaming; saved when it ends
        conv = Conversation(id=self.conversation_id, title=title_of(self.turns), model=self.info.source,
                            model_path=self.info.path, signature=self.info.signature,
                            params=self.params.to_dict(), turns=list(self.turns), state=self._current.blob)
        self.conversation_id = self.store.save(conv)
        return self.conversation_id

    def open_conversation(self, conv_id: int) -> Conversation:
        """Reopen a saved conversation on this (loaded) model, with its settings and exact state."""
        self._ready()
        conv = self.store.load(conv_id)
        if conv.signature and conv.signature != self.info.signature:
            raise SessionError(f"conversation {conv_id} was with model {conv.model!r} of another shape; "
                               f"open that model first (/model {conv.model})")
        if conv.state is None:
            raise SessionError(f"conversation {conv_id} has no saved state")
        turns = []
        for t in conv.turns:
            if t.snapshot is None or t.snapshot.blob is None:
                raise SessionError(f"conversation {conv_id} is missing a saved state")
            t.snapshot = self._restore(t.snapshot.blob, conv_id)
            turns.append(t)
        current = self._restore(conv.state, conv_id)
        saved = {k: v for k, v in conv.params.items() if k != "stop" and k in SamplingParams.__dataclass_fields__}
        try:
            params = self.params.replace(**saved)
        except (RnnchatError, TypeError):
            params = self.params  # values that do not validate: keep the ones in use
        self.turns = turns
        self._current = current
        self._ahead.clear()
        self.conversation_id = conv.id
        self.set_params(params)
        return conv

    def _restore(self, blob: bytes, conv_id: int) -> StateHandle:
        try:
            return self.engine.restore(blob)
        except RnnchatError as exc:
            raise SessionError(f"conversation {conv_id} does not fit this model's state: {exc}") from None

    def inspect(self, target: "Target") -> "Reading":
        """The chat inspector's re-read of the conversation (``session/inspector.py``); waits for
        the engine thread: call it in a worker."""
        from rnnchat.session.inspector import read_conversation  # NumPy: loaded when first used

        self._ready()
        return read_conversation(self.engine, self.turns, self.framing, target)

    def export_markdown(self, path: str | Path | None = None) -> Path:
        return export_markdown(self.turns, self.info, self.params.to_dict(), path)
