"""``rnnchat chat`` (and ``rnnchat`` alone): open the chat app."""

from __future__ import annotations

import click


def open_chat(model: str | None) -> None:
    from rnnchat.tui.app import run_app  # Textual only; the model loads in the app's worker

    run_app(model)


@click.command()
@click.option("--model", "-m", help="Model name (see `rnnchat models`) or checkpoint path.")
def chat(model):
    """Open the chat app.

    Type to chat; the model answers character by character. Change the temperature while it
    writes (ctrl+up/down, the panel, or /temp 0.7); /help lists every command. Conversations
    are saved after each reply and can be reopened with /history.
    """
    open_chat(model)
