"""Generation: read the prompt in one fused ``forward``, then sample one character at a time.

``Stream`` is an iterator of ``(char, probability)``. It reads its sampling
parameters on every character, so a change made by another thread (the chat
app's temperature control) applies to the very next character. Text that
could be the start of a stop sequence is held back until it is decided.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from rnnchat.engine.checkpoint import Loaded
from rnnchat.engine.sampling import Sampler
from rnnchat.params import SamplingParams
from rnnchat.vocab import Encoded


@dataclass
class Token:
    char: str
    prob: float


class Engine:
    """A loaded model on a device, ready to read text and generate."""

    def __init__(self, loaded: Loaded, device: torch.device | str = "cpu") -> None:
        self.loaded = loaded
        self.vocab = loaded.vocab
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()

    def initial_state(self):
        with torch.inference_mode():
            return self.model.initial_state(1)

    def default_start(self) -> int:
        """The token to start from when there is no prompt: a newline if the model knows one."""
        return self.vocab.index.get("\n", 0)

    def encode(self, text: str) -> Encoded:
        return self.vocab.encode(text)

    def feed(self, ids: list[int], state):
        """Read ``ids`` in one forward call. Returns (logits of the last position, new state)."""
        if not ids:
            raise ValueError("nothing to feed")
        with torch.inference_mode():
            x = torch.tensor([ids], dtype=torch.long, device=self.device)
            logits, state = self.model(x, state)
            return logits[0, -1], state

    def step(self, token: int, state):
        with torch.inference_mode():
            x = torch.tensor([token], dtype=torch.long, device=self.device)
            logits, state = self.model.step(x, state)
            return logits[0], state

    def stream(self, logits, state, params: SamplingParams, sampler: Sampler | None = None,
               cancel: threading.Event | None = None) -> "Stream":
        return Stream(self, logits, state, params, sampler or Sampler(params), cancel)


class Stream:
    """Iterate to get tokens; afterwards ``state`` holds the state after every generated
    character and ``reason`` is 'stop', 'length' or 'cancelled'."""

    def __init__(self, engine: Engine, logits, state, params, sampler, cancel) -> None:
        self.engine, self.logits, self.state = engine, logits, state
        self.params, self.sampler, self.cancel = params, sampler, cancel
        self.reason: str | None = None
        self.generated = 0

    def __iter__(self):
        chars = self.engine.vocab.chars
        held: list[Token] = []
        text = ""
        while True:
            if self.cancel is not None and self.cancel.is_set():
                self.reason = "cancelled"
                break
            if self.generated >= self.params.max_chars:
                self.reason = "length"
                break
            idx, prob = self.sampler(self.logits)
            self.logits, self.state = self.engine.step(idx, self.state)
            self.generated += 1
            tok = Token(chars[idx], prob)
            held.append(tok)
            text += tok.char
            stops = self.params.stop
            if any(text.endswith(s) for s in stops):
                self.reason = "stop"
                keep = len(held) - max(len(s) for s in stops if text.endswith(s))
                yield from held[:keep]
                return
            # emit what can no longer be the start of a stop sequence
            hold = _longest_partial(text, stops)
            for t in held[: len(held) - hold]:
                yield t
            held = held[len(held) - hold:] if hold else []
            text = text[len(text) - hold:] if hold else ""
        yield from held


def _longest_partial(text: str, stops) -> int:
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best

