"""Named sampling presets: built-in ones and the user's own (kept in the settings file).

A preset holds the sampling values that shape the text (temperature, top-k, top-p, min-p and
the repetition, presence and frequency penalties); the seed and the maximum length stay as
they are. A preset saved before min-p and the presence and frequency penalties existed has
them off. Torch-free."""

from __future__ import annotations

from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams
from rnnchat.core.safe_text import printable

PRESET_FIELDS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
                 "frequency_penalty")
REQUIRED_FIELDS = ("temperature", "top_k", "top_p", "repetition_penalty")  # in every preset ever saved
OFF = {"min_p": 0.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}  # what an older preset lacks
# Presence and frequency penalties stay off in the built-in presets: a character model writes
# the same few characters (spaces, vowels) all the time, and penalising them breaks spelling.
BUILTIN: dict[str, dict] = {
    "precise": {"temperature": 0.3, "top_k": 10, "top_p": 0.9, "min_p": 0.1, "repetition_penalty": 1.1,
                "presence_penalty": 0.0, "frequency_penalty": 0.0},
    "balanced": {"temperature": 0.8, "top_k": 0, "top_p": 0.95, "min_p": 0.05, "repetition_penalty": 1.05,
                 "presence_penalty": 0.0, "frequency_penalty": 0.0},
    "creative": {"temperature": 1.1, "top_k": 0, "top_p": 1.0, "min_p": 0.05, "repetition_penalty": 1.0,
                 "presence_penalty": 0.0, "frequency_penalty": 0.0},
}
MAX_PRESETS = 64
MAX_NAME = 32


def check_name(name: object) -> str:
    """A preset name: 1-32 printable characters, no spaces. Raises SamplingError."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or printable(name) != name or " " in name:
        raise SamplingError(f"a preset name is 1 to {MAX_NAME} printable characters without spaces")
    if name == "save":
        raise SamplingError("'save' cannot be a preset name: /preset save NAME saves one")
    return name


def values_of(params: SamplingParams) -> dict:
    return {k: getattr(params, k) for k in PRESET_FIELDS}


def valid_preset(values: object) -> bool:
    """A preset read from the settings file: the preset fields (those added later may be
    missing), each valid, and nothing else."""
    if not isinstance(values, dict) or not set(REQUIRED_FIELDS) <= set(values) <= set(PRESET_FIELDS):
        return False
    try:
        SamplingParams(**values).validate()
    except (SamplingError, TypeError, ValueError, OverflowError):
        return False
    return True


def find(name: str, user: dict) -> dict | None:
    """The values of preset ``name`` (every preset field): the user's own first, then the built-in ones."""
    values = user.get(name) or BUILTIN.get(name)
    return None if values is None else {k: {**OFF, **values}[k] for k in PRESET_FIELDS}


def names(user: dict) -> list[str]:
    return list(BUILTIN) + [n for n in user if n not in BUILTIN]
