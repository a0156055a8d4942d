"""Sampling settings (torch-free).

The rule for values shared across threads: a :class:`SamplingParams` is immutable. To change
one value, make a new one (``params.replace(temperature=0.5)``, validated) and put it in the
:class:`LiveParams` the session holds, as a whole. A stream reads ``LiveParams.current``
once per character, so a change reaches the very next character and a character never mixes
old and new values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from rnnchat.core import defaults as D
from rnnchat.core.defaults import MAX_CHARS_LIMIT  # noqa: F401 (re-exported)
from rnnchat.core.errors import SamplingError


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = D.TEMPERATURE
    top_k: int = D.TOP_K  # 0: off
    top_p: float = D.TOP_P  # 1.0: off
    repetition_penalty: float = D.REPETITION_PENALTY  # 1.0: off
    min_p: float = D.MIN_P  # 0: off; keeps characters with p >= min_p * p_max
    presence_penalty: float = D.PRESENCE_PENALTY  # 0: off; OpenAI's: minus this for each character already in the reply
    frequency_penalty: float = D.FREQUENCY_PENALTY  # 0: off; OpenAI's: minus this times its count in the reply
    seed: int | None = None
    max_chars: int = D.MAX_CHARS
    stop: tuple[str, ...] = field(default_factory=tuple)

    def validate(self) -> "SamplingParams":
        check_temperature(self.temperature)
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise SamplingError(f"top-k must be a whole number >= 0 (0 turns it off), not {self.top_k!r}")
        if not _finite(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise SamplingError(f"top-p must be in (0, 1] (1 turns it off), not {self.top_p!r}")
        if not _finite(self.repetition_penalty) or not 0.0 < self.repetition_penalty <= 100.0:
            raise SamplingError(f"repetition penalty must be in (0, 100] (1 turns it off), not {self.repetition_penalty!r}")
        if not _finite(self.min_p) or not 0.0 <= self.min_p < 1.0:
            raise SamplingError(f"min-p must be a number in [0, 1) (0 turns it off), not {self.min_p!r}")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not _finite(value) or not -2.0 <= value <= 2.0:
                raise SamplingError(f"{name.replace('_', ' ')} must be a number in [-2, 2] (0 turns it off), "
                                    f"not {value!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < 2**63):
            raise SamplingError(f"seed must be a whole number in [0, 2^63), not {self.seed!r}")
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) \
                or not 1 <= self.max_chars <= MAX_CHARS_LIMIT:
            raise SamplingError(f"max chars must be a whole number in [1, {MAX_CHARS_LIMIT}], not {self.max_chars!r}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise SamplingError("stop sequences must be non-empty strings")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    def replace(self, **changes) -> "SamplingParams":
        """A validated copy with ``changes`` (raises SamplingError for a bad value)."""
        if "stop" in changes:
            changes["stop"] = tuple(changes["stop"])
        return replace(self, **changes).validate()


class LiveParams:
    """The sampling values of a session, replaced whole from any thread (see the module
    docstring). ``current`` is one immutable :class:`SamplingParams`."""

    __slots__ = ("current",)

    def __init__(self, params: SamplingParams | None = None) -> None:
        self.current = params if params is not None else SamplingParams()

    def set(self, params: SamplingParams) -> SamplingParams:
        self.current = params.validate()
        return params

    def update(self, **changes) -> SamplingParams:
        """Replace ``current`` by a validated copy with ``changes``; returns it."""
        self.current = self.current.replace(**changes)
        return self.current


def current(params: "SamplingParams | LiveParams") -> SamplingParams:
    """The values to use now, from either a fixed SamplingParams or a LiveParams."""
    return params.current if isinstance(params, LiveParams) else params


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_temperature(t) -> float:
    if not _finite(t) or t < 0 or t > 100:
        raise SamplingError(f"temperature must be a number in [0, 100] (0 is greedy), not {t!r}")
    return float(t)
