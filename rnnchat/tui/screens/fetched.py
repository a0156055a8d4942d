"""A dialog whose content is read in a worker thread (the history database, checkpoint headers,
the plugin list), so that opening it never blocks the screen."""

from __future__ import annotations

from textual import work
from textual.message import Message
from textual.screen import ModalScreen

from rnnchat.tui.messages import one_line


class FetchedScreen(ModalScreen):
    """Subclasses give ``load()`` (runs in a worker), ``show(rows)`` and ``show_error(text)``
    (run on the UI thread) and call ``fetch()`` when mounted or when the content changed."""

    class Listed(Message):
        def __init__(self, rows, error: str | None = None) -> None:
            super().__init__()
            self.rows, self.error = rows, error

    def load(self):
        raise NotImplementedError

    def show(self, rows) -> None:
        raise NotImplementedError

    def show_error(self, error: str) -> None:
        raise NotImplementedError

    @work(thread=True, exit_on_error=False, group="fetch", exclusive=True)
    def fetch(self) -> None:
        try:
            rows = self.load()
        except Exception as exc:  # noqa: BLE001 - shown in the dialog
            self.post_message(self.Listed(None, one_line(exc)))
            return
        self.post_message(self.Listed(rows))

    def on_fetched_screen_listed(self, message: Listed) -> None:
        if message.rows is None:
            self.show_error(message.error)
        else:
            self.show(message.rows)
