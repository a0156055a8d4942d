"""The chat app's longer texts: the welcome line and the panel for a model that did not open."""

from __future__ import annotations

from rich.text import Text

from rnnchat.core.safe_text import printable
from rnnchat.session.framing import Framing
from rnnchat.tui.widgets import Notice
from rnnchat.session.types import SessionInfo

TRAIN_HINT = "rnnchat train corpora/tiny.txt --name tiny"
WHAT_TO_DO = {
    "not-found": f"Pick another model with /model (ctrl+l), or train one:  {TRAIN_HINT}",
    "broken": "Pick another model with /model (ctrl+l); `rnnchat inspect {name}` shows the file's details.",
    "device": "Choose another device: RNNCHAT_DEVICE=cpu rnnchat",
    "plugin": "See /plugins for the plugin's error; pick another model with /model.",
}


def welcome(info: SessionInfo, framing: Framing) -> Text:
    t = Text()
    t.append(info.name, style="bold")
    t.append(f" is ready ({info.cell}, {info.layers}×{info.hidden}, on {info.device})")
    if info.hint:  # the checkpoint's one line on what to type
        t.append(" · try: ")
        t.append(printable(info.hint), style="bold")
    t.append("\nType a line and press Enter.\n")
    if info.description:
        t.append(printable(info.description) + "\n", style="dim")
    if framing.has_speakers:
        t.append("Each reply is labelled with the speaker the model chose.\n", style="dim")
    t.append("Turn the temperature while it writes: ctrl+↑/ctrl+↓, the control on the right, or /temp 0.7. "
             "ctrl+o colours each character by the model's confidence. F1 or /help for the rest.", style="dim")
    return t


def load_failure(name: str, error: str, kind: str, still: SessionInfo | None) -> Text:
    what = WHAT_TO_DO.get(kind, "Pick another model with /model (ctrl+l); /plugins lists plugin errors.")
    body = Text()
    body.append(f"Could not open {name}\n", style="bold")
    body.append(error + "\n")
    body.append("What to do: ", style="bold")
    body.append(what.replace("{name}", name))
    if still is not None:
        body.append(f"\nStill chatting with {still.name}.", style="dim")
    return body


def tip(text: str) -> Notice:
    return Notice(Text(text, style="dim"), kind="tip")
