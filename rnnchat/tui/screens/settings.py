"""Sampling settings: every value with its current value, its range and what it does, each
editable. A value is checked exactly as its ``/command`` checks it (same messages); a bad one
shows its error under the row and the old value stays in use. A good one applies through the
same handler as the ``/command`` (``app.set_params``), so the reply in flight follows it from
its very next character."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from rnnchat.core.errors import SamplingError

# the SamplingParams fields shown, in order (each is also the id of its action in tui/actions.py),
# with the range as the screen says it (SamplingParams.validate is the rule)
RANGES = {
    "temperature": "0 to 100",
    "top_k": "0 (off) or more",
    "top_p": "(0, 1], 1 is off",
    "min_p": "[0, 1), 0 is off",
    "repetition_penalty": "(0, 100], 1 is off",
    "presence_penalty": "-2 to 2, 0 is off",
    "frequency_penalty": "-2 to 2, 0 is off",
    "max_chars": "1 to 1,000,000",
    "seed": "0 to 2^63-1, or off",
}
FIELDS = tuple(RANGES)


def shown(params, field: str) -> str:
    """A value as the input shows it (and as its /command reads it back)."""
    value = getattr(params, field)
    if value is None:
        return "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


class SettingsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"),
                # priority: before the scroll container's own up/down (the focused row scrolls into view)
                Binding("down", "app.focus_next", "Next", show=False, priority=True),
                Binding("up", "app.focus_previous", "Previous", show=False, priority=True)]
    DEFAULT_CSS = """
    SettingsScreen .setting { height: auto; margin: 0 0 1 0; }
    SettingsScreen .setting-line { height: 1; }
    SettingsScreen .setting-name { width: 12; text-style: bold; }
    SettingsScreen .setting-input { width: 12; }
    SettingsScreen .setting-range { width: 1fr; color: $text-muted; padding: 0 0 0 2; }
    SettingsScreen .setting-help { color: $text-muted; }
    SettingsScreen .setting-help.-error { color: $error; }
    """

    def compose(self) -> ComposeResult:
        from rnnchat.tui.actions import BY_ID

        params = self.app.params
        self._shown = {field: shown(params, field) for field in FIELDS}  # what each row was given
        with Vertical(classes="dialog"):
            yield Static("Sampling settings", classes="dialog-title")
            with VerticalScroll(id="settings-scroll"):
                for field in FIELDS:
                    action = BY_ID[field]
                    with Vertical(classes="setting", id=f"row-{field}"):
                        with Horizontal(classes="setting-line"):
                            yield Static(Text(f"/{action.command}"), classes="setting-name")
                            yield Input(self._shown[field], id=f"set-{field}", classes="setting-input",
                                        compact=True, select_on_focus=True)
                            yield Static(Text(RANGES[field]), classes="setting-range")
                        yield Static(Text(action.command_help), classes="setting-help", id=f"help-{field}")
            yield Static("Enter applies (from the next character) · ↑↓ moves · Esc closes",
                         classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one(f"#set-{FIELDS[0]}", Input).focus()
        self.set_interval(0.5, self.refresh_values)

    def on_screen_resume(self) -> None:
        self.refresh_values()

    def refresh_values(self) -> None:
        """Show values changed elsewhere (ctrl+↑, a preset) in the rows the user has not edited."""
        params = self.app.params
        for field in FIELDS:
            box = self.query_one(f"#set-{field}", Input)
            if box.value == self._shown[field]:
                self._show_value(box, field, shown(params, field))

    def _show_value(self, box: Input, field: str, value: str) -> None:
        self._shown[field] = value
        if box.value != value:
            box.value = value

    @on(Input.Submitted, ".setting-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self.apply(event.input)

    @on(Input.Blurred, ".setting-input")
    def _left(self, event: Input.Blurred) -> None:
        if self.app.screen is self:  # moving to another row applies; Esc closes without applying
            self.apply(event.input)

    def apply(self, box: Input) -> bool:
        """Check the row's text as its /command would and apply it; False (the error under the
        row, the old value in use) if it is not a valid value."""
        from rnnchat.tui.actions import BY_ID, CommandError

        field = (box.id or "").removeprefix("set-")
        if field not in RANGES:
            return False
        app = self.app
        if box.value.strip() == shown(app.params, field):
            self._show_error(field, None)
            self._show_value(box, field, box.value)
            return True
        action = BY_ID[field]
        try:
            args = action.parse(box.value.strip(), action.command)
            if field == "temperature":  # its handler rounds to 2 places, as the control does
                args = (round(float(args[0]), 2),)
            app.params.replace(**{field: args[0]})  # the value's own check, with its message
        except (CommandError, SamplingError) as exc:
            self._show_error(field, str(exc))
            return False
        action.handler(app, *args)
        self._show_error(field, None)
        self._show_value(box, field, shown(app.params, field))
        return True

    def _show_error(self, field: str, error: str | None) -> None:
        from rnnchat.tui.actions import BY_ID

        help_line = self.query_one(f"#help-{field}", Static)
        help_line.set_class(error is not None, "-error")
        help_line.update(Text(error if error is not None else BY_ID[field].command_help))
