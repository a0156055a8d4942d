"""Validation loss (nats per character) and short samples during training."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnchat.vocab import Vocab

CHUNK = 1024


def evaluate(model, ids: torch.Tensor, device, streams: int = 1) -> float:
    """Mean NLL of ``ids[1:]`` given what came before, read statefully.

    ``streams=1`` reads the whole split as one sequence (the reported figure);
    more streams cut it into that many contiguous pieces read side by side,
    which is faster and very close.
    """
    was_training = model.training
    model.eval()
    n = (ids.numel() - 1) // streams
    x_all = ids[: n * streams].view(streams, n).long()
    y_all = ids[1: n * streams + 1].view(streams, n).long()
    total, count = 0.0, 0
    with torch.inference_mode():
        state = model.initial_state(streams)
        for s in range(0, n, CHUNK):
            x = x_all[:, s:s + CHUNK].to(device)
            y = y_all[:, s:s + CHUNK].to(device)
            logits, state = model(x, state)
            total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
    model.train(was_training)
    return total / count


def sample_text(model, vocab: Vocab, device, length: int, seed: int, temperature: float = 0.8) -> str:
    """A short sample from the initial state, with its own RNG (the training RNG is untouched)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    start = vocab.index.get("\n", 0)
    with torch.inference_mode():
        state = model.initial_state(1)
        token = torch.tensor([start], device=device)
        for _ in range(length):
            logits, state = model.step(token, state)
            probs = torch.softmax(logits[0].float().cpu() / temperature, -1)
            idx = int(torch.multinomial(probs, 1, generator=gen))
            out.append(vocab.chars[idx])
            token = torch.tensor([idx], device=device)
    model.train(was_training)
    return "".join(out)
