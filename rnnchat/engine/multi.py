"""Several streams sampled together: one batched step per character for all of them.

:class:`BatchedStreams` is what ``rnnchat generate --samples K``, the chat's
alternatives and a server use: streams are added (each with its own sampling
parameters, sampler and RNG) and removed between steps, and :meth:`step`
samples one character for every active stream and advances them all with one
matrix-matrix product per layer (:mod:`rnnchat.engine.batched`). A stream that
ends (its length, a stop sequence, or :meth:`cancel`) leaves the batch with its
final logits and state kept, so it can continue exactly.

Each stream samples exactly as a single :class:`~rnnchat.engine.generate.Stream`
does (same sampler, one uniform number per character, same stop handling; the
plain samplers of a step are run as one vectorised pass,
:mod:`rnnchat.engine.batch_sampling`, with the same choices). On int8 weights a
row's numbers do not depend on the other rows, so a greedy stream writes what
it writes alone; on fp32/bf16 they may differ in the last bits (oneDNN), and the
tests check the texts are equal (tests/speed/test_batched.py).

:class:`WeightsRunner` is the single-stream runner the engine uses for bf16 and
int8 weights (:mod:`rnnchat.engine.quant`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rnnchat.engine.batch_sampling import PlainDraw, sample_rows
from rnnchat.engine.batched import BatchedModel
from rnnchat.engine.generate import _longest_partial
from rnnchat.engine.sampling import Sampler
from rnnchat.core.params import SamplingParams

SEED_LIMIT = 2**63


def _vector(logits) -> np.ndarray:
    if isinstance(logits, torch.Tensor):
        return logits.detach().reshape(-1).float().cpu().numpy().copy()
    return np.asarray(logits, np.float32).reshape(-1).copy()


@dataclass
class _Stream:
    sid: int
    params: SamplingParams
    sampler: Sampler
    logits: np.ndarray                 # the prediction for the next character (before its first step)
    like: object = None                # the logits' original type/device, for export
    generated: int = 0
    held: str = ""                     # text that may be the start of a stop sequence
    text: list = field(default_factory=list)
    reason: str | None = None
    final: tuple | None = None         # (logits, state) once the stream has left the batch
    prompt: list = field(default_factory=list)  # ids still to read before its first character (reversed)


class BatchedStreams:
    """Streams over one engine's model, advanced together. ``weights``: a format name
    (fp32, bf16, int8; :mod:`quant`), default the engine's."""

    def __init__(self, engine, weights: str | None = None) -> None:
        self.engine = engine
        self.chars = engine.vocab.chars
        self.model = BatchedModel(engine.packed_weights(weights or engine.weights))
        self.rows: list[_Stream] = []     # active streams, in row order
        self.streams: dict[int, _Stream] = {}
        self.mat: np.ndarray | None = None  # the rows' logits [K, V] after a step; None: gather from rows
        self._next = 0
        self._reading = 0  # streams with prompt ids still to read
        self._draw: PlainDraw | None | bool = False  # the rows' draw set up once (False: not yet; None: none)

    @property
    def active(self) -> list[int]:
        return [s.sid for s in self.rows]

    def add(self, logits, state, params: SamplingParams, sampler: Sampler | None = None, prompt=()) -> int:
        """A new stream from ``logits`` (the prediction for its first character) and ``state``
        (batch 1, the model's format). Returns its id. ``prompt``: ids the stream reads first, one
        per step of the batch (no character sampled, none written; the other streams go on), its
        first character then predicted from the last of them (``logits`` may then be None)."""
        params.validate()
        prompt = [int(i) for i in prompt]
        vocab = self.model.weights.vocab_size
        if any(not 0 <= i < vocab for i in prompt):  # (an id past the table would fail every stream's step)
            raise ValueError(f"prompt ids must be in [0, {vocab})")
        if logits is None and not prompt:
            raise ValueError("a stream needs logits or a prompt")
        vec = _vector(logits) if logits is not None else np.zeros(vocab, np.float32)
        s = _Stream(self._next, params, sampler or Sampler(params), vec, like=logits, prompt=prompt[::-1])
        self._next += 1
        self.model.add(state)
        self._logits_to_rows()
        self.rows.append(s)
        self._draw = False
        self.streams[s.sid] = s
        self._reading += bool(prompt)
        return s.sid

    def set_params(self, params: SamplingParams) -> None:
        """Every active stream samples its next characters with ``params`` (the chat's live
        values, read once per character as a single stream reads them; a LiveParams holds only
        validated values)."""
        for s in self.rows:
            s.params = s.sampler.params = params
        self._draw = False

    def remove(self, sid: int) -> None:
        """Take a stream out (its final logits and state stay readable through :meth:`result`)."""
        s = self.streams[sid]
        if s.final is None:
            self._leave(s, s.reason or "cancelled")
        del self.streams[sid]

    def cancel(self, sid: int) -> None:
        s = self.streams[sid]
        if s.final is None:
            self._leave(s, "cancelled")

    def _logits_to_rows(self) -> None:
        """Copy the last step's logits into each row's own vector (before the rows change)."""
        if self.mat is not None:
            for s, row in zip(self.rows, self.mat):
                s.logits = row.copy()
            self.mat = None

    def _leave(self, s: _Stream, reason: str) -> None:
        row = self.rows.index(s)
        if s.prompt:  # (left while reading its prompt)
            s.prompt = []
            self._reading -= 1
        self._logits_to_rows()
        state = self.model.export(row)
        logits = torch.from_numpy(s.logits.copy())
        if isinstance(s.like, torch.Tensor):
            logits = logits.to(s.like.device, s.like.dtype)
        s.final, s.reason = (logits, state), reason
        self.model.remove(row)
        self.rows.pop(row)
        self._draw = False

    def result(self, sid: int):
        """(text written, reason, logits, state) of a stream that has ended."""
        s = self.streams[sid]
        if s.final is None:
            raise ValueError(f"stream {sid} is still running")
        return "".join(s.text), s.reason, s.final[0], s.final[1]

    def step(self) -> dict[int, str]:
        """One character for every active stream (one prompt id for a stream still reading its
        prompt). Returns the text each one released (empty while a possible stop sequence is held
        back; none for a stream reading); streams that end leave the batch."""
        rows = self.rows
        if not rows:
            return {}
        if self._reading:
            ids, reading = self._read_ids()
        else:
            draw = self._draw
            if draw is False:
                draw = self._draw = PlainDraw.build([s.sampler for s in rows])
            ids = draw(self._logits()) if draw is not None else sample_rows(self._logits(), [s.sampler for s in rows])
            reading = None
        self.mat = self.model.step(ids)
        chars = self.chars
        out: dict[int, str] = {}
        ended = []
        for r, (s, i) in enumerate(zip(rows, ids.tolist())):
            if reading is not None and r in reading:
                continue
            s.generated += 1
            if s.params.stop:
                out[s.sid], reason = self._release(s, chars[i])
            else:
                out[s.sid] = c = chars[i]
                s.text.append(c)
                reason = None
            if reason is None and s.generated >= s.params.max_chars:
                out[s.sid] += s.held
                s.text.append(s.held)
                s.held, reason = "", "length"
            if reason:
                ended.append((s, reason))
        for s, reason in ended:
            self._leave(s, reason)
        return out

    def _read_ids(self) -> tuple[np.ndarray, set]:
        """This step's ids while some streams read their prompts: each reading stream's next prompt
        id, the others sampled (their samplers alone draw: a reading stream draws nothing)."""
        rows = self.rows
        ids = np.empty(len(rows), np.int64)
        free = [r for r, s in enumerate(rows) if not s.prompt]
        if free:
            ids[free] = sample_rows(self._logits()[free], [rows[r].sampler for r in free])
        reading = set()
        for r, s in enumerate(rows):
            if s.prompt:
                ids[r] = s.prompt.pop()
                reading.add(r)
                self._reading -= not s.prompt
        return ids, reading

    def _logits(self) -> np.ndarray:
        """The rows' next-character logits as one ``[K, V]`` array (rows in ``self.rows`` order)."""
        if self.mat is None:
            self.mat = np.stack([s.logits for s in self.rows])
        return self.mat

    def _release(self, s: _Stream, char: str) -> tuple[str, str | None]:
        stops = s.params.stop
        if not stops:
            s.text.append(char)
            return char, None
        text = s.held + char
        done = [x for x in stops if text.endswith(x)]
        if done:
            keep = text[:len(text) - max(len(x) for x in done)]
            s.text.append(keep)
            s.held = ""
            return keep, "stop"
        hold = _longest_partial(text, stops)
        free, s.held = text[:len(text) - hold], text[len(text) - hold:]
        s.text.append(free)
        return free, None

    def run(self) -> None:
        """Step until every stream has ended."""
        while self.rows:
            self.step()


