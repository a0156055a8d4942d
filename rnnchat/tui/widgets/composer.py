"""Composer: the multi-line input at the bottom of the chat.

Enter sends; shift+enter (where the terminal reports it) and ctrl+j (everywhere) insert a
newline; a paste keeps every character and line. ↑ on the first line and ↓ on the last
recall earlier messages (``recall``: this conversation's, then older ones, newest first;
the draft being written comes back after the newest). Tab completes a ``/command`` from
``commands`` (the action registry's names).
"""

from __future__ import annotations

from typing import Callable, Sequence

from textual import events
from textual.message import Message
from textual.widgets import TextArea

NEWLINE_KEYS = ("shift+enter", "ctrl+j")


class Composer(TextArea):
    class Submitted(Message):
        """Enter was pressed: ``value`` is the text to send."""

        def __init__(self, composer: "Composer", value: str) -> None:
            super().__init__()
            self.composer = composer
            self.value = value

        @property
        def control(self) -> "Composer":
            return self.composer

    def __init__(self, *, commands: Sequence[str] = (), recall: Callable[[], list[str]] = list, **kw) -> None:
        super().__init__(soft_wrap=True, tab_behavior="focus", show_line_numbers=False, compact=True, **kw)
        self.commands = tuple(sorted(set(commands)))
        self.recall = recall  # () -> earlier messages, newest first
        self._recalled: list[str] | None = None  # the list being walked with ↑/↓
        self._recall_at = -1  # -1: the draft
        self._draft = ""

    # a value like Input's, so callers need not care that it is a TextArea
    @property
    def value(self) -> str:
        return self.text

    @value.setter
    def value(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return key in ("enter", *NEWLINE_KEYS) or super().check_consume_key(key, character)

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            event.stop()
            event.prevent_default()
            self._recalled = None
            self.post_message(self.Submitted(self, self.text))
            return
        if key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if key == "tab" and self.complete():
            event.stop()
            event.prevent_default()
            return
        if key == "up" and self.cursor_at_first_line and self._walk(1):
            event.stop()
            event.prevent_default()
            return
        if key == "down" and self.cursor_at_last_line and self._walk(-1):
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)

    def _on_paste(self, event: events.Paste) -> None:
        """TextArea's own handler inserts the paste (Textual calls each class's ``_on_paste``);
        stopping it here keeps it from bubbling to the app, which would insert it again."""
        event.stop()

    # ---- Tab: /commands -----------------------------------------------------------------
    def completions(self, text: str) -> list[str]:
        if not text.startswith("/") or " " in text or "\n" in text:
            return []
        return [c for c in self.commands if c.startswith(text[1:].lower())]

    def complete(self) -> bool:
        """Complete the /command being typed: a single match fully (with a space), several to
        their common prefix (the app is told the candidates). False: nothing to complete."""
        found = self.completions(self.text)
        if not found:
            return False
        if len(found) == 1:
            self.value = f"/{found[0]} "
            return True
        prefix = found[0]
        for c in found[1:]:
            while not c.startswith(prefix):
                prefix = prefix[:-1]
        self.value = f"/{prefix}"
        self.app.notify("  ".join(f"/{c}" for c in found), title="Commands", timeout=4, markup=False)
        return True

    # ---- ↑/↓: recall ----------------------------------------------------------------------
    def _walk(self, step: int) -> bool:
        if self._recalled is None:
            if step < 0:
                return False
            self._recalled = list(self.recall())
            self._recall_at = -1
            self._draft = self.text
        at = self._recall_at + step
        if at < -1 or at >= len(self._recalled):
            return at >= len(self._recalled) and bool(self._recalled)  # at the oldest: stay
        self._recall_at = at
        self.load_text(self._draft if at == -1 else self._recalled[at])
        self.move_cursor((0, 0) if step > 0 else self.document.end)
        if at == -1:
            self._recalled = None
        return True
