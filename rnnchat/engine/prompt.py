"""Reading a prompt into the recurrent state in fixed-size chunks: work and memory bounded by the chunk.

A recurrent model reads text left to right, so a prompt of any length can be read a chunk at
a time, carrying the state from one chunk to the next: the result is the one-shot read's
(tests compare them). One fused ``forward`` over a whole prompt holds buffers that grow with it
(the embedded input, every layer's output, the LSTM's gate pre-activations: 8 KB per character
for a 2x512 LSTM), so 1.1 M characters made oneDNN fail to create its primitive and 5 M
characters asked for 83 GB. Here at most :data:`CHUNK` characters are in flight, and the
linear head runs only on the last position of each chunk (its logits are all reading needs).

Text is chunked too (:func:`text_pieces`): a prompt read from a stream is normalised and
encoded a piece at a time, cut only where Unicode normalisation (NFC) cannot join the two
sides, so the ids are those of the whole text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch

from rnnchat.engine.model import state_map

CHUNK = 4096  # characters per forward call: measured fastest in bf16, as fast in fp32 (docs/performance.md)
MAX_PIECE = 4  # a text piece holds at most MAX_PIECE * chunk characters when no safe cut is found


def read_ids(model, ids, state, *, chunk: int = CHUNK, dtype: torch.dtype | None = None):
    """Read ``ids`` (a sequence of ints, or a 1-D integer tensor) into ``state``, ``chunk`` ids per
    forward call. Returns (logits after the last id [V], state). ``dtype``: run the layers under
    autocast to it (bf16 prompt reading); the state and logits come back in the head's dtype."""
    n = len(ids)
    if n == 0:
        raise ValueError("nothing to feed")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    device = model.head.weight.device
    logits = None
    for start in range(0, n, chunk):
        x = torch.as_tensor(ids[start:start + chunk], dtype=torch.long).view(1, -1).to(device)
        if dtype is None:
            logits, state = model(x, state, last_only=True)
        else:
            with torch.autocast(device.type, dtype=dtype):
                logits, state = model(x, state, last_only=True)
            wdtype = model.head.weight.dtype
            logits, state = logits.to(wdtype), state_map(lambda t: t.to(wdtype), state)
    return logits[0, -1], state


@dataclass
class TextRead:
    """What :meth:`Engine.feed_text` read: ``ids`` fed, and the characters left out (``dropped``)
    or read as the unknown token (``mapped``), each once, in order (as ``Encoded``)."""

    ids: int = 0
    dropped: str = ""
    mapped: str = ""

    def add(self, enc) -> None:
        self.ids += len(enc.ids)
        self.dropped += "".join(c for c in dict.fromkeys(enc.dropped) if c not in self.dropped)
        self.mapped += "".join(c for c in dict.fromkeys(enc.mapped) if c not in self.mapped)


# ---- text -----------------------------------------------------------------------------------------------

def safe_cut(text: str, lo: int = 0) -> int:
    """The largest ``i`` with ``lo < i < len(text)`` where ``text`` may be cut for normalisation:
    ``NFC(text[:i] + rest) == NFC(text[:i]) + NFC(rest)`` whatever ``rest`` starts with
    ``text[i:]``; 0 when there is none.

    A cut is safe before a character that never combines with what precedes it: everything
    below U+0300 (ASCII, Latin-1, Latin Extended) and the CJK unified ideographs have combining
    class 0, are their own NFC form and are never the second half of a composition (UAX #15's
    stable code points; tests/test_generate.py checks the ranges against unicodedata)."""
    for i in range(len(text) - 1, lo, -1):
        if is_stable(text[i]):
            return i
    return 0


def is_stable(ch: str) -> bool:
    c = ord(ch)
    return c < 0x300 or 0x4E00 <= c <= 0x9FFF


def text_pieces(reads: Iterable[str], chunk: int = CHUNK) -> Iterator[str]:
    """Join and re-cut ``reads`` (a stream's reads, of any sizes) into pieces of at most about
    ``chunk`` characters that normalise independently (:func:`safe_cut`). A run of
    ``MAX_PIECE * chunk`` characters with no safe cut (combining marks only) is cut where it is,
    so memory stays bounded whatever the text."""
    pending = ""
    for text in reads:
        pending += text
        while len(pending) > chunk:
            cut = safe_cut(pending[:chunk + 1], chunk // 2) or safe_cut(pending[:MAX_PIECE * chunk], chunk)
            if not cut:
                if len(pending) < MAX_PIECE * chunk:
                    break  # wait for more text: a safe cut may follow
                cut = chunk
            yield pending[:cut]
            pending = pending[cut:]
    if pending:
        yield pending


def stream_reads(read: Callable[[int], str], chunk: int = CHUNK) -> Iterator[str]:
    """``read(chunk)`` until it returns an empty string (a text file's ``read``)."""
    while True:
        text = read(chunk)
        if not text:
            return
        yield text


def string_reads(text: str, chunk: int = CHUNK) -> Iterator[str]:
    """A string already in memory as reads of ``chunk`` characters (so re-cutting stays linear)."""
    for start in range(0, len(text), chunk):
        yield text[start:start + chunk]
