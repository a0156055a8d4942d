"""Named sampling presets: built-in ones and the user's own (kept in the settings file).

A preset holds the sampling values that shape the text (temperature, top-k, top-p,
repetition penalty); the seed and the maximum length stay as they are. Torch-free."""

from __future__ import annotations

from rnnchat.errors import SamplingError
from rnnchat.params import SamplingParams
from rnnchat.safe_text import printable

PRESET_FIELDS = ("temperature", "top_k", "top_p", "repetition_penalty")
BUILTIN: dict[str, dict] = {
    "precise": {"temperature": 0.3, "top_k": 10, "top_p": 0.9, "repetition_penalty": 1.1},
    "balanced": {"temperature": 0.8, "top_k": 0, "top_p": 0.95, "repetition_penalty": 1.05},
    "creative": {"temperature": 1.1, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0},
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
    """A preset read from the settings file: exactly the preset fields, each valid."""
    if not isinstance(values, dict) or set(values) != set(PRESET_FIELDS):
        return False
    try:
        SamplingParams(**values).validate()
    except (SamplingError, TypeError, ValueError, OverflowError):
        return False
    return True


def find(name: str, user: dict) -> dict | None:
    """The values of preset ``name``: the user's own first, then the built-in ones."""
    return user.get(name) or BUILTIN.get(name)


def names(user: dict) -> list[str]:
    return list(BUILTIN) + [n for n in user if n not in BUILTIN]
