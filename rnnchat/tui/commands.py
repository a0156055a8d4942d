"""The chat's actions in Textual's command palette, derived from ``tui/actions.py``."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from rnnchat.tui.actions import ACTIONS, BY_COMMAND

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp

PALETTE = tuple(a for a in ACTIONS if a.title)


class ChatCommands(Provider):
    """The chat's actions, plus any ``/command arg`` typed into the palette (``temp 0.7``)."""

    models: list[str] = []

    @property
    def chat_app(self) -> "RnnchatApp":
        return self.app  # type: ignore[return-value]

    async def startup(self) -> None:
        """The registered model names (read in a thread: the plugin host may still be loading)."""
        try:
            self.models = await asyncio.to_thread(_model_names)
        except Exception:  # noqa: BLE001 - the palette just lists no models
            self.models = []

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
        for model in self.models:
            title = f"Model: {model}"
            score = matcher.match(title)
            if score > 0:
                yield Hit(score * 0.9, matcher.highlight(title),
                          partial(self.chat_app.run_chat_command, f"/model {model}"), help="switch to this model")


def _model_names() -> list[str]:
    from rnnchat.plugins.manager import get_host

    return sorted(get_host().checkpoints)
