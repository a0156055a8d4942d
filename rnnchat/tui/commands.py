"""Chat commands (``/temp 0.7``) and the same actions in Textual's command palette."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from rnnchat.errors import RnnchatError

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp


class CommandError(RnnchatError):
    """A chat command that cannot be run as typed."""


@dataclass(frozen=True)
class CommandSpec:
    name: str
    args: str
    help: str
    example: str = ""


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("temp", "X", "temperature: 0 is greedy, higher is wilder", "/temp 0.7"),
    CommandSpec("topk", "N", "sample only from the N likeliest characters (0: off)", "/topk 20"),
    CommandSpec("topp", "X", "sample from the smallest set reaching probability X (1: off)", "/topp 0.9"),
    CommandSpec("max", "N", "longest reply, in characters", "/max 400"),
    CommandSpec("seed", "N|off", "fix the random seed for reproducible replies, or 'off'", "/seed 42"),
    CommandSpec("reset", "", "start a new conversation (the old one stays in /history)"),
    CommandSpec("regen", "", "replace the last reply with a new one"),
    CommandSpec("rewind", "[N]", "go back to before your message N (default: your last one)", "/rewind 2"),
    CommandSpec("model", "[NAME]", "switch model; without a name, open the model picker", "/model shakespeare"),
    CommandSpec("history", "", "reopen a saved conversation"),
    CommandSpec("train", "", "train a model in the background and watch its curve (ctrl+t)"),
    CommandSpec("plugins", "", "loaded plugins and the errors of those that failed"),
    CommandSpec("colors", "", "colour the model's text by its confidence in each character"),
    CommandSpec("save", "[PATH]", "export the transcript as Markdown", "/save chat.md"),
    CommandSpec("stop", "", "stop the reply in flight (Esc)"),
    CommandSpec("help", "", "commands and keys"),
)
ALIASES = {"temperature": "temp", "t": "temp", "top-k": "topk", "top_k": "topk", "top-p": "topp", "top_p": "topp",
           "maxlen": "max", "length": "max", "new": "reset", "clear": "reset", "regenerate": "regen",
           "retry": "regen", "undo": "rewind", "models": "model", "confidence": "colors", "colours": "colors",
           "export": "save", "quit": "quit", "exit": "quit", "?": "help"}
NAMES = {c.name for c in COMMANDS} | {"quit"}


def parse(text: str) -> tuple[str, str]:
    """'/temp 0.7' -> ('temp', '0.7'). Raises CommandError for an unknown command."""
    body = text.strip()[1:]
    name, _, arg = body.partition(" ")
    name = name.lower()
    name = ALIASES.get(name, name)
    if name not in NAMES:
        raise CommandError(f"unknown command /{name}; type /help for the list")
    return name, arg.strip()


def number(arg: str, what: str, kind=float):
    if not arg:
        raise CommandError(f"give a value: /{what} {'0.7' if kind is float else '20'}")
    try:
        return kind(arg)
    except ValueError:
        raise CommandError(f"/{what} needs a {'number' if kind is float else 'whole number'}, not {arg!r}") from None


def help_rows() -> list[tuple[str, str]]:
    return [(f"/{c.name} {c.args}".rstrip(), c.help) for c in COMMANDS]


# ---- command palette ---------------------------------------------------------------------
PALETTE_ACTIONS = (
    ("Stop the reply", "Stop the reply in flight; what was written is kept", "stop_reply"),
    ("Regenerate the last reply", "Replace the last reply with a new one from the same state", "regenerate"),
    ("New conversation", "Start over from the model's initial state", "reset_chat"),
    ("Rewind one exchange", "Go back to before your last message", "rewind_last"),
    ("Switch model…", "Pick a model from every registered checkpoint", "pick_model"),
    ("Conversation history…", "Reopen a saved conversation and continue it", "show_history"),
    ("Train a model…", "Start a training run in the background and watch its curve", "show_training"),
    ("Plugins…", "Loaded plugins and the errors of those that failed", "show_plugins"),
    ("Toggle confidence colours", "Colour the model's text by how sure it was of each character", "toggle_confidence"),
    ("Save transcript as Markdown", "Export the conversation to a .md file", "save_transcript"),
    ("Temperature up", "Raise the temperature by 0.05", "temperature_up"),
    ("Temperature down", "Lower the temperature by 0.05", "temperature_down"),
    ("Chat commands and keys", "Show the help", "show_help"),
)
SETTERS = ("temp", "topk", "topp", "max", "seed", "model", "save", "rewind")


class ChatCommands(Provider):
    """The chat's actions, plus any ``/command arg`` typed into the palette (``temp 0.7``)."""

    @property
    def chat_app(self) -> "RnnchatApp":
        return self.app  # type: ignore[return-value]

    async def discover(self) -> Hits:
        for title, help_text, action in PALETTE_ACTIONS:
            yield DiscoveryHit(title, partial(self.chat_app.palette_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in PALETTE_ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.chat_app.palette_action, action),
                          help=help_text)
        typed = query.strip().lstrip("/")
        name, _, arg = typed.partition(" ")
        name = ALIASES.get(name.lower(), name.lower())
        if name in SETTERS and arg.strip():
            line = f"/{name} {arg.strip()}"
            yield Hit(1.0, f"Run {line}", partial(self.chat_app.run_chat_command, line),
                      text=line, help="run this chat command")
        for model in self.chat_app.known_models():
            title = f"Model: {model}"
            score = matcher.match(title)
            if score > 0:
                yield Hit(score * 0.9, matcher.highlight(title),
                          partial(self.chat_app.run_chat_command, f"/model {model}"), help="switch to this model")
