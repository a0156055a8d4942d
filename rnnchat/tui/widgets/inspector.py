"""The inspector (F4, ``/inspect``): the transcript coloured by one unit, a legend, and the
strongest units at the character under its cursor.

It owns its reading: a thread worker asks the session to re-read the conversation
(``ChatSession.inspect``: the engine's thread, off the generation path) whenever the conversation
changed and no reply is being written, and the result paints the transcript's turn views. While
it has focus, ←/→ move the cursor one character, ↑/↓ one line, Home/End to the first/last
character; Esc goes back to the input. A click on a coloured character puts the cursor there.
"""

from __future__ import annotations

from bisect import bisect_right

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from rnnchat.session.inspect_target import Target
from rnnchat.tui.inspector_paint import char_name, legend, painter, shown_range
from rnnchat.tui.messages import one_line

POLL = 0.25  # seconds between looks at the conversation (a dict of lengths: nothing is read unless it changed)


def signature(session) -> tuple:
    """What the reading depends on: the session and every turn (identity, length fed, end)."""
    return (id(session),) + tuple((id(t), len(t.fed), t.reason) for t in session.turns)


class Inspector(Widget):
    can_focus = True
    BINDINGS = [
        Binding("left", "move(-1)", "Previous character", show=False),
        Binding("right", "move(1)", "Next character", show=False),
        Binding("up", "line(-1)", "Line up", show=False),
        Binding("down", "line(1)", "Line down", show=False),
        Binding("home", "jump(0)", "First character", show=False),
        Binding("end", "jump(-1)", "Last character", show=False),
        Binding("escape", "leave", "Back to the input", show=False),
    ]
    DEFAULT_CSS = """
    Inspector { height: auto; max-height: 8; padding: 0 1; border-top: solid $primary-darken-2; }
    Inspector:focus { border-top: solid $accent; }
    """

    class Read(Message):
        def __init__(self, reading, token: int) -> None:
            super().__init__()
            self.reading, self.token = reading, token

    class Failed(Message):
        def __init__(self, error: str, token: int) -> None:
            super().__init__()
            self.error, self.token = error, token

    def __init__(self, target: Target, **kw) -> None:
        super().__init__(**kw)
        self.target = target
        self.reading = None
        self.error: str | None = None
        self.busy = False  # a read is in flight
        self.sig: tuple | None = None  # the conversation last read (or tried)
        self.token = 0
        self.announce = True  # the next failure is also a notification (a command asked for this target)
        self.chars: list[tuple] = []  # (view, index in its text, position read), in the transcript's order
        self.line_starts: list[int] = []  # indices into chars where a line starts
        self.cursor = -1
        self._views: list = []  # the views painted
        self._index: dict[tuple[int, int], int] = {}  # (id(view), index in its text) -> index into chars

    # ---- reading ---------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.set_interval(POLL, self.poll)
        self.poll()

    def retarget(self, target: Target) -> None:
        self.target, self.sig, self.announce = target, None, True
        self.token += 1  # a read in flight was for the old target: its answer is dropped
        self.busy = False
        self.poll()

    def poll(self) -> None:
        app = self.app
        s = app.session
        if s is None or not s.loaded or app.chat.replying or app.loading_model is not None:
            return
        sig = signature(s)
        if sig != self.sig and not self.busy:
            self.sig, self.busy = sig, True
            self.token += 1
            self.refresh(layout=True)
            self._read(s, self.target, self.token)
        elif self.reading is not None and not self.busy:
            self.paint_views()  # the transcript was rebuilt (regenerate, reopen): paint the new views

    @work(thread=True, exclusive=True, group="inspect", exit_on_error=False)
    def _read(self, session, target: Target, token: int) -> None:
        try:
            reading = session.inspect(target)
        except Exception as exc:  # noqa: BLE001 - shown in one line (a bad unit, a constant feature)
            self.post_message(self.Failed(one_line(exc), token))
            return
        self.post_message(self.Read(reading, token))

    def on_inspector_read(self, message: Read) -> None:
        if message.token != self.token:
            return
        # the cursor stays on its character, unless it was on the last one: then it follows the end
        at = self.chars[self.cursor][2] if 0 <= self.cursor < len(self.chars) - 1 else None
        self.busy, self.reading, self.error, self.announce = False, message.reading, None, False
        self.paint_views(force=True)
        found = [i for i, c in enumerate(self.chars) if c[2] == at] if at is not None else []
        self.cursor = found[0] if found else len(self.chars) - 1
        self.refresh(layout=True)

    def on_inspector_failed(self, message: Failed) -> None:
        if message.token != self.token:
            return
        self.busy, self.reading, self.error = False, None, message.error
        self.unpaint()
        if self.announce:
            self.app.notify(message.error, severity="error", markup=False)
            self.announce = False
        self.refresh(layout=True)

    # ---- painting the transcript -----------------------------------------------------------
    def paint_views(self, force: bool = False) -> None:
        views = self.app.chat.transcript.turn_views()
        if (views == self._views and not force) or self.reading is None:
            return
        self.unpaint()
        turns = self.app.session.turns
        shown = [i for i, t in enumerate(turns) if t.role == "user" or t.reason is not None]
        by_turn = {c.turn: c for c in self.reading.turns}
        self.chars, self.line_starts, self._index = [], [], {}
        for view, i in zip(views, shown):
            colours = by_turn.get(i)
            if colours is None or colours.role != view.role or colours.text != view.text:
                continue
            view.paint = painter(self.reading, colours, self.cursor_position)
            view.pick = self._pick
            view.refresh()
            start, end = shown_range(view.role, view.text, view.speaker_split[1])
            new_line = True  # the next character read starts a line (↑/↓ move by them)
            for k in range(start, end):
                pos = int(colours.positions[k])
                if pos >= 0:
                    if new_line:
                        self.line_starts.append(len(self.chars))
                        new_line = False
                    self._index[(id(view), k)] = len(self.chars)
                    self.chars.append((view, k, pos))
                new_line = new_line or view.text[k] == "\n"
        self._views = views

    def unpaint(self) -> None:
        for view in self._views:
            if view.paint is not None:
                view.paint = view.pick = None
                view.refresh()
        self._views, self.chars, self.line_starts, self._index = [], [], [], {}

    def on_unmount(self) -> None:
        self.unpaint()

    def cursor_position(self) -> int:
        return self.chars[self.cursor][2] if 0 <= self.cursor < len(self.chars) else -1

    # ---- the cursor ------------------------------------------------------------------------
    def _go(self, i: int) -> None:
        if not self.chars:
            return
        i = min(max(i, 0), len(self.chars) - 1)
        old = self.chars[self.cursor][0] if 0 <= self.cursor < len(self.chars) else None
        self.cursor = i
        view = self.chars[i][0]
        for v in {old, view} - {None}:
            v.refresh()
        if view is not old:
            self.app.chat.transcript.scroll_to_widget(view, animate=False)
        self.refresh(layout=True)

    def _pick(self, view, k: int) -> None:
        """A click on a painted character: the cursor goes there, and the keys move it on."""
        i = self._index.get((id(view), k))
        if i is not None:
            self._go(i)
            self.focus()

    def action_move(self, step: int) -> None:
        self._go(self.cursor + step)

    def action_jump(self, where: int) -> None:
        self._go(where if where >= 0 else len(self.chars) - 1)

    def action_line(self, step: int) -> None:
        if not self.line_starts:
            return
        line = bisect_right(self.line_starts, self.cursor) - 1
        target = min(max(line + step, 0), len(self.line_starts) - 1)
        end = self.line_starts[target + 1] - 1 if target + 1 < len(self.line_starts) else len(self.chars) - 1
        self._go(min(self.line_starts[target] + self.cursor - self.line_starts[line], end))

    def action_leave(self) -> None:
        self.app.chat.input.focus()

    # ---- the panel ---------------------------------------------------------------------------
    def render(self) -> Text:
        out = Text(no_wrap=False)
        if self.error:
            out.append("inspector: ", style="bold")
            out.append(self.error, style="red")
        elif self.reading is None:
            out.append(f"inspector ({self.target.describe()}): reading the conversation…", style="dim italic")
        else:
            out.append_text(legend(self.reading))
            if self.busy:
                out.append(" · reading…", style="dim italic")
            out.append("\n")
            out.append_text(self._at_cursor())
        key = self.app.keys.get("inspect") if isinstance(getattr(self.app, "keys", None), dict) else None
        out.append(f"\n←/→ character · ↑/↓ line · Home/End · Esc back to the input · {key + ' or ' if key else ''}"
                   "/inspect off closes", style="dim")
        return out

    def _at_cursor(self) -> Text:
        if not 0 <= self.cursor < len(self.chars):
            return Text("nothing read is shown yet", style="dim")
        view, k, pos = self.chars[self.cursor]
        r = self.reading
        who = f"#{view.number} {view.label}" if view.number is not None else view.label
        out = Text()
        out.append(f"at {char_name(view.text[k])}", style="bold")
        out.append(f" ({who}, character {pos:,} read) · {r.label} ", style="dim")
        out.append(f"{float(r.values[pos]):+.3f}", style="bold")
        out.append("\nstrongest here: ", style="dim")
        for n, (label, value) in enumerate(r.strongest(pos)):
            out.append(("" if not n else "  ") + label + " ")
            out.append(f"{value:+.2f}", style="#e06c60" if value > 0 else "#6fa8dc")
        return out
