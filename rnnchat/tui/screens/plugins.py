"""Plugins: what each loaded plugin registered, and the errors of those that failed."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from rnnchat.core.safe_text import printable
from rnnchat.tui.screens.fetched import FetchedScreen


def plugin_infos() -> list[dict]:
    from rnnchat.plugins.manager import get_host

    return [p.as_dict() for p in get_host().plugins.values()]


def render_plugin(p: dict) -> Text:
    t = Text()
    t.append(printable(p["name"]), style="bold")
    if p.get("version"):
        t.append(f" {printable(p['version'])}", style="dim")
    t.append("  ")
    t.append("loaded" if p["loaded"] else "FAILED", style="green" if p["loaded"] else "bold red")
    if p.get("builtin"):
        t.append("  built-in", style="dim")
    for kind, names in (p.get("registered") or {}).items():
        t.append(f"\n  {kind}: ", style="dim")
        t.append(printable(", ".join(names)))
    for err in p.get("errors") or ():
        t.append("\n  error: ", style="bold red")
        t.append(printable(err), style="red")
    return t


class PluginsScreen(FetchedScreen):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Plugins", classes="dialog-title")
            yield VerticalScroll(Static("Loading plugins…", id="plugins-body"), id="plugins-scroll")
            yield Static("Esc: close · `rnnchat plugins` prints the same", classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one("#plugins-scroll").focus()
        self.fetch()

    def load(self) -> list[dict]:
        return plugin_infos()

    def show_error(self, error: str) -> None:
        self.query_one("#plugins-body", Static).update(Text(f"Could not load the plugin list: {error}", style="red"))

    def show(self, infos: list[dict]) -> None:
        body = self.query_one("#plugins-body", Static)
        out = Text()
        failed = [p for p in infos if not p["loaded"]]
        out.append(f"{len(infos)} plugin(s), {len(failed)} failed\n\n", style="dim")
        for i, p in enumerate(sorted(infos, key=lambda p: (p["loaded"], p["name"]))):
            if i:
                out.append("\n\n")
            out.append_text(render_plugin(p))
        body.update(out)
