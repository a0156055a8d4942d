"""Help: chat commands and keys."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static



def help_table(keys: list[tuple[str, str]], commands: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row(Text("Chat commands", style="bold underline"), "")
    for cmd, text in commands:
        table.add_row(cmd, text)
    table.add_row("", "")
    table.add_row(Text("Keys", style="bold underline"), "")
    for key, text in keys:
        table.add_row(key, text)
    table.add_row("", "")
    table.add_row(Text("Temperature", style="bold underline"), "")
    table.add_row("", "Change it while a reply streams: the very next character follows. Tab to the "
                      "control in the panel and use the arrow keys, click its bar, or scroll on it.")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1", "dismiss(None)", "Close")]

    def __init__(self, keys: list[tuple[str, str]], commands: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys, self.commands = keys, commands

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Help", classes="dialog-title")
            yield VerticalScroll(Static(help_table(self.keys, self.commands)), id="help-scroll")
            yield Static("Esc: close", classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()
