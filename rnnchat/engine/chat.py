"""ChatEngine: a loaded model behind its own worker thread, as a chat session sees it.

This is the engine side of the seam described in ``rnnchat/session/engine_api.py``: the
session (torch-free) holds opaque :class:`Snapshot` s and asks for results; every torch call runs on the engine's
:class:`EngineWorker` thread. A :class:`~rnnchat.engine.pipe.Generation` is produced on
that thread and can be iterated from any thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from rnnchat.engine import states
from rnnchat.engine.alts import AltGeneration
from rnnchat.engine.pipe import Generation
from rnnchat.engine.sampling import Sampler
from rnnchat.engine.worker import EngineWorker
from rnnchat.core.read_chunks import chunks
from rnnchat.core.errors import ModelNotFound
from rnnchat.core.params import LiveParams


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A recurrent state and the logits of the last character read (None at the start), with
    the same as safetensors bytes (made on the engine thread, so saving needs no torch).
    Outside the engine it is an opaque handle: only ``blob`` and ``can_reply`` are read."""

    state: Any
    logits: Any
    blob: bytes

    @property
    def can_reply(self) -> bool:
        return self.logits is not None


class RecordingSampler(Sampler):
    """A :class:`Sampler` that remembers every id chosen, so the session knows exactly what was
    fed into the state (the stop sequence included, which the stream does not emit). It hooks
    ``accept``, which every generation path calls once per chosen id (overriding ``__call__``
    would push the CUDA path off its on-device sampling)."""

    def __init__(self, params, seed: int, banned: int | None = None) -> None:
        self.chosen: list[int] = []
        super().__init__(params, seed, banned)  # the reply's own seed (params.seed may be None: random)

    def accept(self, i: int) -> None:
        super().accept(i)
        self.chosen.append(int(i))


