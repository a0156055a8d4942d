"""``rnnchat probe --html FILE``: the text coloured by one unit, as in Karpathy et al. (2015)'s figures.

Every character is a ``<span>`` whose background shows the unit's activation
after reading it (blue below zero, red above; gates from 0 to 1 are centred on
0.5), with the exact value in its tooltip. The text is HTML-escaped; the page is
written atomically, and only to a regular file.
"""

from __future__ import annotations

import html
import math
import os
import stat
from pathlib import Path

from rnnchat.core.atomic import write_bytes
from rnnchat.engine.probe_stats import scale_for
from rnnchat.core.errors import RnnchatError

STYLE = """body{font-family:sans-serif;margin:2em;max-width:60em}
pre{font-family:monospace;font-size:14px;line-height:1.5;white-space:pre-wrap;word-break:break-all}
pre span{border-radius:2px}.legend span{display:inline-block;width:2.5em;text-align:center;font-family:monospace}"""


def colour(value: float) -> str:
    """A value in [-1, 1] -> white through red (positive) or blue (negative)."""
    v = max(-1.0, min(1.0, value)) if math.isfinite(value) else 0.0
    fade = int(round(255 * (1 - abs(v))))
    return f"rgb(255,{fade},{fade})" if v >= 0 else f"rgb({fade},{fade},255)"


def _visible(ch: str) -> str:
    if ch == "\n":
        return "\u21b5\n"  # the newline shows as a coloured mark, then breaks the line
    if ch == "\t" or (ch.isprintable() and ch not in "\u2028\u2029"):
        return ch
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def render(text: str, values, title: str, note: str, kind: str) -> str:
    if len(values) != len(text):
        raise ValueError(f"{len(text)} characters but {len(values)} values")
    centre, half, how = scale_for(kind, values)
    spans = []
    for ch, v in zip(text, values):
        v = float(v)
        spans.append(f'<span style="background:{colour((v - centre) / half)}" title="{v:.4f}">'
                     f"{html.escape(_visible(ch))}</span>")
    legend = "".join(f'<span style="background:{colour(x)}">{centre + x * half:.2g}</span>'
                     for x in (-1, -0.5, 0, 0.5, 1))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(note)}</p>\n"
            f"<p class=\"legend\">colour: {html.escape(how)} {legend}</p>\n"
            f"<pre>{''.join(spans)}</pre>\n</body></html>\n")


def write_page(path: str | os.PathLike, page: str) -> Path:
    """Write ``page`` atomically to ``path``; refuse anything that exists and is not a regular file."""
    path = Path(path).expanduser()
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise RnnchatError(f"--html {path}: {exc.strerror or exc}") from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode) \
            else "not a regular file"
        raise RnnchatError(f"--html {path} is {what}; give the path of a regular file")
    if not path.parent.is_dir():
        raise RnnchatError(f"--html {path}: the folder {path.parent} does not exist")
    try:
        write_bytes(path, page.encode("utf-8"))
    except OSError as exc:
        raise RnnchatError(f"--html {path}: could not write it: {exc.strerror or exc}") from None
    return path
