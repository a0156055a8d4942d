"""The seed of each reply (torch-free)."""

from __future__ import annotations

import random

from rnnchat.core.params import SamplingParams
from rnnchat.session.types import Turn


def new_seed() -> int:
    return random.randrange(2**63)


def reply_seed(params: SamplingParams, seed: int | None = None, index: int = 0) -> int:
    """The seed of a reply: an explicit one; else, when ``params.seed`` is set, one derived from it
    and the reply's position (the first reply uses ``params.seed`` itself, so a conversation with
    a fixed seed is reproducible without every reply reusing the same random numbers); else a
    fresh random one."""
    if seed is not None:
        return seed
    if params.seed is None:
        return new_seed()
    return (params.seed + index * 0x9E3779B97F4A7C15) % 2**63


def model_turns(turns: list[Turn]) -> int:
    return sum(t.role == "model" for t in turns)
