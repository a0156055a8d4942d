"""ChatEngine: a loaded model behind its own worker thread, as a chat session sees it.

This is the engine side of the seam described in ``rnnchat/session/engine_api.py``: the
session (torch-free) holds opaque :class:`Snapshot` s and asks for results; every torch call runs on the engine's
:class:`EngineWorker` thread. A :class:`~rnnchat.engine.pipe.Generation` is produced on
that thread and can be iterated from any thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnchat.engine import states
from rnnchat.engine.pipe import Generation
from rnnchat.engine.sampling import Sampler
from rnnchat.engine.worker import EngineWorker
from rnnchat.errors import ModelNotFound
from rnnchat.params import LiveParams


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
        from rnnchat.engine.runtime import open_engine

        worker = EngineWorker()
        note = ""
        try:
            try:
                engine, path = worker.call(open_engine, model, device)
            except ModelNotFound:
                if not (fallback and model):
                    raise
                engine, path = worker.call(open_engine, None, device)
                note = f"model {model!r} was not found; opened the default model instead"
            return cls(engine, _facts(engine, path, model, note), worker)
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

    def read(self, state, ids: list[int], logits=None) -> Snapshot:
        """The Snapshot after reading ``ids`` from ``state`` (a Snapshot's, or one the read-ahead
        made, whose ``logits`` are given when ``ids`` is empty); waits for the engine thread."""
        return self.worker.call(self._read, state, ids, logits)

    def _read(self, state, ids: list[int], logits) -> Snapshot:
        if ids:
            logits, state = self.engine.feed(ids, state)
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

    def restore(self, blob: bytes) -> Snapshot:
        """A Snapshot from its bytes; raises a one-line error for bytes that are not a state of
        this model."""
        state, logits = self.worker.call(states.state_from_bytes, blob, self.engine.device)
        if not states.same_shapes(state, self._initial.state):
            raise states.StateError("the saved state does not fit this model")
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


def _facts(engine, path: Path, requested: str | None, note: str) -> dict:
    """What the session shows about the model (the fields of ``SessionInfo`` the engine knows)."""
    from rnnchat.plugins.manager import get_host

    host = get_host()
    name = next((n for n, spec in host.checkpoints.items() if Path(spec.path) == Path(path)), None)
    name = name or (requested if requested in host.checkpoints else Path(path).stem)
    meta = engine.loaded.meta
    val = meta.get("val_loss")
    return dict(
        name=name, path=str(path), cell=str(meta["cell"]), layers=int(meta["layers"]), hidden=int(meta["hidden"]),
        parameters=int(meta.get("parameters") or engine.model.num_parameters()), device=str(engine.device),
        val_loss=float(val) if isinstance(val, (int, float)) else None, vocab_size=len(engine.vocab),
        note=note, source=name if name in host.checkpoints else str(path))
