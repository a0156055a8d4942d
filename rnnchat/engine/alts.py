"""K alternatives of a reply in flight: their tokens, tagged with the stream they belong to.

Torch-free (the fake engine uses it too). :class:`AltGeneration` is a
:class:`~rnnchat.engine.pipe.Generation` whose tokens are :class:`AltToken` s (``index``: the
alternative, 0..K-1) and whose ``end``, once the iteration is over, is one :class:`AltEnd` per
alternative: its reason, every character it fed into its state (the stop sequence included) and
the state after them, so picking one continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnchat.engine.pipe import Generation


@dataclass(frozen=True, slots=True)
class AltToken:
    index: int  # which alternative (0..K-1)
    char: str
    prob: float


@dataclass(frozen=True, slots=True)
class AltEnd:
    reason: str  # "stop", "length" or "cancelled"
    fed: str
    end: Any  # the engine's state handle after ``fed``


class AltGeneration(Generation):
    """``produce(gen)`` returns ``(reason, "", [AltEnd, ...])``: reason "done" or "cancelled"."""

    @property
    def ends(self) -> list[AltEnd]:
        return list(self.end or ())
