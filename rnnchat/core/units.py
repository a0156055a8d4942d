"""Parsing of human-friendly values (torch-free)."""

from __future__ import annotations

import math
import re

import click

_DURATION = r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$"  # compiled on first use (re's cache): 3 ms at start-up
_FACTORS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def unescape(text: str) -> str:
    """Turn backslash escapes typed on a command line (\\n, \\t, \\\\, \\xHH, \\u2028, \\UHHHHHHHH,
    \\N{name}) into characters, leaving every other character, Chinese included, as it is.
    A backslash that starts no valid escape (``\\x`` without two hex digits, a trailing ``\\``)
    is a ValueError with one line saying so: a user who meant a backslash writes ``\\\\``."""
    if "\\" not in text:
        return text
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{text!r} has an invalid backslash escape ({exc.reason}); "
                         "write \\\\ for a backslash") from None


class Escaped(click.ParamType):
    """Text with backslash escapes (:func:`unescape`); an invalid escape is a usage error."""

    name = "text"

    def convert(self, value, param, ctx):
        try:
            return unescape(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def parse_duration(text: str) -> float:
    """Seconds from '90s', '10m', '2h' (a number without a unit is refused: 5 seconds or 5 minutes?)."""
    m = re.match(_DURATION, text or "", re.I)
    if not m:
        raise ValueError(f"{text!r} is not a duration: use e.g. 90s, 10m or 2h")
    if m.group(2) is None:
        number = m.group(1)
        raise ValueError(f"{text.strip()!r} has no unit: write {number}s or {number}m (or {number}h)")
    seconds = float(m.group(1)) * _FACTORS[(m.group(2) or "s").lower()]
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 30 * 86400:
        raise ValueError(f"{text!r} is out of range: between 1s and 30 days")
    return seconds


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class FiniteFloat(click.ParamType):
    """A float that refuses NaN and infinities, with optional bounds."""

    name = "number"

    def __init__(self, min=None, max=None, min_open=False, max_open=False):
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open

    def convert(self, value, param, ctx):
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(x):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.min is not None and (x < self.min or (self.min_open and x == self.min)):
            self.fail(f"{value} is too small (must be {'>' if self.min_open else '>='} {self.min})", param, ctx)
        if self.max is not None and (x > self.max or (self.max_open and x == self.max)):
            self.fail(f"{value} is too large (must be {'<' if self.max_open else '<='} {self.max})", param, ctx)
        return x