class ChatEngine:
    """One model on one device with its worker thread. See ``session/engine_api.py``."""

    def __init__(self, engine, facts: dict, worker: EngineWorker) -> None:
        self.engine = engine  # the torch Engine (tools and benchmarks; call it on ``worker``)
        self.facts = facts
        self.meta = engine.loaded.meta
        self.worker = worker
        self.backend = engine.backend
        self._prober = None  # the inspector's Probe, made on first use (engine thread)
        self._initial = worker.call(self._initial_snapshot)

    @classmethod
    def open(cls, model: str | None, device: str | None = None, fallback: bool = False) -> "ChatEngine":
        """Open ``model`` (a registered name or a path; None: the default) on its new worker
        thread. With ``fallback``, a model that is not found opens the default one instead."""
        worker = EngineWorker()
        try:
            engine, ref, note = worker.call(_open, model, device, fallback)
            return cls(engine, _facts(engine, ref, note), worker)
        except BaseException:
            worker.close()
            raise

    def _initial_snapshot(self) -> Snapshot:
        state = self.engine.initial_state()
        return Snapshot(state, None, states.state_to_bytes(state))

    # ---- any thread ------------------------------------------------------------------
    def initial(self) -> Snapshot:
        return self._initial

    def encode(self, text: str):
        return self.engine.vocab.encode(text)

    def decode(self, ids) -> str:
        return self.engine.vocab.decode(ids)

    def read(self, state, ids: list[int], logits=None, watch=None) -> Snapshot:
        """The Snapshot after reading ``ids`` from ``state`` (a Snapshot's, or one the read-ahead
        made, whose ``logits`` are given when ``ids`` is empty); waits for the engine thread.
        ``watch(done, total)`` is called before the first chunk and after each (``engine.chunk``
        ids); when it returns False the read stops there and ReadCancelled is raised."""
        return self.worker.call(self._read, state, ids, logits, watch)

    def _read(self, state, ids: list[int], logits, watch=None) -> Snapshot:
        for _, piece in chunks(ids, self.engine.chunk, watch):
            logits, state = self.engine.feed(piece, state)
        return Snapshot(state, logits, states.state_to_bytes(state, logits))

    def generate(self, start: Snapshot, params: LiveParams, seed: int, cancel: threading.Event) -> Generation:
        """The reply's tokens from ``start``, generated on the engine thread, reading ``params``
        once per character."""

        def produce(gen: Generation):
            buf, ready = gen.buf, gen.ready
            # a capped vocabulary's shared rare-character token (vocab.UNK, U+FFFD) is never written
            sampler = RecordingSampler(params.current, seed, banned=self.engine.vocab.unk)
            stream = self.engine.stream(start.logits, start.state, params, sampler, cancel)
            first = True
            for tok in stream:
                buf.append(tok)
                if first:  # the first token at once; the reader polls for the rest (pipe.POLL)
                    ready.set()
                    first = False
            logits, state = stream.logits, stream.state
            return stream.reason, self.decode(sampler.chosen), Snapshot(state, logits,
                                                                         states.state_to_bytes(state, logits))

        return Generation(self.worker, produce, cancel)

    def alternatives(self, start: Snapshot, params: LiveParams, seeds: list[int],
                     cancel: threading.Event) -> AltGeneration:
        """``len(seeds)`` replies from ``start`` at once, one batched step per character, on the
        engine thread (:mod:`rnnchat.engine.chat_alts`)."""
        from rnnchat.engine import chat_alts

        return AltGeneration(self.worker, lambda gen: chat_alts.produce(self, start, params, list(seeds), cancel, gen),
                             cancel)

    def restore(self, blob: bytes) -> Snapshot:
        """A Snapshot from its bytes; raises a one-line error for bytes that are not a state of
        this model."""
        state, logits = self.worker.call(states.state_from_bytes, blob, self.engine.device)
        mine = self._initial.state
        if not states.same_shapes(state, mine) or states.dtypes(state) != states.dtypes(mine):
            raise states.StateError("the saved state does not fit this model (its tensors' shapes or types differ)")
        if logits is not None and (tuple(logits.shape) != (len(self.engine.vocab),) or not logits.is_floating_point()):
            raise states.StateError("the saved state does not fit this model (its logits are not one per character)")
        return Snapshot(state, logits, blob)

    def close(self) -> None:
        self.worker.close()

    # ---- the chat inspector: a re-read on the engine thread, never a cost of the step ----
    def quantities(self) -> list[tuple[int, str, str, int, str]]:
        """(layer, name, kind, units, description) of every quantity the probe reads."""
        return [(q.layer, q.name, q.kind, q.size, q.description) for q in self.worker.call(self._probe).quantities()]

    def activations(self, state, ids: list[int], select=None):
        """({(layer, name): float32 [T, K]}, the state after ``ids``) read from ``state`` (left as
        it is) by :class:`~rnnchat.engine.probe.Probe`; waits for the engine thread."""
        return self.worker.call(lambda: self._probe().activations(ids, state, select))

    def probe_text(self, chars: int) -> tuple[list[int], str, str]:
        """The first ``chars`` characters of the held-out part of the model's corpus, as ``rnnchat
        probe`` reads it (a CorpusError when that text is not on this machine)."""
        from rnnchat.engine.probe_text import select_text

        meta = self.engine.loaded.meta
        t = self.worker.call(select_text, meta, self.engine.vocab, None, chars)
        return t.ids, t.text, f"the held-out part of {meta['corpus']['name']}"  # a name select_text checked

    def _probe(self):
        if self._prober is None:
            from rnnchat.engine.probe import Probe

            self._prober = Probe(self.engine.model)
        return self._prober

    # ---- on the worker thread (the session's read-ahead submits its reads there) -------
    def feed(self, ids: list[int], state):
        return self.engine.feed(ids, state)


def _open(model: str | None, device: str | None, fallback: bool):
    """On the engine thread: (the Engine, the model's ModelRef, a note). With ``fallback``, a
    model that is not found opens the default one, and the note says so."""
    from rnnchat.engine.runtime import open_engine
    from rnnchat.plugins.resolve import resolve_model

    note = ""
    try:
        ref = resolve_model(model)
    except ModelNotFound:
        if not (fallback and model):
            raise
        ref, note = resolve_model(None), f"model {model!r} was not found; opened the default model instead"
    return open_engine(ref, device)[0], ref, note


def _facts(engine, ref, note: str) -> dict:
    """What the session shows about the model (the fields of ``SessionInfo`` the engine knows)."""
    meta = engine.loaded.meta
    val = meta.get("val_loss")
    return dict(
        name=ref.label, path=str(ref.path), cell=str(meta["cell"]), layers=int(meta["layers"]),
        hidden=int(meta["hidden"]), parameters=int(meta.get("parameters") or engine.model.num_parameters()),
        device=str(engine.device), val_loss=float(val) if isinstance(val, (int, float)) else None,
        vocab_size=len(engine.vocab), note=note, source=ref.source)