@dataclass
class Alternative:
    text: str
    reason: str
    seed: int
    logits: object
    state: list


def stream_seeds(params: SamplingParams, k: int) -> list[int]:
    """Stream j's seed: ``seed + j`` (so the first stream is what a single stream with the seed
    writes); random seeds without one."""
    base = params.seed if params.seed is not None else Sampler(params).seed
    return [(base + j) % SEED_LIMIT for j in range(k)]


def alternatives(engine, logits, state, params: SamplingParams, k: int, weights: str | None = None,
                 prompt_ids=()) -> list[Alternative]:
    """``k`` continuations of (``logits``, ``state``), each with the state after its text so that
    picking one continues exactly. ``prompt_ids`` fill each sampler's repetition window."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 256:
        from rnnchat.core.errors import SettingError

        raise SettingError(f"the number of samples must be a whole number in [1, 256], not {k!r}")
    streams = BatchedStreams(engine, weights)
    seeds = stream_seeds(params, k)
    sids = []
    for seed in seeds:
        sampler = Sampler(params, seed, banned=engine.vocab.unk)  # never the shared rare-character token
        sampler.remember(prompt_ids)
        sids.append(streams.add(logits, state, params, sampler))
    streams.run()
    out = []
    for sid, seed in zip(sids, seeds):
        text, reason, lg, st = streams.result(sid)
        out.append(Alternative(text, reason, seed, lg, st))
    return out


def torch_threads(weights):
    """The torch thread count for bf16/int8 kernels, timed per stream like OpenBLAS's for fp32
    (:mod:`rnnchat.engine.blas_choice`): one choice per set of weights."""
    choice = getattr(weights, "threads", None)
    if choice is None:
        from rnnchat.engine.blas_choice import ThreadChoice
        from rnnchat.engine.quant import set_threads

        choice = weights.threads = ThreadChoice(setter=set_threads)
    return choice


class WeightsRunner:
    """One stream on bf16/int8 weights, with the engine's runner interface."""

    stepped = False

    def __init__(self, weights, logits, state, timed: bool = True) -> None:
        self.model = BatchedModel(weights)
        self.model.add(state)
        self.like = logits
        self.logits = _vector(logits)
        self.ids = np.zeros(1, np.int64)
        self.step = torch_threads(weights).probe(self._step, self._unwrap) if timed else self._step

    def _unwrap(self, step) -> None:
        self.step = step

    def _step(self, idx: int) -> np.ndarray:
        self.ids[0] = idx
        self.logits = self.model.step(self.ids)[0]
        return self.logits

    def read(self, ids) -> None:
        """Step through ``ids`` (a prompt: no thread-count timing)."""
        for i in ids:
            self._step(i)

    def export(self):
        logits = torch.from_numpy(np.array(self.logits, np.float32))
        if isinstance(self.like, torch.Tensor):
            logits = logits.to(self.like.device, self.like.dtype)
        return logits, self.model.export(0)

    def close(self) -> None:
        close = getattr(self.step, "close", None)
        if close is not None:
            close()
