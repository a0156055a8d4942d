"""The transcript: one widget per turn, plus notices (loading, errors, help)."""

from __future__ import annotations

from rich.console import Group
from rich.style import Style
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from rnnchat.session.framing import Framing
from rnnchat.tui.confidence import coloured

USER_DISPLAY_LIMIT = 20_000  # characters of a message shown in the transcript (the session gets all)
REASON_NOTES = {"cancelled": "stopped", "length": "length limit reached", "error": "failed"}


class TurnView(Widget):
    """One turn. A model turn grows while its reply streams (``append``) and is labelled with the
    speaker the model chose once the reply's first line names one."""

    DEFAULT_CSS = """
    TurnView { height: auto; }
    """

    def __init__(self, role: str, *, text: str = "", probs=(), model_name: str = "model",
                 framing: Framing | None = None, live: bool = False, reason: str | None = None,
                 confidence: bool = False, chars_per_s: float | None = None, number: int | None = None) -> None:
        super().__init__(classes=f"turn {role}")
        self.role = role
        self.number = number  # user turns: the N of /rewind N, shown before the label
        self.text = text
        self.streamed = ""  # everything that arrived through append(), kept for checks
        self.probs: list[float] = list(probs)
        self.model_name = model_name
        self.framing = framing or Framing()
        self.live = live
        self.reason = reason
        self.confidence = confidence
        self.chars_per_s = chars_per_s
        self.paint = None  # the inspector's colours: paint(shown text, its start in ``text``) -> Text
        self.pick = None  # the inspector's cursor: pick(view, index in ``text``) on a click on a painted character
        self.set_class(live, "-live")

    # ---- changes (UI thread only) ----------------------------------------------------------
    def append(self, text: str, probs) -> None:
        self.text += text
        self.streamed += text
        self.probs.extend(probs)
        # a new layout (and a repaint of everything it moves) only when the turn grew a line
        width = self.content_size.width
        if width and self.content_size.height == self._render().get_height(self.styles, width):
            self.refresh()
        else:
            self.refresh(layout=True)

    def resume(self) -> None:
        """A continue: the reply is live again; what arrives is appended to its text."""
        self.live, self.reason = True, None
        self.add_class("-live")
        self.remove_class("-stopped")
        self.refresh(layout=True)

    def finish(self, turn) -> None:
        """The reply ended: take the session's final text (the source of truth) and reason."""
        self.text = turn.text
        self.probs = list(turn.probs)
        self.reason = turn.reason
        self.chars_per_s = turn.chars_per_s
        self.live = False
        self.remove_class("-live")
        self.set_class(turn.reason == "cancelled", "-stopped")
        self.refresh(layout=True)

    def set_confidence(self, on: bool) -> None:
        if on != self.confidence:
            self.confidence = on
            self.refresh()

    def on_click(self, event) -> None:
        at = event.style.meta.get("inspect") if self.pick is not None else None
        if isinstance(at, int):
            self.pick(self, at)

    # ---- rendering ------------------------------------------------------------------------
    @property
    def speaker_split(self) -> tuple[str | None, int]:
        if self.role != "model":
            return None, 0
        return self.framing.split_speaker(self.text, final=not self.live)

    @property
    def label(self) -> str:
        if self.role == "user":
            return "You"
        speaker, _ = self.speaker_split
        return speaker or self.model_name

    def render(self) -> Group:
        speaker, start = self.speaker_split
        head = Text(self.label, style="bold")
        if self.number is not None:
            head = Text.assemble((f"#{self.number} ", "dim"), head)
        if self.role == "model":
            start += len(self.text) - start - len(self.text[start:].lstrip("\n"))  # leading blank lines
            if speaker:
                head.append(f"  {self.model_name}", style="dim")
            notes = []
            if self.live:
                notes.append("writing…")
            elif self.reason in REASON_NOTES:
                notes.append(REASON_NOTES[self.reason])
            if not self.live and self.chars_per_s:
                notes.append(f"{self.chars_per_s:,.0f} chars/s")
            if notes:
                head.append(" · " + " · ".join(notes), style="dim italic")
        body_text = self.text[start:]
        hidden = 0
        if self.role == "user" and len(body_text) > USER_DISPLAY_LIMIT:  # a huge paste: wrapping it all
            hidden = len(body_text) - USER_DISPLAY_LIMIT                  # on every resize froze the app
            body_text = body_text[:USER_DISPLAY_LIMIT]
        if self.paint is not None:
            body = self.paint(body_text, start)
        elif self.role == "model" and self.confidence:
            body = coloured(body_text, self.probs[start:])
        else:
            body = Text(body_text)
        body.rstrip()
        if hidden:
            body.append(f"… and {hidden:,} more characters (not shown; the model read them all)", style="dim italic")
        if self.live:
            body.append("▌", style=Style(blink=False, dim=True))
        return Group(head, body)


class Notice(Static):
    """A line or panel in the transcript that is not a turn: loading, errors, help, tips."""

    def __init__(self, content, kind: str = "info", id: str | None = None) -> None:
        super().__init__(content, classes=f"notice {kind}", id=id)
        self.kind = kind


class Transcript(VerticalScroll):
    """Turns and notices. Stays scrolled to the end while a reply streams, unless the user scrolls up."""

    can_focus = True

    def on_mount(self) -> None:
        self.anchor()

    def turn_views(self) -> list[TurnView]:
        return list(self.query(TurnView))

    def add_turn(self, view: TurnView) -> TurnView:
        self.mount(view)
        return view

    def add_notice(self, notice: Notice) -> Notice:
        self.mount(notice)
        return notice

    def remove_notices(self, kind: str | None = None) -> None:
        for n in self.query(Notice):
            if kind is None or n.kind == kind:
                n.remove()

    def clear(self) -> None:
        self.remove_children()
