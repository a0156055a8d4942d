"""ChatSession: one conversation with a model: sampling values, turns, recurrent state, history.

Importing this module does not import torch; :meth:`ChatSession.load` does (call it in a
worker thread). A turn feeds only its new text (framed by the checkpoint's chat template) in
one fused ``forward`` call, then streams characters one ``step`` at a time, reading
``session.params`` on every character. Each turn keeps a :class:`Snapshot` of the state it
started from, so regenerate, rewind and reset are exact and instant.

Threads: ``load``, iterating a :class:`Reply` and ``open_conversation`` run torch code and
belong in a worker thread. ``stop`` and ``read_ahead`` may be called from any thread.
``rewind``, ``reset``, ``save`` and ``export_markdown`` only move references and write bytes.
Loading and reading text (the fused forwards) run on the session's one engine thread,
whichever thread asks: PyTorch keeps an OpenMP pool per calling thread, and two pools on
the same cores made each forward 3x slower here (see ``readahead.py``).
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from rnnchat.params import SamplingParams
from rnnchat.session.export import export_markdown
from rnnchat.session.framing import Framing
from rnnchat.session.history import Conversation, HistoryStore, title_of
from rnnchat.session.readahead import ReadAhead
from rnnchat.session.types import Chunk, ReplyBase, SessionBusy, SessionError, SessionInfo, Snapshot, Turn


def new_seed() -> int:
    return random.randrange(2**63)


def reply_seed(params: SamplingParams, seed: int | None = None, index: int = 0) -> int:
    """The seed of a reply: an explicit one; else, when ``params.seed`` is set, one derived from it
    and the reply's position (the first reply uses ``params.seed`` itself, so a conversation with
    a fixed seed is reproducible without every reply reusing the same random numbers); else a
    fresh random one."""
    if seed is not None:
        return seed
    if params.seed is None:
        return new_seed()
    return (params.seed + index * 0x9E3779B97F4A7C15) % 2**63


def model_turns(turns: list[Turn]) -> int:
    return sum(t.role == "model" for t in turns)


class Reply(ReplyBase):
    """A model reply in flight. Iterate it (in a worker thread) to get :class:`Chunk` s, one per
    character with its probability. When iteration ends, ``turn`` is final: its ``reason`` is
    "stop", "length" or "cancelled". ``notes`` holds one-line remarks for the user (characters
    the model does not know, a history save that failed)."""

    def __init__(self, session: "ChatSession", turn: Turn, user_turn: Turn | None, feed_ids: list[int] | None,
                 seed: int, notes: list[str]) -> None:
        super().__init__(session, turn, user_turn, seed, notes)
        self._feed_ids = feed_ids
        self.read_ahead = 0  # characters of the turn that were read while the user typed
        self.created = time.perf_counter()

    def _run(self) -> Iterator[Chunk]:
        s = self.session
        engine, states = s._engine, s._states
        chars: list[str] = []
        probs: list[float] = []
        stream = sampler = t0 = None
        try:
            if self._feed_ids is not None:
                ids = self._feed_ids
                n, state, logits = s._ahead.take(self.user_turn.snapshot, ids)
                if n < len(ids):  # the rest of the turn after what was read ahead (all of it if nothing was)
                    logits, state = s.on_engine_thread(engine.feed, ids[n:],
                                                        state if n else self.user_turn.snapshot.state)
                self.read_ahead = self.turn.read_ahead = n
                self.turn.snapshot = Snapshot(state, logits, states.state_to_bytes(state, logits))
            snap = self.turn.snapshot
            sampler = states.RecordingSampler(s.params, self.seed)
            stream = engine.stream(snap.logits, snap.state, s.params, sampler, self.cancel_event)
            # torch steps (cells without a fast path) run on the engine thread, one character per
            # call: in another thread they ran at half speed (two OpenMP pools); NumPy steps use
            # no OpenMP and stay in this thread, with no hand-over per character
            tokens = s._engine_iter(iter(stream)) if engine.backend == "torch" else stream
            t0 = None
            for tok in tokens:
                if t0 is None:
                    t0 = time.perf_counter()
                    self.turn.first_char_ms = (t0 - self.created) * 1000
                chars.append(tok.char)
                probs.append(tok.prob)
                yield Chunk(tok.char, (tok.prob,))
        except GeneratorExit:  # the reader walked away: keep what was produced, as stopped
            if stream is None:
                self._abort()
            else:
                self._finish(stream, sampler, "".join(chars), probs, t0, "cancelled")
            raise
        except BaseException:
            self._abort()
            raise
        self._finish(stream, sampler, "".join(chars), probs, t0, stream.reason)

    def _finish(self, stream, sampler, text: str, probs: list[float], t0: float | None, reason: str) -> None:
        s = self.session
        t = self.turn
        t.text, t.probs, t.reason = text, probs, reason
        t.fed = s._engine.vocab.decode(sampler.chosen)
        t.speaker, t.body_start = s.framing.split_speaker(text)
        # speed from the first character to the end: the characters after the first, per second
        n = len(sampler.chosen)
        elapsed = time.perf_counter() - t0 if t0 is not None else 0.0
        t.chars_per_s = (n - 1) / elapsed if n > 1 and elapsed > 0 else None
        s._current = Snapshot(stream.state, stream.logits, s._states.state_to_bytes(stream.state, stream.logits))
        s._reply = None
        self.done = True
        if s.autosave:
            try:
                s.save()
            except SessionError as exc:
                self.notes.append(str(exc))

    def _abort(self) -> None:
        """An error (or an abandoned iteration) before the reply finished: undo this exchange so the
        session is exactly as before ``send``/``regenerate``."""
        s = self.session
        t = self.turn
        if t in s.turns:
            i = s.turns.index(t)
            if self.user_turn is not None and i > 0 and s.turns[i - 1] is self.user_turn:
                i -= 1
                s._current = self.user_turn.snapshot
            else:  # a regenerate: keep the user turn, the state stays after its feed
                s._current = t.snapshot if t.snapshot is not None else s._current
            del s.turns[i:]
        t.reason = t.reason or "error"
        s._reply = None
        self.done = True


class ChatSession:
    """A conversation with one model. See the module docstring and ``docs/chat.md``."""

    def __init__(self, model: str | None = None, *, device: str | None = None,
                 params: SamplingParams | None = None, store: HistoryStore | None = None,
                 autosave: bool = True, fallback: bool = False) -> None:
        self.model_name = model
        self.device_name = device
        self.params = params if params is not None else SamplingParams()
        self.store = store if store is not None else HistoryStore()
        self.autosave = autosave
        self.fallback = fallback  # when ``model`` is not found, open the default model instead
        self.info: SessionInfo | None = None
        self.framing = Framing()
        self.turns: list[Turn] = []
        self.conversation_id: int | None = None
        self._engine = None
        self._states = None
        self._initial = Snapshot()
        self._current = Snapshot()
        self._reply: Reply | None = None
        self._engine_thread: threading.Thread | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="rnnchat-engine",
                                            initializer=self._mark_engine_thread)
        self._ahead = ReadAhead(self._executor, lambda: threading.current_thread() is self._engine_thread)

    # ---- state ---------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._engine is not None

    @property
    def busy(self) -> bool:
        return self._reply is not None

    @property
    def engine(self):
        return self._engine

    @property
    def current_state(self):
        """The recurrent state after everything said so far (an engine object)."""
        return self._current.state

    def history_text(self) -> str:
        """Every character fed into the model so far, in order (turns' ``fed`` joined)."""
        return "".join(t.fed for t in self.turns)

    def _ready(self) -> None:
        if self._engine is None:
            raise SessionError("the model is not loaded yet")
        if self._reply is not None:
            raise SessionBusy("a reply is still streaming; stop it first (Esc)")

    def close(self) -> None:
        """Let the engine thread end (after what it is doing). Call it when the session is
        replaced: a live engine thread keeps its OpenMP pool, which slows every other one."""
        self._ahead.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def on_engine_thread(self, fn, *args):
        """``fn(*args)`` on the session's engine thread; waits for it and returns its result.
        A consumer that iterates a reply inside ``fn`` (the chat app does) runs every step there
        with no hand-over per character."""
        if threading.current_thread() is self._engine_thread:
            return fn(*args)
        try:
            future = self._executor.submit(fn, *args)
        except RuntimeError:  # shut down
            raise SessionError("this chat session was closed; open the model again") from None
        return future.result()

    def _mark_engine_thread(self) -> None:
        self._engine_thread = threading.current_thread()

    def _engine_iter(self, it):
        """Iterate ``it`` on the engine thread, one item per call, as the caller asks for them
        (lazily: a temperature change still reaches the very next character)."""
        end = object()
        try:
            while (item := self.on_engine_thread(next, it, end)) is not end:
                yield item
        finally:
            try:
                self.on_engine_thread(it.close)
            except SessionError:  # the session was closed meanwhile: close it here
                it.close()

    # ---- loading -------------------------------------------------------------------------
    def load(self) -> SessionInfo:
        """Import torch, open the model and set up the initial state. Slow: call it in a worker."""
        from rnnchat.engine.runtime import open_engine
        from rnnchat.errors import ModelNotFound
        from rnnchat.plugins.manager import get_host
        from rnnchat.session import states

        note = ""
        try:
            engine, path = self.on_engine_thread(open_engine, self.model_name, self.device_name)
        except ModelNotFound:
            if not (self.fallback and self.model_name):
                raise
            engine, path = self.on_engine_thread(open_engine, None, self.device_name)
            note = f"model {self.model_name!r} was not found; opened the default model instead"
        host = get_host()
        name = next((n for n, spec in host.checkpoints.items() if Path(spec.path) == Path(path)), None)
        name = name or (self.model_name if self.model_name in host.checkpoints else Path(path).stem)
        meta = engine.loaded.meta
        self.framing = Framing.from_meta(meta)
        initial = engine.initial_state()
        self._states = states
        self._ahead.clear()
        self._engine = engine
        self._initial = Snapshot(initial, None, states.state_to_bytes(initial))
        self._current = self._initial
        self.params.stop = self.framing.stop
        self.turns = []
        self.conversation_id = None
        val = meta.get("val_loss")
        self.info = SessionInfo(
            name=name, path=str(path), cell=str(meta["cell"]), layers=int(meta["layers"]),
            hidden=int(meta["hidden"]), parameters=int(meta.get("parameters") or engine.model.num_parameters()),
            device=str(engine.device), val_loss=float(val) if isinstance(val, (int, float)) else None,
            vocab_size=len(engine.vocab), template=self.framing.template, stop=self.framing.stop, note=note,
            source=name if name in host.checkpoints else str(path))
        return self.info

    # ---- talking -------------------------------------------------------------------------
    def send(self, text: str) -> Reply:
        """Add a user turn and return the model's reply, to iterate in a worker thread."""
        self._ready()
        if not text.strip():
            raise SessionError("type something to send")
        framed = self.framing.frame(text, close_previous=self._closes_previous())
        enc = self._engine.encode(framed)
        if not enc.ids:
            raise SessionError("the model knows none of these characters")
        notes = []
        if enc.dropped:
            notes.append(f"left out characters the model does not know: {enc.dropped}")
        if enc.mapped:
            notes.append(f"read as 'unknown' by the model: {enc.mapped}")
        now = time.time()
        user = Turn("user", text, fed=self._engine.vocab.decode(enc.ids), snapshot=self._current, created=now)
        seed = reply_seed(self.params, index=model_turns(self.turns))
        model = Turn("model", "", seed=seed, params=self.params.to_dict(), created=now)
        self.turns += [user, model]
        self._reply = Reply(self, model, user, enc.ids, seed, notes)
        return self._reply

    def _closes_previous(self) -> bool:
        prev = self.turns[-1] if self.turns else None
        return prev is not None and prev.role == "model" and prev.reason != "stop"

    def read_ahead(self, draft: str) -> None:
        """Start reading the user's ``draft`` in the background (any thread; never blocks), so that
        ``send`` of it, or of anything that starts with it, has little left to read. Ignored while
        the model loads or a reply streams. See ``readahead.py``."""
        if self._engine is None or self._reply is not None or not draft:
            return
        head = self.framing.head(draft, close_previous=self._closes_previous())
        if head is None:
            return
        engine = self._engine
        try:
            self._ahead.request(self._current, head, lambda t: engine.encode(t).ids, engine.feed)
        except RuntimeError:  # closed: nothing to read ahead for (send says it is closed)
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
            snap = last.snapshot
            old_seed = last.seed
            self.turns.pop()
        else:  # rewound to just after a user turn: its reply is pending
            snap, old_seed = self._current, None
        if snap is None or snap.logits is None:
            raise SessionError("nothing to regenerate yet")
        if seed is None and same_seed:
            seed = old_seed
        seed = reply_seed(self.params, seed, index=model_turns(self.turns))
        model = Turn("model", "", seed=seed, params=self.params.to_dict(), snapshot=snap, created=time.time())
        self.turns.append(model)
        self._reply = Reply(self, model, None, None, seed, [])
        return self._reply

    def stop(self) -> None:
        """Stop the reply in flight (any thread); what it produced is kept, marked as stopped."""
        reply = self._reply
        if reply is not None:
            reply.cancel()

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
        device = self._engine.device
        turns = []
        for t in conv.turns:
            if t.snapshot is None or t.snapshot.blob is None:
                raise SessionError(f"conversation {conv_id} is missing a saved state")
            state, logits = self._states.state_from_bytes(t.snapshot.blob, device)
            self._check_state(state, conv_id)
            t.snapshot = Snapshot(state, logits, t.snapshot.blob)
            turns.append(t)
        state, logits = self._states.state_from_bytes(conv.state, device)
        self._check_state(state, conv_id)
        self.turns = turns
        self._current = Snapshot(state, logits, conv.state)
        self._ahead.clear()
        self.conversation_id = conv.id
        for key, value in conv.params.items():
            if key != "stop" and hasattr(self.params, key):
                setattr(self.params, key, value)
        self.params.stop = self.framing.stop
        return conv

    def _check_state(self, state, conv_id) -> None:
        if not self._states.same_shapes(state, self._initial.state):
            raise SessionError(f"conversation {conv_id} does not fit this model's state")

    def export_markdown(self, path: str | Path | None = None) -> Path:
        return export_markdown(self.turns, self.info, self.params.to_dict(), path)
