"""Validation loss (nats per character) and short samples during training."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnchat.core.vocab import Vocab

CHUNK = 256  # characters of each stream per call: small, so that a stop is answered within a chunk
MAX_LOGITS = 1 << 23  # logits per chunk (32 MB in fp32): a 10,000-character vocabulary stays small


class Aborted(Exception):
    """Raised by :func:`evaluate` when ``should_stop`` answers True."""


def evaluate(model, ids: torch.Tensor, device, streams: int = 1, should_stop=None, on_chunk=None) -> float:
    """Mean NLL of ``ids[1:]`` given what came before, read statefully.

    ``streams=1`` reads the whole split as one sequence (the reported figure);
    more streams cut it into that many contiguous pieces read side by side,
    which is faster and very close.
    """
    total, count = evaluate_sum(model, ids, device, streams, should_stop=should_stop, on_chunk=on_chunk)
    return total / count


def layout(n_ids: int, streams: int, vocab: int, part: tuple[int, int] = (0, 1)) -> tuple[int, int, int]:
    """(streams, chunk length, number of chunks) of an evaluation of ``n_ids`` ids."""
    streams = max(1, min(streams, n_ids - 1))
    n = (n_ids - 1) // streams
    rows = len(range(part[0], streams, part[1]))
    chunk = max(16, min(CHUNK, MAX_LOGITS // (max(1, rows) * max(1, vocab))))
    return streams, chunk, -(-n // chunk)


def evaluate_sum(model, ids: torch.Tensor, device, streams: int = 1, part: tuple[int, int] = (0, 1),
                 should_stop=None, max_chunks: int | None = None, on_chunk=None) -> tuple[float, int]:
    """(summed NLL, characters) over this ``part`` (rank, world) of the streams: ranks split the work.

    Reads at most ``max_chunks`` chunks of every stream (all of them when None), calls
    ``on_chunk(done, total)`` after each, and raises :class:`Aborted` between chunks when
    ``should_stop()`` answers True.
    """
    was_training = model.training
    model.eval()
    vocab = model.head.out_features if hasattr(model, "head") else 1
    streams, chunk, chunks = layout(ids.numel(), streams, vocab, part)
    n = (ids.numel() - 1) // streams
    rows = list(range(part[0], streams, part[1]))
    if not rows:
        return 0.0, 0
    if max_chunks is not None:
        chunks = max(1, min(chunks, max_chunks))
    x_all = ids[: n * streams].view(streams, n)[rows].long()
    y_all = ids[1: n * streams + 1].view(streams, n)[rows].long()
    total, count = 0.0, 0
    try:
        with torch.inference_mode():
            state = model.initial_state(len(rows))
            for i in range(chunks):
                if should_stop is not None and should_stop():
                    raise Aborted
                s = i * chunk
                x = x_all[:, s:s + chunk].to(device)
                y = y_all[:, s:s + chunk].to(device)
                logits, state = model(x, state)
                total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                                         reduction="sum").item()
                count += y.numel()
                if on_chunk is not None:
                    on_chunk(i + 1, chunks)
    finally:
        model.train(was_training)
    return total, count


def sample_text(model, vocab: Vocab, device, length: int, seed: int, temperature: float = 0.8,
                should_stop=None) -> str:
    """A short sample from the initial state, with its own RNG (the training RNG is untouched)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    start = vocab.index.get("\n", 0)
    with torch.inference_mode():
        state = model.initial_state(1)
        token = torch.tensor([start], device=device)
        for i in range(length):
            if should_stop is not None and i % 32 == 0 and should_stop():
                break
            logits, state = model.step(token, state)
            probs = torch.softmax(logits[0].float().cpu() / temperature, -1)
            idx = int(torch.multinomial(probs, 1, generator=gen))
            out.append(vocab.chars[idx])
            token = torch.tensor([idx], device=device)
    model.train(was_training)
    return "".join(out)
