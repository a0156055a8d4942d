"""Fine-tuning: a new run that starts from a trained checkpoint's weights (``train --init-from MODEL``).

The model's shape (cell, layers, hidden and embedding sizes, cell options) is the checkpoint's: an
option that contradicts it is a one-line error. Its dropout and peak learning rate are the defaults
(other options come from the preset as usual); its chat template and stop are kept unless given.
The vocabulary is the checkpoint's, in its order, with the characters of the new text it lacks
appended, so every old character keeps its id, and the old rows of the embedding and of the output
layer (weight and bias) are copied exactly.

A new character's rows start at the mean of the old rows plus a little noise (1% of the old rows'
spread, per column; the noise only tells several new characters apart). With the mean, the model's
predictions barely move at step 0 (Hewitt, "Initializing New Word Embeddings for Pretrained Language
Models", 2021): a new character's logit is the average logit, far below the likely ones, so the
new characters take little probability until the text teaches them; a random row (the default
initialisation) can give a new character a large logit and disturb every prediction at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rnnchat.store.checkpoint_meta import read_header
from rnnchat.engine.data import Corpus
from rnnchat.core.errors import CheckpointError, RnnchatError
from rnnchat.core.vocab import Vocab

SHAPE_OPTIONS = ("cell", "layers", "hidden", "embedding")
NOISE = 0.01  # new rows: mean of the old rows + NOISE x their per-column standard deviation x N(0, 1)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def plan(model: str, options: dict, given: set[str]) -> tuple[dict, dict]:
    """The model options of a fine-tune of ``model`` (a registered name or a path), and its chat framing.

    ``options`` are the preset's values with the user's on top; ``given`` names the options the user
    typed. Returns (options with the checkpoint's shape and an ``init_from`` record, the checkpoint's chat).
    """
    from rnnchat.plugins.resolve import resolve_model

    try:
        path = resolve_model(model).path.resolve()
        header = read_header(path)
    except RnnchatError as exc:
        raise RnnchatError(f"--init-from {model}: {exc}") from None
    meta = header.meta
    chosen = dict(options)
    for key in SHAPE_OPTIONS + ("cell_options",):
        theirs = meta[key]
        if key in given and chosen.get(key) != theirs:
            flag = "--" + key.replace("_", "-")
            raise RnnchatError(f"{flag} {_show(chosen.get(key))} contradicts --init-from {model} "
                               f"({key} {_show(theirs)}): a fine-tune keeps the model's shape; drop {flag}")
        chosen[key] = theirs
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    for key, low, high, value in (("dropout", 0.0, 0.99, meta.get("dropout")),
                                  ("lr", 1e-7, 10.0, training.get("lr"))):
        # the model's own dropout and peak learning rate, unless given (checked: the file is untrusted)
        if key not in given and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and low <= value <= high:
            chosen[key] = float(value)
    chosen["init_from"] = {"model": model, "path": str(path), "sha256": file_sha256(path),
                           "vocab_size": len(meta["vocab"])}
    chat = meta.get("chat") if isinstance(meta.get("chat"), dict) else {}
    return chosen, chat


def _show(value) -> str:
    import json

    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def extend_corpus(corpus: Corpus, base_chars: list[str]) -> Corpus:
    """The corpus re-encoded in the base vocabulary plus the corpus's new characters (appended)."""
    known = set(base_chars)
    added = [c for c in corpus.vocab.chars if c not in known]
    vocab = Vocab(list(base_chars) + added)
    table = np.array([vocab.index[c] for c in corpus.vocab.chars], dtype=np.int32)
    ids = torch.from_numpy(table[corpus.ids.numpy()])
    return replace(corpus, vocab=vocab, ids=ids)


def base_vocab(init: dict) -> list[str]:
    return read_header(_checked_path(init)).meta["vocab"]


def _checked_path(init: dict) -> Path:
    if not isinstance(init, dict) or not isinstance(init.get("path"), str):
        raise RnnchatError(f"the run's init_from record is invalid: {init!r:.200}")
    return Path(init["path"])


def init_weights(model, vocab: Vocab, init: dict, seed: int) -> int:
    """Copy the checkpoint ``init`` names into ``model`` (built for ``vocab``); returns the new rows' count.

    The file must still be the one the run was planned with (same sha256)."""
    from rnnchat.engine.checkpoint import load_checkpoint

    path = _checked_path(init)
    if init.get("sha256") and file_sha256(path) != init["sha256"]:
        raise CheckpointError(f"--init-from {path} changed since the run was planned (its sha256 differs)")
    base = load_checkpoint(path, "cpu")
    old = base.vocab.chars
    if vocab.chars[:len(old)] != old:
        raise RnnchatError(f"the vocabulary does not start with {path.name}'s: cannot keep its rows")
    n_new = len(vocab) - len(old)
    gen = torch.Generator().manual_seed(seed)
    src = base.model.state_dict()
    grown = {}
    for name, tensor in model.state_dict().items():
        old_t = src[name]
        if name in ("embedding.weight", "head.weight", "head.bias"):
            grown[name] = torch.cat([old_t, new_rows(old_t, n_new, gen)])
        else:
            grown[name] = old_t
        if grown[name].shape != tensor.shape:
            raise RnnchatError(f"{name}: {path.name} has shape {list(grown[name].shape)}, the model "
                               f"{list(tensor.shape)}")
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in grown.items()}, strict=True)
    return n_new


def new_rows(old: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` rows like ``old``'s: their mean plus NOISE x their per-column spread (see the module doc)."""
    old = old.detach().float().cpu()
    mean = old.mean(dim=0, keepdim=True)
    spread = old.std(dim=0, keepdim=True) if old.shape[0] > 1 else torch.zeros_like(mean)
    noise = torch.randn((n,) + tuple(old.shape[1:]), generator=gen) * spread * NOISE
    return mean + noise
