"""Saved conversations: pick one to reopen it, with its settings and exact state."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from rnnchat.core.safe_text import printable
from rnnchat.tui.messages import one_line
from rnnchat.tui.screens.fetched import FetchedScreen

if TYPE_CHECKING:
    from rnnchat.session.history import HistoryStore


class HistoryScreen(FetchedScreen):
    """Dismisses with (conversation id, model name)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("delete", "delete", "Delete")]

    def __init__(self, store: "HistoryStore", current_id: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.current_id = current_id
        self.rows = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Conversations", classes="dialog-title")
            yield Static("Reading the history…", id="history-status", classes="dim")
            yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
            yield Static("Enter: reopen and continue · Del: delete · Esc: close", classes="dialog-help")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("When", "Model", "Turns", "Started with")
        table.focus()
        self.fetch()

    def load(self) -> list:
        return self.store.list()

    def on_fetched_screen_listed(self, message: FetchedScreen.Listed) -> None:
        """Warnings first (a damaged history moved aside, say). Textual then runs the base
        class's handler, which shows the rows or the error: no super() call here."""
        for warning in self.store.take_warnings():
            self.notify(warning, title="Chat history", severity="warning", markup=False, timeout=15)

    def show_error(self, error: str) -> None:
        self.query_one("#history-status", Static).update(Text(f"Could not read the history: {error}", style="red"))

    def show(self, rows: list) -> None:
        status = self.query_one("#history-status", Static)
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in self.rows:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.updated))
            title = Text(printable(r.title), style="bold" if r.id == self.current_id else "")
            model = Text(printable(r.model.replace("\\", "/").rsplit("/", 1)[-1]))  # opened by path: its file name
            table.add_row(when, model, str(r.turns), title, key=str(r.id))
        status.update(Text(f"{len(self.rows)} conversation(s) in {self.store.path}" if self.rows
                           else "No saved conversations yet: they are saved after each reply.", style="dim"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        conv_id = int(event.row_key.value)
        row = next((r for r in self.rows if r.id == conv_id), None)
        if row is not None:
            self.dismiss((conv_id, row.model))

    def action_delete(self) -> None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return
        row = self.rows[table.cursor_row]
        try:
            self.store.delete(row.id)
        except Exception as exc:  # noqa: BLE001
            self.notify(one_line(exc), severity="error")
            return
        self.fetch()
