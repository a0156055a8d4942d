"""The side panel: the model, the sampling values (temperature as a live control) and speed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from rnnchat.core.params import SamplingParams
from rnnchat.core.safe_text import printable
from rnnchat.tui.confidence import legend

if TYPE_CHECKING:
    from rnnchat.session.types import Turn

TEMP_STEP = 0.05
TEMP_SCALE = 2.0  # the control's bar spans 0 .. 2 (higher values are allowed, shown as a full bar)


def fmt_params(n: int | None) -> str:
    if not n:
        return "-"
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(n)


class TemperatureControl(Widget):
    """A focusable slider: arrow keys (shift: bigger steps), mouse click on the bar, mouse wheel."""

    can_focus = True
    BINDINGS = [
        Binding("right,up", "nudge(1)", "Warmer", show=False),
        Binding("left,down", "nudge(-1)", "Cooler", show=False),
        Binding("shift+right,shift+up,pageup", "nudge(5)", "Much warmer", show=False),
        Binding("shift+left,shift+down,pagedown", "nudge(-5)", "Much cooler", show=False),
        Binding("home", "set(0)", "Greedy", show=False),
    ]
    DEFAULT_CSS = """
    TemperatureControl { height: 2; }
    """
    value: reactive[float] = reactive(SamplingParams().temperature)

    class Changed(Message):
        """The user moved the control."""

        def __init__(self, slider: "TemperatureControl", value: float) -> None:
            super().__init__()
            self.slider, self.value = slider, value

        @property
        def control(self) -> "TemperatureControl":
            return self.slider

    def _request(self, value: float) -> None:
        value = round(min(max(value, 0.0), 100.0), 2)
        self.value = value  # at once, so quick repeated keys add up; the app then applies it
        self.post_message(self.Changed(self, value))

    def action_nudge(self, steps: int) -> None:
        self._request(self.value + steps * TEMP_STEP)

    def action_set(self, value: float) -> None:
        self._request(value)

    def _bar_width(self) -> int:
        return max(self.size.width - 2, 4)

    def on_click(self, event: events.Click) -> None:
        if event.y == 1:  # the bar line
            x = min(max(event.x - 1, 0), self._bar_width() - 1)
            self._request(round(x / (self._bar_width() - 1) * TEMP_SCALE / TEMP_STEP) * TEMP_STEP)
        self.focus()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.action_nudge(1)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.action_nudge(-1)

    def render(self) -> Text:
        w = self._bar_width()
        frac = min(self.value / TEMP_SCALE, 1.0)
        knob = round(frac * (w - 1))
        out = Text(no_wrap=True, overflow="crop")
        out.append("Temperature ", style="bold")
        mood = "greedy" if self.value == 0 else "calm" if self.value < 0.5 else "balanced" \
            if self.value <= 1.0 else "wild" if self.value <= 1.6 else "chaotic"
        out.append(f"{self.value:.2f}", style="bold")
        if len(out) + 1 + len(mood) <= self.size.width:
            out.append(f" {mood}", style="dim")
        out.append("\n ")
        out.append("━" * knob, style="#f0964b" if self.value > 1.0 else "#6fb3d2")
        out.append("●", style="bold")
        out.append("─" * (w - 1 - knob), style="dim")
        return out


class SidePanel(VerticalScroll):
    """Model facts, sampling values, last reply speed, confidence legend."""

    can_focus = False  # Tab goes to the temperature control inside it

    def compose(self):
        yield Static("Model", classes="section")
        yield Static("loading…", id="model-name")
        yield Static("", id="model-facts")
        yield Static("Sampling", classes="section")
        yield TemperatureControl(id="temperature")
        yield Static("", id="sampling")
        yield Static("Last reply", classes="section")
        yield Static("-", id="speed")
        yield Static("Confidence", classes="section")
        yield Static("", id="confidence")

    def show_model(self, info, loading: str | None = None, error: str | None = None) -> None:
        name = self.query_one("#model-name", Static)
        facts = self.query_one("#model-facts", Static)
        if loading:
            name.update(Text.assemble((loading, "bold"), (" loading…", "dim italic")))
            facts.update("")
            return
        if info is None:
            name.update(Text("no model", style="bold red"))
            facts.update(Text("could not load: see the message in the chat; ctrl+l picks another"
                              if error else "", style="dim"))
            return
        name.update(Text(printable(info.name), style="bold"))
        loss = f"{info.val_loss:.3f}" if isinstance(info.val_loss, (int, float)) else "-"
        t = Text()
        for key, value in (("cell", f"{info.cell} {info.layers}×{info.hidden}"),
                           ("params", fmt_params(info.parameters)), ("device", info.device), ("val loss", loss)):
            t.append(f"{key:<10}", style="dim")
            t.append(f"{value}\n")
        t.rstrip()
        facts.update(t)

    def show_params(self, params) -> None:
        self.query_one(TemperatureControl).value = params.temperature
        t = Text()
        rows = (("top-k", str(params.top_k) if params.top_k else "off"),
                ("top-p", f"{params.top_p:.2f}"),
                ("min-p", f"{params.min_p:g}" if params.min_p else "off"),
                ("repeat", "off" if params.repetition_penalty == 1.0 else f"{params.repetition_penalty:g}"),
                ("presence", f"{params.presence_penalty:g}" if params.presence_penalty else "off"),
                ("frequency", f"{params.frequency_penalty:g}" if params.frequency_penalty else "off"),
                ("max length", f"{params.max_chars}"),
                ("seed", "random" if params.seed is None else str(params.seed)))
        for key, value in rows:
            t.append(f"{key:<11}", style="dim")
            t.append(f"{value}\n")
        t.rstrip()
        self.query_one("#sampling", Static).update(t)

    def show_speed(self, turn: "Turn | None") -> None:
        if turn is None or not turn.chars_per_s:
            self.query_one("#speed", Static).update(Text("-", style="dim"))
            return
        t = Text()
        t.append(f"{turn.chars_per_s:,.0f}", style="bold")
        t.append(" chars/s\n", style="dim")
        t.append(f"{len(turn.text)} chars", style="dim")
        if turn.first_char_ms is not None:
            t.append(f"\nfirst char {turn.first_char_ms:,.0f} ms", style="dim")
            if turn.read_ahead:
                t.append(f"\n{turn.read_ahead:,} chars read ahead", style="dim")
        self.query_one("#speed", Static).update(t)

    def show_confidence(self, on: bool, key: str) -> None:
        t = Text()
        t.append("on" if on else "off", style="bold" if on else "dim")
        t.append(f"  ({key})\n", style="dim")
        if on:
            t.append_text(legend())
        self.query_one("#confidence", Static).update(t)
