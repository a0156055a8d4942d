"""Generation: read the prompt in fused ``forward`` calls of 4,096 characters, then sample one character at a time.

``Stream`` is an iterator of ``Token(char, probability)``. It reads its sampling
parameters on every character, so a change made by another thread (the chat
app's temperature control) applies to the very next character. Text that
could be the start of a stop sequence is held back until it is decided.

The per-character work runs on the engine's fast path (see
:mod:`rnnchat.engine.fast`): NumPy on the CPU, a captured graph on CUDA,
plain ``model.step`` otherwise. ``Engine.step`` is always the plain torch
step, the reference the fast paths are tested against.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from rnnchat.engine.checkpoint import Loaded
from rnnchat.core.env import prompt_precision as env_prompt_precision
from rnnchat.engine.fast import build_fast
from rnnchat.engine.prompt import CHUNK, TextRead, read_ids, text_pieces
from rnnchat.engine.sampling import Sampler
from rnnchat.core.errors import SettingError
from rnnchat.core.params import LiveParams, SamplingParams, current
from rnnchat.core.vocab import Encoded

BF16_MIN_PROMPT = 128  # shorter prompts read in fp32 whatever the setting: they are fast anyway
# A prompt shorter than this is read one character at a time on the per-character path (NumPy fp32,
# or the bf16/int8 weights), not by torch's fused LSTM: that call costs ~2.5 ms before its first
# character on the bundled model (its weights are reordered on every call), a character ~45 us
# after it; the per-character path costs ~170 us (fp32) or ~50 us (int8) a character from the first.
SHORT_PROMPT = {"fp32": 8, "bf16": 64, "int8": 64}
PROMPT_PRECISIONS = ("auto", "fp32", "bf16")


def auto_prompt_precision(model, device: torch.device) -> str:
    """bf16 where it reads long prompts faster at the same quality, else fp32.

    Measured with ``benchmarks/generate_speed.py`` (docs/performance.md): built-in LSTM layers
    on a CPU with native bf16 (oneDNN's bf16 LSTM) read 2,000 characters 2.4-3.3x faster, and
    the loss on held-out prompts moved by 0.0001 nats/char; bf16 GRU and RNN layers on the CPU
    ran 3-4x *slower* than fp32, and CUDA has not been measured: fp32 there.
    """
    from rnnchat.engine.cells import LSTMCell
    from rnnchat.engine.precision import cpu_bf16_fast

    layers = list(getattr(model, "layers", ()))
    if device.type == "cpu" and layers and all(type(c) is LSTMCell for c in layers) and cpu_bf16_fast():
        return "bf16"
    return "fp32"


@dataclass(slots=True)
class Token:
    char: str
    prob: float


class Engine:
    """A loaded model on a device, ready to read text and generate.

    ``fast=False`` turns the fast path off (the reference path); ``None`` follows
    ``RNNCHAT_FAST`` (on unless set to 0). ``backend`` names the path in use.

    ``prompt_precision`` ("auto", default, "fp32" or "bf16"; ``RNNCHAT_PROMPT_PRECISION``) is
    the precision of ``feed`` for prompts of ``BF16_MIN_PROMPT`` characters or more: bf16 reads
    a long prompt 2-3x faster on hardware with bf16 matrix units, with a state that differs
    slightly from fp32; "auto" picks it where it was measured faster (:func:`auto_prompt_precision`,
    docs/performance.md). ``prompt_precision`` holds the precision chosen.

    ``weights`` ("auto", default, "fp32", "bf16" or "int8"; :mod:`rnnchat.engine.quant`) is the
    format of the weights generation reads per character; ``weights`` holds the format chosen.
    """

    chunk = CHUNK  # prompt characters per forward call (rnnchat.engine.prompt)

    def __init__(self, loaded: Loaded, device: torch.device | str = "cpu", fast: bool | None = None,
                 prompt_precision: str | None = None, weights: str | None = None) -> None:
        self.loaded = loaded
        self.vocab = loaded.vocab
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        env = env_prompt_precision() or ""
        self.set_prompt_precision(prompt_precision or env or "auto",
                                  "RNNCHAT_PROMPT_PRECISION" if env and not prompt_precision else "prompt precision")
        self.fast = build_fast(self.model, self.device, loaded.meta.get("cell")) if fast is not False else None
        self.backend = self.fast.backend if self.fast is not None else "torch"
        self._packed: dict = {}
        self.weights = "fp32"
        self.set_weights(weights or "auto")

    def set_weights(self, setting: str) -> str:
        """Set the weights generation reads: "auto", "fp32", "bf16" or "int8". Returns the format."""
        from rnnchat.engine.quant import resolve

        fmt = resolve(setting, self.loaded.meta)
        if fmt == "int8":
            from rnnchat.core.env import int8_kernel

            int8_kernel()  # a bad RNNCHAT_INT8_KERNEL is an error here, not a reason for auto to pick fp32
        if fmt != "fp32":
            try:
                self.packed_weights(fmt)
            except SettingError:
                if setting == "auto":
                    fmt = "fp32"  # auto picks what this model can run; an explicit choice errs
                else:
                    raise
        self.weights = fmt
        return fmt

    def packed_weights(self, fmt: str):
        """The model's weights in ``fmt`` for batched steps (:mod:`rnnchat.engine.batched`), built once."""
        if fmt not in self._packed:
            if self.device.type != "cpu":
                raise SettingError(f"{fmt} weights run on the CPU only (device {self.device})")
            from rnnchat.engine.batched import Weights

            self._packed[fmt] = Weights(self.model, fmt)
        return self._packed[fmt]

    def set_prompt_precision(self, value: str, what: str = "prompt precision") -> str:
        """Set how long prompts are read: "auto", "fp32" or "bf16". Returns the precision chosen."""
        if value not in PROMPT_PRECISIONS:
            raise SettingError(f"{what} must be auto, fp32 or bf16, not {value!r}")
        if value == "bf16":
            from rnnchat.engine.precision import check_precision

            check_precision(value, self.device, what, self.loaded.meta.get("cell"))
        self.prompt_precision = auto_prompt_precision(self.model, self.device) if value == "auto" else value
        return self.prompt_precision

    def initial_state(self):
        with torch.inference_mode():
            return self.model.initial_state(1)

    def default_start(self) -> int:
        """The token to start from when there is no prompt: a newline if the model knows one."""
        return self.vocab.index.get("\n", 0)

    def encode(self, text: str) -> Encoded:
        return self.vocab.encode(text)

    def feed(self, ids, state, chunk: int | None = None):
        """Read ``ids`` (ints, or a 1-D integer tensor) into ``state``, ``chunk`` ids per fused
        forward call (default ``self.chunk``), so memory does not grow with the prompt.
        Returns (logits after the last id, new state)."""
        if len(ids) == 0:
            raise ValueError("nothing to feed")
        if len(ids) < SHORT_PROMPT.get(self.weights, 0) and chunk is None and self.device.type == "cpu":
            read = self._read_stepwise(ids, state)
            if read is not None:
                return read
        bf16 = self.prompt_precision == "bf16" and len(ids) >= BF16_MIN_PROMPT and self.device.type in ("cpu", "cuda")
        with torch.inference_mode():
            return read_ids(self.model, ids, state, chunk=chunk or self.chunk, dtype=torch.bfloat16 if bf16 else None)

    def _read_stepwise(self, ids, state):
        """(logits, state) after ``ids`` read one at a time on the per-character CPU path (the
        generation weights' own arithmetic), or None where there is none (a third-party cell)."""
        if self.weights == "fp32" and (self.fast is None or self.fast.backend != "numpy"):
            return None
        runner = self._runner(torch.zeros(self.model.head.out_features), state, None, timed=False)
        try:
            runner.read([int(i) for i in ids])
            return runner.export()
        finally:
            runner.close()

    def feed_text(self, reads: Iterable[str], state, chunk: int | None = None):
        """Encode and read text that arrives in pieces (a stream's reads), one chunk at a time:
        neither the text nor its ids are ever held whole. Returns (logits, state, TextRead);
        logits is None and the state unchanged when the model knows none of the characters.
        Pieces of under ``BF16_MIN_PROMPT`` characters are read in fp32, as in ``feed``; a piece
        shorter than ``SHORT_PROMPT`` on the per-character path, as ``feed`` reads it, unless a
        ``chunk`` was given (so that ``rnnchat generate`` reads a prompt as the chat and a server
        do, and writes the same text for a seed)."""
        given, chunk = chunk, chunk or self.chunk
        logits, read = None, TextRead()
        for piece in text_pieces(reads, chunk):
            enc = self.vocab.encode(piece)
            read.add(enc)
            if enc.ids:
                logits, state = self.feed(enc.ids, state, given)
        return logits, state, read

    def step(self, token: int, state):
        """One character through ``model.step`` (the reference path)."""
        with torch.inference_mode():
            x = torch.tensor([token], dtype=torch.long, device=self.device)
            logits, state = self.model.step(x, state)
            return logits[0], state

    def stream(self, logits, state, params: SamplingParams | LiveParams, sampler: Sampler | None = None,
               cancel: threading.Event | None = None) -> "Stream":
        """``params``: fixed values, or a LiveParams read once per character (params.py)."""
        # a capped vocabulary's shared rare-character token (vocab.UNK) stands for many characters: never written
        return Stream(self, logits, state, params, sampler or Sampler(current(params), banned=self.vocab.unk), cancel)

    def _runner(self, logits, state, sampler, timed: bool = True):
        """The per-character runner; ``timed``: its first steps time the thread count (a stream's;
        a prompt read one character at a time is not timed, and leaves the count as it is)."""
        fast = self.fast
        if self.weights != "fp32":
            from rnnchat.engine.multi import WeightsRunner

            return WeightsRunner(self.packed_weights(self.weights), logits, state, timed)
        if fast is not None:
            if fast.backend == "numpy":
                return _NumpyRunner(fast, logits, state, timed)
            # a sampler that customises __call__ (or bans a token) must see every choice: sample on the host then
            on_device = type(sampler).__call__ is Sampler.__call__ and sampler.banned is None
            runner = fast.runner(logits, state, sampler) if on_device else None
            if runner is not None:
                return runner
        return _TorchRunner(self, logits, state)


class _TorchRunner:
    """``model.step`` per character: nothing around the cells' own ``step``."""

    def __init__(self, engine: Engine, logits, state) -> None:
        self.model, self.device = engine.model, engine.device
        self.logits, self.state = logits, state

    stepped = False

    def step(self, idx: int):
        with torch.inference_mode():
            logits, self.state = self.model.step(torch.tensor([idx], device=self.device), self.state)
        self.logits = logits[0]
        return self.logits

    def export(self):
        return self.logits, self.state

    def close(self) -> None:
        pass


class _NumpyRunner:
    def __init__(self, fm, logits, state, timed: bool = True) -> None:
        self.st = fm.new_state(state)
        self.logits = logits.detach().float().cpu().numpy().reshape(-1) if isinstance(logits, torch.Tensor) \
            else np.asarray(logits, np.float32)
        self.like = logits
        self.threads = getattr(fm, "threads", None)
        # the stream's first characters time the BLAS thread counts; then the plain NumPy step
        timed = timed and self.threads is not None
        self.step = self.threads.probe(self.st.step, self._unwrap) if timed else self.st.step
        self.stepped = False

    def _unwrap(self, step) -> None:
        self.step = step

    def read(self, ids) -> None:
        """Step through ``ids`` (a prompt: no thread-count timing)."""
        step = self.st.step
        for i in ids:
            step(i)
        self.stepped = True

    def export(self):
        logits = torch.from_numpy((self.st.logits if self.stepped else self.logits).copy())
        if isinstance(self.like, torch.Tensor):
            logits = logits.to(self.like.device, self.like.dtype)
        return logits, self.st.export()

    def close(self) -> None:
        close = getattr(self.step, "close", None)
        if close is not None:
            close()


class Stream:
    """Iterate to get tokens; afterwards ``state`` holds the state after every generated
    character, ``logits`` the prediction for the next one, and ``reason`` is 'stop',
    'length' or 'cancelled'."""

    def __init__(self, engine: Engine, logits, state, params, sampler, cancel) -> None:
        self.engine = engine
        self._logits, self._state = logits, state
        self.live = params if isinstance(params, LiveParams) else None
        self.params, self.sampler, self.cancel = current(params), sampler, cancel
        self.reason: str | None = None
        self.generated = 0
        self._run = None
        self._backend: str | None = None

    @property
    def backend(self) -> str:
        """The path this stream runs (or ran) on: the engine's, or 'torch' where it fell back."""
        return self._backend or self.engine.backend

    def _sync(self) -> None:
        if self._run is not None:
            self._logits, self._state = self._run.export()

    @property
    def logits(self):
        self._sync()
        return self._logits

    @property
    def state(self):
        self._sync()
        return self._state

    def __iter__(self):
        gen = self._iterate()
        _OPEN.add(gen)
        return gen

    def _iterate(self):
        run = self._run = self.engine._runner(self._logits, self._state, self.sampler)
        self._backend = "torch" if isinstance(run, _TorchRunner) else self.engine.backend
        try:
            yield from self._generate(run)
        finally:
            self._logits, self._state = run.export()
            self._run = None
            run.close()

    def _generate(self, run):
        chars = self.engine.vocab.chars
        params, cancel, sampler, live = self.params, self.cancel, self.sampler, self.live
        device_next = getattr(run, "next", None)
        logits = run.logits if device_next is None else None
        held: list[Token] = []
        text = ""
        while True:
            if cancel is not None and cancel.is_set():
                self.reason = "cancelled"
                break
            if live is not None:  # the values of this character: read once, used for all of it
                params = sampler.params = live.current
            if self.generated >= params.max_chars:
                self.reason = "length"
                break
            if device_next is None:
                idx, prob = sampler(logits)
                logits = run.step(idx)  # read each time: a runner may swap its step (blas_choice.py)
                run.stepped = True
            else:
                idx, prob = device_next(params, sampler)
            self.generated += 1
            stops = params.stop
            if not stops and not held:
                yield Token(chars[idx], prob)
                continue
            tok = Token(chars[idx], prob)
            held.append(tok)
            text += tok.char
            done = [s for s in stops if text.endswith(s)]
            if done:
                self.reason = "stop"
                keep = len(held) - max(len(s) for s in done)
                yield from held[:keep]
                return
            # emit what can no longer be the start of a stop sequence
            hold = _longest_partial(text, stops)
            for t in held[: len(held) - hold]:
                yield t
            held = held[len(held) - hold:] if hold else []
            text = text[len(text) - hold:] if hold else ""
        yield from held


# Streams' generators not finished yet. One left unfinished (a caller that stopped reading) was
# closed by the interpreter's teardown, its ``finally`` then exported the state with torch half torn
# down, and the process aborted (torch's THPVariable_clear assert, "terminate called...", exit 134):
# they are closed at exit instead, before that teardown.
_OPEN: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _close_open_streams() -> None:
    for gen in list(_OPEN):
        try:
            gen.close()
        except Exception:  # (running in another thread at exit: ValueError; nothing else to do then)
            pass


def _longest_partial(text: str, stops) -> int:
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best
