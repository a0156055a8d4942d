"""``rnnchat chat`` (and ``rnnchat`` alone): open the chat app."""

from __future__ import annotations

import click


def open_chat(model: str | None) -> None:
    from rnnchat.tui.run import run_app  # Textual only; the model loads in the app's worker

    run_app(model)


@click.command()
@click.argument("model_arg", metavar="[MODEL]", required=False)
@click.option("--model", "-m", help="Model name (see `rnnchat models`) or checkpoint path (same as MODEL).")
def chat(model_arg, model):
    """Open the chat app.

    Type to chat; the model answers character by character. Change the temperature while it
    writes (ctrl+up/down, the panel, or /temp 0.7); /help lists every command. Conversations
    are saved after each reply and can be reopened with /history.

    MODEL (or --model) is a name from `rnnchat models` or a checkpoint path:
    `rnnchat chat tang-poems`.
    """
    if model_arg and model and model_arg != model:
        raise click.UsageError(f"two models given: {model_arg!r} and --model {model!r}; give one")
    open_chat(model_arg or model)
