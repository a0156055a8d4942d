"""The alternatives screen: K replies for the last one, written side by side, one kept.

:class:`AltsScreen` iterates an :class:`~rnnchat.session.api.AlternativesHandle` in a thread
worker (which only posts messages) and streams each alternative into its own column (stacked
on narrow terminals). 1..K or a click keeps one; Esc first stops them (each keeps what it
wrote), then closes, keeping the original reply. Dismisses with the index kept, or None.
"""

from __future__ import annotations

import time
from collections import defaultdict

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static
from textual.worker import get_current_worker

from rnnchat.session.alternatives import K_MAX
from rnnchat.session.api import AlternativesHandle
from rnnchat.session.framing import Framing
from rnnchat.tui.messages import one_line
from rnnchat.tui.widgets.transcript import TurnView

MIN_COLUMN = 28  # narrower columns than this: the alternatives are stacked
MAX_WIDTH = 200  # the dialog's widest (96% of the screen up to this)


def stacked(screen_width: int, k: int) -> bool:
    """Stack the alternatives when ``k`` columns of MIN_COLUMN do not fit the dialog."""
    return min(screen_width * 96 // 100, MAX_WIDTH) < k * MIN_COLUMN
FLUSH_S = 0.05  # the worker posts what arrived at most this often


class AltsChunk(Message):
    def __init__(self, texts: dict[int, tuple[str, tuple[float, ...]]]) -> None:
        super().__init__()
        self.texts = texts  # index -> (new text, its probabilities)


class AltsDone(Message):
    pass


class AltsFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class AltView(Vertical):
    """One alternative: its number and its text (a model turn view); a click keeps it."""

    def __init__(self, index: int, view: TurnView) -> None:
        super().__init__(classes="alt")
        self.index, self.view = index, view

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.index + 1}", style="bold reverse"), classes="alt-number")
        yield self.view

    def on_click(self) -> None:
        self.screen.choose(self.index)


class AltsScreen(ModalScreen[int | None]):
    DEFAULT_CSS = """
    AltsScreen #alts-columns { height: 1fr; }
    AltsScreen #alts-columns .alt { width: 1fr; height: 1fr; overflow-y: auto; border-right: vkey $panel; padding: 0 1; }
    AltsScreen #alts-stacked .alt { height: auto; border-bottom: hkey $panel; }
    AltsScreen .alt:hover { background: $boost; }
    AltsScreen .alt-number { width: auto; height: 1; }
    """
    BINDINGS = [Binding("escape", "escape", "Stop / close")] + [
        Binding(str(n), f"choose({n - 1})", show=False) for n in range(1, K_MAX + 1)]

    def __init__(self, handle: AlternativesHandle, stacked: bool, model_name: str = "model",
                 framing: Framing | None = None, confidence: bool = False) -> None:
        super().__init__()
        self.handle, self.stacked = handle, stacked
        self.views = [TurnView("model", model_name=model_name, framing=framing, live=True, confidence=confidence)
                      for _ in range(handle.k)]
        self.writing = True
        self.wanted: int | None = None  # a choice made while they were being written

    def compose(self) -> ComposeResult:
        k = self.handle.k
        alts = [AltView(j, v) for j, v in enumerate(self.views)]
        with Vertical(classes="dialog") as dialog:
            # inline: the app's .dialog rule (max-width 110) outranks a screen's DEFAULT_CSS
            dialog.styles.width, dialog.styles.max_width, dialog.styles.height = "96%", MAX_WIDTH, "90%"
            yield Static(f"{k} alternatives for the last reply", classes="dialog-title")
            yield (VerticalScroll(*alts, id="alts-stacked") if self.stacked else Horizontal(*alts, id="alts-columns"))
            yield Static(self._help(), id="alts-help", classes="dialog-help")

    def _help(self) -> str:
        k = self.handle.k
        if self.writing:
            return f"writing… · Esc: stop them · 1-{k} or click: keep one"
        speed = f" · {self.handle.chars_per_s:,.0f} chars/s in all" if self.handle.chars_per_s else ""
        return f"1-{k} or click: keep one · Esc: keep the original reply{speed}"

    def on_mount(self) -> None:
        self._write()

    @work(thread=True, exclusive=True, exit_on_error=False, name="alternatives")
    def _write(self) -> None:
        """Iterate the alternatives (the engine writes them on its thread); post what arrived
        every FLUSH_S seconds. Only post_message touches the UI."""
        worker = get_current_worker()
        texts: dict[int, list[str]] = defaultdict(list)
        probs: dict[int, list[float]] = defaultdict(list)
        last = 0.0
        try:
            for chunk in self.handle:
                texts[chunk.index].append(chunk.text)
                probs[chunk.index].extend(chunk.probs)
                if worker.is_cancelled:
                    self.handle.cancel()
                now = time.monotonic()
                if now - last >= FLUSH_S:
                    last = now
                    self.post_message(AltsChunk({j: ("".join(t), tuple(probs[j])) for j, t in texts.items()}))
                    texts.clear()
                    probs.clear()
        except Exception as exc:  # noqa: BLE001 - nothing was changed; the screen says why
            self.post_message(AltsFailed(one_line(exc)))
            return
        if texts:
            self.post_message(AltsChunk({j: ("".join(t), tuple(probs[j])) for j, t in texts.items()}))
        self.post_message(AltsDone())

    def on_alts_chunk(self, message: AltsChunk) -> None:
        for j, (text, probs) in message.texts.items():
            if 0 <= j < len(self.views):
                self.views[j].append(text, probs)

    def on_alts_done(self, message: AltsDone) -> None:
        self.writing = False
        for view, turn in zip(self.views, self.handle.choices or ()):
            view.finish(turn)
        self.query_one("#alts-help", Static).update(self._help())
        if self.wanted is not None:
            self.dismiss(self.wanted)

    def on_alts_failed(self, message: AltsFailed) -> None:
        self.app.notify(message.error, title="The alternatives failed", severity="error", markup=False)
        self.dismiss(None)

    def action_escape(self) -> None:
        if self.writing:
            self.handle.cancel()
        else:
            self.dismiss(None)

    def action_choose(self, index: int) -> None:
        self.choose(index)

    def choose(self, index: int) -> None:
        if not 0 <= index < self.handle.k:
            return
        if self.writing:  # stop them; kept once they have ended
            self.wanted = index
            self.handle.cancel()
        else:
            self.dismiss(index)

    def on_unmount(self) -> None:
        self.handle.cancel()
