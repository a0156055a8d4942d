"""How a chat turn is framed for the model, and how the model's speaker name is read back. Torch-free.

A checkpoint's chat template frames the user's text, e.g. ``"YOU:\\n{text}\\n\\n"`` for the
Shakespeare model, which then answers as a speech ``"ROMEO:\\n..."`` ending in the stop
sequence ``"\\n\\n"``. When the template itself starts with such a ``NAME:`` line, the model's
first line is taken as the name of its speaker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEAKER_TEMPLATE = re.compile(r"^[^\n{}]{1,40}:\n")
_SPEAKER_LINE = re.compile(r"^\s*([^\s:][^:\n]{0,39}?)[ \t]*:[ \t]*(?:\n|$)")


@dataclass(frozen=True)
class Framing:
    template: str = "{text}"
    stop: tuple[str, ...] = ()

    @classmethod
    def from_meta(cls, meta: dict) -> "Framing":
        chat = meta.get("chat") or {}
        template = str(chat.get("template") or "{text}")
        stop = tuple(s for s in (chat.get("stop") or ()) if isinstance(s, str) and s)
        return cls(template, stop)

    @property
    def has_speakers(self) -> bool:
        """True when turns are speeches headed by a ``NAME:`` line."""
        return bool(_SPEAKER_TEMPLATE.match(self.template))

    def frame(self, text: str, close_previous: bool = False) -> str:
        """The characters to feed for a user turn. ``close_previous`` first ends a model turn
        that was cut short (stopped or at max length) with the stop sequence, so the framing
        the model was trained on stays intact."""
        closing = self.stop[0] if close_previous and self.stop else ""
        return closing + self.template.replace("{text}", text)

    def head(self, text: str, close_previous: bool = False) -> str | None:
        """What :meth:`frame` starts with up to the end of ``text``: the part a draft can be read
        ahead (see ``readahead.py``). None when the template does not contain ``{text}``."""
        i = self.template.find("{text}")
        if i < 0:
            return None
        closing = self.stop[0] if close_previous and self.stop else ""
        return closing + self.template[:i] + text

    def split_speaker(self, text: str, final: bool = True) -> tuple[str | None, int]:
        """(speaker, index where the speech starts) for a model reply; (None, 0) when there is no
        speaker line. While a reply streams (``final=False``) the first line counts only once its
        newline has arrived, so "ROMEO: but soft" on one line is not taken for a name."""
        if not self.has_speakers:
            return None, 0
        m = _SPEAKER_LINE.match(text)
        if not m or (not final and not m.group(0).endswith("\n")):
            return None, 0
        return m.group(1), m.end()
