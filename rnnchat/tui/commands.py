"""The chat's actions in Textual's command palette, derived from ``tui/actions.py``."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from rnnchat.tui.actions import ACTIONS, BY_COMMAND

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp

PALETTE = tuple(a for a in ACTIONS if a.title)


class ChatCommands(Provider):
    """The chat's actions, plus any ``/command arg`` typed into the palette (``temp 0.7``)."""

    @property
    def chat_app(self) -> "RnnchatApp":
        return self.app  # type: ignore[return-value]

    async def discover(self) -> Hits:
        for a in PALETTE:
            yield DiscoveryHit(a.title, partial(self.chat_app.palette_action, a.id), help=a.palette_help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for a in PALETTE:
            score = matcher.match(a.title)
            if score > 0:
                yield Hit(score, matcher.highlight(a.title), partial(self.chat_app.palette_action, a.id),
                          help=a.palette_help)
        name, _, arg = query.strip().lstrip("/").partition(" ")
        action = BY_COMMAND.get(name.lower())
        if action is not None and action.args and arg.strip():
            line = f"/{action.command} {arg.strip()}"
            yield Hit(1.0, f"Run {line}", partial(self.chat_app.run_chat_command, line),
                      text=line, help="run this chat command")
        for model in self.chat_app.known_models():
            title = f"Model: {model}"
            score = matcher.match(title)
            if score > 0:
                yield Hit(score * 0.9, matcher.highlight(title),
                          partial(self.chat_app.run_chat_command, f"/model {model}"), help="switch to this model")
