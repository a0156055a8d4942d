"""Per-character confidence: colour model text by the probability the model gave each character.

Sure characters keep the normal text colour; the less sure the model was, the warmer the
colour, and characters it truly guessed (under 5 %) get a tinted background, like a
highlighter over the places where the text could have gone another way.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

# (lowest probability of the bucket, style, legend label)
BUCKETS: tuple[tuple[float, Style, str], ...] = (
    (0.80, Style(), "≥80%"),
    (0.50, Style(color="#e6c86e"), "50–80%"),
    (0.20, Style(color="#f0964b"), "20–50%"),
    (0.05, Style(color="#ff6b6b", bold=True), "5–20%"),
    (0.00, Style(color="#ffe0e6", bgcolor="#8a1f3c", bold=True), "<5%"),
)


def bucket(p: float) -> int:
    for i, (low, _, _) in enumerate(BUCKETS):
        if p >= low:
            return i
    return len(BUCKETS) - 1


def coloured(text: str, probs, base: Style | None = None) -> Text:
    """``text`` with one style per run of characters in the same confidence bucket."""
    out = Text(style=base or "")
    if not text:
        return out
    n = min(len(text), len(probs))
    start = 0
    current = bucket(probs[0]) if n else 0
    for i in range(1, n):
        b = bucket(probs[i])
        if b != current:
            out.append(text[start:i], BUCKETS[current][1])
            start, current = i, b
    if n:
        out.append(text[start:n], BUCKETS[current][1])
    if n < len(text):  # no probabilities (should not happen): plain
        out.append(text[n:])
    return out


def legend() -> Text:
    out = Text()
    for i, (_, style, label) in enumerate(BUCKETS):
        if i:
            out.append(" ")
        out.append(f" {label} " if style.bgcolor else label, style if style.color else Style(dim=False))
    return out
