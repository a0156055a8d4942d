"""Read a training corpus: UTF-8 text in any script, checked before training starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnchat.store.corpora import MAX_CORPUS_BYTES, read_text  # noqa: F401  (re-exported)
from rnnchat.core.errors import CorpusError
from rnnchat.core.vocab import Vocab


@dataclass
class Corpus:
    name: str
    path: Path
    sha256: str
    text_chars: int
    vocab: Vocab
    ids: torch.Tensor  # int32, whole text

    def split(self, val_fraction: float):
        n = self.ids.numel()
        cut = int(n * (1.0 - val_fraction))
        return self.ids[:cut], self.ids[cut:]


ENCODE_CHUNK = 1 << 20  # characters encoded at a time: temporaries stay a few MB whatever the text


def encode_ids(text: str, vocab: Vocab) -> torch.Tensor:
    """Map a text to int32 ids with numpy, a chunk at a time (no Python object per character).

    Characters outside the vocabulary become its UNK token when it has one, else they are dropped.
    """
    table = np.array([ord(c) for c in vocab.chars], dtype=np.uint32)
    order = np.argsort(table, kind="stable").astype(np.int32)
    sorted_table = table[order]
    parts = []
    for start in range(0, len(text), ENCODE_CHUNK):
        points = np.frombuffer(text[start:start + ENCODE_CHUNK].encode("utf-32-le"), dtype="<u4")
        where = np.searchsorted(sorted_table, points)
        where[where == len(sorted_table)] = 0
        known = sorted_table[where] == points
        ids = order[where]
        if not known.all():
            if vocab.unk is not None:
                ids[~known] = vocab.unk
            else:
                ids = ids[known]
        parts.append(ids)
    return torch.from_numpy(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))


def load_corpus(path: str | Path, name: str | None = None, vocab: Vocab | None = None,
                max_vocab: int | None = None) -> Corpus:
    text, sha = read_text(path)
    if vocab is None:
        vocab = Vocab.from_text(text, max_vocab)
    ids = encode_ids(text, vocab)
    if not ids.numel():
        raise CorpusError(f"{path}: none of its characters are in the model's vocabulary")
    return Corpus(name or Path(path).stem, Path(path), sha, len(text), vocab, ids)
