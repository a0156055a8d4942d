"""``rnnchat chat``: open the chat app."""

from __future__ import annotations

import click


def open_chat(model: str | None) -> None:
    try:
        from rnnchat.tui.app import run_app
    except ImportError:  # the chat app is not built yet
        ctx = click.get_current_context()
        click.echo(ctx.get_help() if ctx.parent is None else ctx.parent.get_help())
        return
    run_app(model)


@click.command()
@click.option("--model", "-m", help="Model name (see `rnnchat models`) or checkpoint path.")
def chat(model):
    """Open the chat app."""
    open_chat(model)
