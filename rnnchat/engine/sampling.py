"""Turn logits into a character: temperature, top-k, top-p, repetition penalty, seeded."""

from __future__ import annotations

import random

import torch

from rnnchat.errors import SamplingError
from rnnchat.params import SamplingParams

REPETITION_WINDOW = 64


class Sampler:
    """Samples one id from logits[V]. Reads ``params`` on every call, so changes apply at once."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        seed = params.seed if params.seed is not None else random.randrange(2**63)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.recent: list[int] = []

    def remember(self, ids) -> None:
        self.recent.extend(int(i) for i in ids)
        del self.recent[:-REPETITION_WINDOW]

    def __call__(self, logits: torch.Tensor) -> tuple[int, float]:
        """Returns (id, probability the model gave that id at temperature 1)."""
        logits = logits.detach().float().reshape(-1).cpu()
        if not torch.isfinite(logits).all():
            raise SamplingError("model produced invalid values (NaN or infinite logits); "
                                "the checkpoint may be corrupt or training diverged")
        p = self.params
        raw = torch.softmax(logits, -1)
        if p.repetition_penalty != 1.0 and self.recent:
            idx = torch.tensor(sorted(set(self.recent)), dtype=torch.long)
            sel = logits[idx]
            logits = logits.clone()
            logits[idx] = torch.where(sel > 0, sel / p.repetition_penalty, sel * p.repetition_penalty)
        if p.temperature == 0:
            choice = int(torch.argmax(logits))
        else:
            probs = torch.softmax(logits / p.temperature, -1)
            probs = filter_top(probs, p.top_k, p.top_p)
            choice = int(torch.multinomial(probs, 1, generator=self.generator))
        self.remember((choice,))
        return choice, float(raw[choice])


def filter_top(probs: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k and top_k < probs.numel():
        kth = torch.topk(probs, top_k).values[-1]
        probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        cum = torch.cumsum(sorted_p, 0) / sorted_p.sum()
        keep = cum - sorted_p / sorted_p.sum() < top_p  # keep the smallest set reaching top_p
        mask = torch.zeros_like(probs, dtype=torch.bool)
        mask[order[keep]] = True
        probs = torch.where(mask, probs, torch.zeros_like(probs))
    return probs
