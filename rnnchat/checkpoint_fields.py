"""Optional one-line text fields of a checkpoint's metadata: ``hint`` (what to type, e.g. the
Tang model's "a poem title, e.g. 春望") and ``description``. Torch-free.

The metadata is untrusted: a field that is not a string, is empty or too long, or holds a
line break, is ignored (None), never shown raw. Callers display it through
``rnnchat.safe_text.markup_safe`` (or as a plain ``Text``)."""

from __future__ import annotations

LIMITS = {"hint": 120, "description": 300}


def text_field(meta: object, name: str) -> str | None:
    """``meta[name]`` when it is a usable one-line text, else None."""
    if not isinstance(meta, dict) or name not in LIMITS:
        return None
    value = meta.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > LIMITS[name] or any(c in value for c in "\r\n\x85\u2028\u2029"):
        return None
    return value
