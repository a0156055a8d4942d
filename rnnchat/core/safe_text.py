"""Text from files, plugins and the environment, made safe to show on a terminal.

A checkpoint's metadata, a corpus name, a plugin's description or a history
title can hold control characters: ESC starts a terminal sequence (OSC 52 writes
the clipboard, OSC 0 the window title), C1 codes (U+0080-U+009F) do the same on
some terminals, and bidi overrides reorder what the reader sees. ``printable``
shows every such character as a visible escape (``\\x1b``, ``\\u202e``); ordinary
text, including non-ASCII letters and emoji, is left as it is.
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide text
_UNSAFE = ("[\x00-\x1f\x7f-\x9f\u061c\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")

_UNSAFE_IN_JSON = ("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")


def _escape(match: re.Match) -> str:
    c = match.group()
    return repr(c)[1:-1] if repr(c)[1:-1] != c else f"\\u{ord(c):04x}"


def printable(value, limit: int | None = None) -> str:
    """``str(value)`` with control, escape and bidi characters shown escaped (one line, never raw)."""
    text = value if isinstance(value, str) else str(value)
    text = re.sub(_UNSAFE, _escape, text)  # compiled on first use (re caches it)
    text = "".join(c if c == "\u200d" or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
                   else f"\\u{ord(c):04x}" for c in text) if not text.isprintable() else text
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "…"
    return text


def markup_safe(value, limit: int | None = None) -> str:
    """``printable`` and with rich markup escaped: for strings that go through rich/Textual markup."""
    from rich.markup import escape

    return escape(printable(value, limit))


def json_safe(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with unsafe characters as ``\\uXXXX``
    escapes: still valid JSON that loads to the same values, never raw control codes. (JSON already
    escapes C0 characters inside strings; the newlines and spaces left are the layout's own.)"""
    return re.sub(_UNSAFE_IN_JSON, lambda m: f"\\u{ord(m.group()):04x}", text)
