"""Which text ``rnnchat probe`` reads: the held-out part of the model's own corpus, or a given one.

A checkpoint records its corpus (name and sha256) and its training options
(``val_fraction``: the last part of the text, never trained on). The held-out
part is cut the way training cut it: the text encoded with the model's
vocabulary, the ids from ``int(n * (1 - val_fraction))`` on. A text given with
``--corpus`` whose sha256 is the model's corpus is cut the same way; any other
text is read from its start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnchat.store.corpora import read_text, resolve_named
from rnnchat.engine.data import encode_ids
from rnnchat.core.errors import CorpusError
from rnnchat.plugins.specs import NAME_RE


@dataclass
class ProbeText:
    ids: list[int]
    text: str  # the ids decoded: what the model reads (unknown characters as its UNK token)
    source: str  # one line for the report
    path: str
    held_out: bool
    start: int  # index of the first id read in the encoded text
    total: int  # ids in the encoded text


def _corpus_meta(meta: dict) -> tuple[str | None, str | None, float | None]:
    corpus = meta.get("corpus") if isinstance(meta.get("corpus"), dict) else {}
    name, sha = corpus.get("name"), corpus.get("sha256")
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    vf = training.get("val_fraction")
    if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not (math.isfinite(vf) and 0 < vf < 0.5):
        vf = None
    return (name if isinstance(name, str) else None), (sha if isinstance(sha, str) else None), vf


def select_text(meta: dict, vocab, corpus: str | None, chars: int) -> ProbeText:
    name, sha, vf = _corpus_meta(meta)
    if corpus is None:
        if not name:
            raise CorpusError("the model does not record its training corpus: give a text with --corpus PATH")
        if not NAME_RE.match(name):  # a name from the checkpoint is looked up as a name, never used as a path
            raise CorpusError(f"the model's corpus name {name[:40]!r} is not a corpus name: give a text with "
                              "--corpus PATH")
        try:
            path, _ = resolve_named(name)
        except CorpusError as exc:
            raise CorpusError(f"the model's corpus is not on this machine ({exc}); "
                              "or give a text with --corpus PATH") from None
    else:
        path, _ = resolve_named(corpus)
    text, file_sha = read_text(path)
    ours = sha is not None and file_sha == sha
    if corpus is None and not ours:
        raise CorpusError(f"{path} is not the text the model was trained on (its sha256 differs from the "
                          f"model's {name!r}): give a text with --corpus PATH")
    if corpus is None and vf is None:
        raise CorpusError("the model does not record its validation split: give a text with --corpus PATH")
    ids = encode_ids(text, vocab)
    total = ids.numel()
    held_out = ours and vf is not None
    start = int(total * (1.0 - vf)) if held_out else 0
    ids = ids[start:start + chars].tolist()
    if not ids:
        raise CorpusError(f"{path}: none of its characters are in the model's vocabulary")
    where = f"characters {start:,}-{start + len(ids):,} of {total:,}"
    if held_out:
        source = f"held-out {vf:.0%} of {name} ({where}; sha256 matches the model's corpus)"
    elif ours:
        source = f"{path} ({where}; the model's corpus, its validation split is not recorded)"
    else:
        source = f"{path} ({where}; not the model's training text)" if sha else f"{path} ({where})"
    return ProbeText(ids, vocab.decode(ids), source, str(path), held_out, start, total)
