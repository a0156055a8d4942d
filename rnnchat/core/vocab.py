"""Character vocabularies (torch-free: the TUI and ``rnnchat models`` use it too)."""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

UNK = "\ufffd"  # stands for every rare character when a vocabulary is capped


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@dataclass
class Encoded:
    ids: list[int]
    dropped: str  # characters of the input that the model does not know, each once, in order
    mapped: str = ""  # unknown characters mapped to the UNK token


class Vocab:
    def __init__(self, chars: list[str]) -> None:
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary has duplicate characters")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("vocabulary entries must be single characters")
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.unk = self.index.get(UNK)

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self.index

    @classmethod
    def from_text(cls, text: str, max_size: int | None = None) -> "Vocab":
        counts = Counter(text)
        if max_size is None or len(counts) <= max_size:
            return cls(sorted(counts))
        keep = [c for c, _ in counts.most_common(max_size - 1) if c != UNK][: max_size - 1]
        return cls(sorted(keep) + [UNK])

    def encode(self, text: str) -> Encoded:
        ids, dropped, mapped = [], [], []
        for ch in normalize(text):
            i = self.index.get(ch)
            if i is not None:
                ids.append(i)
            elif self.unk is not None:
                ids.append(self.unk)
                if ch not in mapped:
                    mapped.append(ch)
            elif ch not in dropped:
                dropped.append(ch)
        return Encoded(ids, "".join(dropped), "".join(mapped))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)
