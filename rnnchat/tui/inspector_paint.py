"""The inspector's colours: a diverging scale (blue below the centre, red above), its legend, and
the text of one turn coloured by a :class:`~rnnchat.session.inspector.Reading`, with the cursor."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from rich.color import Color, blend_rgb
from rich.style import Style
from rich.text import Text

from rnnchat.core.safe_text import printable
from rnnchat.tui.widgets.transcript import USER_DISPLAY_LIMIT

if TYPE_CHECKING:
    from rnnchat.session.inspector import Reading, TurnColours

STEPS = 8  # colour levels each side of the centre
NEUTRAL, BLUE, RED = Color.parse("#303030").triplet, Color.parse("#2c7bb6").triplet, Color.parse("#d7191c").triplet
CURSOR = Style(reverse=True, bold=True, underline=True)


@lru_cache(maxsize=2 * STEPS + 1)
def level_style(level: int) -> Style:
    """The style of a level from -STEPS (full blue) through 0 (no colour) to +STEPS (full red)."""
    if level == 0:
        return Style()
    rgb = blend_rgb(NEUTRAL, RED if level > 0 else BLUE, abs(level) / STEPS)
    return Style(bgcolor=Color.from_triplet(rgb), color="#ffffff" if abs(level) > STEPS // 2 else None)


def level(x: float) -> int:
    """A value on the scale ([-1, 1]) -> its colour level."""
    return int(round(x * STEPS))


def legend(reading: "Reading") -> Text:
    """'layer 2 unit 442 c (cell state) · blue -2.83 ▆▆▆ … red +2.83 · auto: line_position r -0.86'."""
    out = Text()
    out.append(f"layer {reading.layer} unit {reading.index} {reading.quantity}", style="bold")
    out.append(f" ({printable(reading.description, 30)}) · ", style="dim")
    low, high = reading.centre - reading.half, reading.centre + reading.half
    out.append(f"blue {low:+.3g} ")
    for k in range(-STEPS, STEPS + 1, 2):
        out.append(" ", style=level_style(k))
    out.append(f" red {high:+.3g}")
    if reading.chosen_by:
        out.append(f" · auto: {reading.chosen_by}", style="dim")
        if reading.r is not None:
            out.append(f" r {reading.r:+.2f} over {reading.ranked_over}", style="dim")
    out.append(f" · {len(reading.text):,} characters read", style="dim")
    if reading.skipped:
        out.append(f" (the last turns; the first {reading.skipped} not)", style="dim")
    return out


def shown_range(role: str, text: str, start: int) -> tuple[int, int]:
    """The part of a turn's text that its view shows, as ``TurnView.render`` cuts it: after the
    speaker line and leading blank lines, without trailing whitespace, a user turn at most
    USER_DISPLAY_LIMIT characters."""
    if role == "model":
        start = len(text) - len(text[start:].lstrip("\n"))
    end = start + len(text[start:].rstrip())
    if role == "user":
        end = min(end, start + USER_DISPLAY_LIMIT)
    return start, end


def painter(reading: "Reading", colours: "TurnColours", cursor_at):
    """``paint(shown text, start)`` for a TurnView: each character with its unit's colour;
    ``cursor_at()`` is the position (into the characters read) under the cursor, or -1."""
    positions, values = colours.positions, reading.values

    def paint(shown: str, start: int) -> Text:
        out = Text()
        cursor = cursor_at()
        for k, ch in enumerate(shown):
            pos = int(positions[start + k]) if start + k < len(positions) else -1
            if pos < 0:
                out.append(ch)
                continue
            style = level_style(level(reading.scaled(float(values[pos])))) + Style.from_meta({"inspect": start + k})
            out.append(ch, style + CURSOR if pos == cursor else style)  # the meta: a click moves the cursor here
        return out

    return paint


def char_name(ch: str) -> str:
    return {"\n": "↵ newline", " ": "␠ space", "\t": "⇥ tab"}.get(ch, repr(printable(ch)))
