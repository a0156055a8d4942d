"""Model picker: every registered checkpoint with its cell, size, validation loss and plugin; the
highlighted one's hint (what to type) and description below the table."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from rnnchat.core.safe_text import printable
from rnnchat.tui.screens.fetched import FetchedScreen
from rnnchat.tui.widgets.panel import fmt_params


def list_models() -> list[dict]:
    """Registered checkpoints, read from their headers (no torch)."""
    from rnnchat.session.models import model_rows

    return model_rows()


class ModelPicker(FetchedScreen):
    """Choose a model; dismisses with its name (the app then loads it in a worker)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, current: str | None = None) -> None:
        super().__init__()
        self.current = current
        self.rows: list[dict] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Models", classes="dialog-title")
            yield Static("Reading checkpoints…", id="models-status", classes="dim")
            yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="models-about")
            yield Static("Enter: load the model · Esc: close", classes="dialog-help")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("", "Name", "Cell", "Layers", "Params", "File", "Val loss", "Plugin")
        table.focus()
        self.fetch()

    def load(self) -> list[dict]:
        return list_models()

    def show_error(self, error: str) -> None:
        self.query_one("#models-status", Static).update(Text(f"Could not list the models: {printable(error)}", style="red"))

    def show(self, rows: list[dict]) -> None:
        status = self.query_one("#models-status", Static)
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in self.rows:
            mark = "●" if r["name"] == self.current else ""
            if r.get("error"):
                table.add_row(mark, Text(printable(r["name"])), Text("broken", style="red"), "", "", "", "",
                              Text(printable(r.get("plugin") or "")), key=r["name"])
                continue
            loss = f"{r['val_loss']:.3f}" if isinstance(r.get("val_loss"), (int, float)) else "-"
            size = f"{r['size_bytes'] / 1e6:.1f} MB" if isinstance(r.get("size_bytes"), int) else "-"
            table.add_row(mark, Text(printable(r["name"]), style="bold"), Text(printable(r["cell"])),
                          f"{r['layers']}×{r['hidden']}", fmt_params(r["parameters"]), size, loss,
                          Text(printable(r.get("plugin") or "")), key=r["name"])
        if not self.rows:
            status.update(Text("No models are registered. Train one: rnnchat train corpora/tiny.txt --name tiny",
                               style="yellow"))
        else:
            broken = [r for r in self.rows if r.get("error")]
            status.update(Text(f"{len(self.rows)} model(s)" + (f", {len(broken)} broken: {printable(broken[0]['error'])}"
                                                                if broken else ""), style="dim"))
            names = [r["name"] for r in self.rows]
            if self.current in names:
                table.move_cursor(row=names.index(self.current))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = next((r for r in self.rows if r["name"] == event.row_key.value), None)
        self.query_one("#models-about", Static).update(about(row) if row is not None else "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(str(event.row_key.value))


def about(row: dict) -> Text:
    """The highlighted model's hint and description (untrusted: shown escaped)."""
    t = Text()
    if row.get("hint"):
        t.append("try: ", style="dim")
        t.append(printable(row["hint"], 80), style="bold")
    if row.get("description"):
        t.append(("\n" if t else "") + printable(row["description"], 500), style="dim")
    return t
