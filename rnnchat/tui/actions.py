"""The chat app's actions, each declared once.

An :class:`Action` holds its id, default key, footer label, the line F1 shows, its command
palette entry, its ``/command`` (name, aliases, argument parser) and its handler. The
app's key bindings, the F1 help, the palette (``tui/commands.py``) and the ``/commands``
are all derived from :data:`ACTIONS`. The user remaps keys with a ``keys`` table in the
settings file (``{"regenerate": "ctrl+g"}``): :func:`keymap` checks it.

Adding an action: one ``Action(...)`` here with a handler in ``tui/handlers.py`` (or a module of
its own, as ``tui/inspecting.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from textual.binding import Binding
from textual.keys import Keys

from rnnchat.core.errors import RnnchatError
from rnnchat.tui import alts
from rnnchat.tui import handlers as h
from rnnchat.tui import priming, state_command
from rnnchat.tui.settings_handler import show_settings
from rnnchat.tui.inspecting import inspect, parse_inspect


class CommandError(RnnchatError):
    """A chat command that cannot be run as typed."""


def no_arg(arg: str, name: str) -> tuple:
    return ()


def optional_text(arg: str, name: str) -> tuple:
    return (arg or None,)


def number(kind=float, optional: bool = False):
    """A parser for one number: '/temp 0.7' -> (0.7,)."""

    def parse(arg: str, name: str) -> tuple:
        if not arg:
            if optional:
                return (None,)
            raise CommandError(f"give a value: /{name} {'0.7' if kind is float else '20'}")
        try:
            return (kind(arg),)
        except ValueError:
            what = "number" if kind is float else "whole number"
            raise CommandError(f"/{name} needs a {what}, not {arg!r}") from None

    return parse


def seed_arg(arg: str, name: str) -> tuple:
    return (None,) if arg.lower() in ("off", "none", "random") else number(int)(arg, name)


@dataclass(frozen=True)
class Action:
    id: str
    handler: Callable  # handler(app, *parsed arguments)
    key: str | None = None  # the default key
    label: str = ""  # in the footer; "" keeps the key out of the footer
    key_help: str = ""  # what F1 says the key does
    title: str = ""  # the command palette's entry ("" : not in the palette)
    palette_help: str = ""
    command: str = ""  # the /command ("" : none)
    args: str = ""  # its arguments as the help shows them: "X", "[N]"
    command_help: str = ""
    aliases: tuple[str, ...] = ()
    parse: Callable[[str, str], tuple] = no_arg
    key_display: str | None = None
    priority: bool = False  # the key works while typing in the input

    @property
    def keyable(self) -> bool:
        """A key can run it: it needs no argument."""
        return not self.args or self.args.startswith("[")


ACTIONS: tuple[Action, ...] = (
    Action("temperature", h.set_temperature, command="temp", args="X", parse=number(),
           command_help="temperature: 0 is greedy, higher is wilder", aliases=("temperature", "t")),
    Action("top_k", h.setter("top_k"), command="topk", args="N", parse=number(int), aliases=("top-k", "top_k"),
           command_help="sample only from the N likeliest characters (0: off)"),
    Action("top_p", h.setter("top_p"), command="topp", args="X", parse=number(), aliases=("top-p", "top_p"),
           command_help="sample from the smallest set reaching probability X (1: off)"),
    Action("repetition_penalty", h.setter("repetition_penalty"), command="repeat", args="X", parse=number(),
           aliases=("penalty", "repetition", "repeat_penalty"),
           command_help="repetition penalty over the last 64 characters (1: off; 1.1-1.3 usual)"),
    Action("min_p", h.setter("min_p"), command="minp", args="X", parse=number(), aliases=("min-p", "min_p"),
           command_help="keep only characters at least X times as likely as the likeliest (0: off; 0.05-0.1 usual)"),
    Action("presence_penalty", h.setter("presence_penalty"), command="presence", args="X", parse=number(),
           aliases=("presence-penalty", "presence_penalty", "pp"),
           command_help="subtract X from every character already in the reply (-2 to 2; 0: off)"),
    Action("frequency_penalty", h.setter("frequency_penalty"), command="frequency", args="X", parse=number(),
           aliases=("frequency-penalty", "frequency_penalty", "freq", "fp"),
           command_help="subtract X times each character's count in the reply so far (-2 to 2; 0: off)"),
    Action("preset", h.preset, title="Sampling presets", palette_help="List the presets: /preset NAME applies one",
           command="preset", args="[NAME|save NAME]", parse=optional_text, aliases=("presets",),
           command_help="apply a preset (precise, balanced, creative, your own); save NAME keeps the values in use"),
    Action("max_chars", h.setter("max_chars"), command="max", args="N", parse=number(int),
           aliases=("maxlen", "length", "num_predict"), command_help="longest reply, in characters"),
    Action("seed", h.setter("seed"), command="seed", args="N|off", parse=seed_arg,
           command_help="fix the random seed for reproducible replies, or 'off'"),
    Action("settings", show_settings, "f3", key_help="sampling settings: every value with its range, editable",
           priority=True, title="Sampling settings…", palette_help="Every sampling value, its range and what it does",
           command="settings", args="[NAME VALUE]", parse=optional_text, aliases=("set", "params"),
           command_help="every sampling value with its range, editable; /set NAME VALUE sets one (ollama's names too)"),
    Action("new_chat", h.reset, "ctrl+n", key_help="new conversation", priority=True,
           title="New conversation", palette_help="Start over from the model's initial state",
           command="reset", aliases=("new", "clear"), command_help="start a new conversation (the old one stays in /history)"),
    Action("regenerate", h.regenerate, "ctrl+r", "Regen", "regenerate the last reply", priority=True,
           title="Regenerate the last reply", palette_help="Replace the last reply with a new one from the same state",
           command="regen", aliases=("regenerate", "retry"), command_help="replace the last reply with a new one"),
    Action("continue", h.continue_reply, "ctrl+t", "", "continue the last reply from where it stopped",
           priority=True, title="Continue the last reply",
           palette_help="Go on writing the reply that was stopped or hit the length limit", command="continue",
           aliases=("cont", "more", "+++"), command_help="continue the last reply from the exact state where it stopped"),
    Action("alternatives", alts.alternatives, "f5", "", "write 3 alternatives for the last reply; keep one",
           priority=True, title="Alternatives for the last reply",
           palette_help="Write alternatives side by side from the same state and keep the one you pick",
           command="alts", args="[K]", parse=alts.parse_count, aliases=("alternatives",),
           command_help="K alternatives (2-8, default 3) for the last reply side by side; 1..K keeps one"),
    Action("prime", priming.prime, command="prime", args="TEXT|@FILE", parse=optional_text,
           command_help="start a new conversation from the state after reading TEXT (or a file)"),
    Action("state", state_command.state, command="state", args="save NAME|load NAME|list", parse=state_command.parse,
           aliases=("states",), command_help="keep the conversation's state as NAME, start again from one, or list them"),
    Action("rewind", h.rewind, title="Rewind one exchange", palette_help="Go back to before your last message",
           command="rewind", args="[N]", parse=number(int, optional=True), aliases=("undo",),
           command_help="go back to before your message N (default: your last one)"),
    Action("models", h.pick_model, "ctrl+l", key_help="switch model", priority=True, title="Switch model…",
           palette_help="Pick a model from every registered checkpoint", command="model", args="[NAME]",
           parse=optional_text, aliases=("models",), command_help="switch model; without a name, open the model picker"),
    Action("history", h.show_history, "ctrl+y", key_help="conversation history", priority=True,
           title="Conversation history…", palette_help="Reopen a saved conversation and continue it",
           command="history", command_help="reopen a saved conversation"),
    Action("train", h.show_training, "f6", key_help="train a model (it runs in the background)", priority=True,
           title="Train a model…", palette_help="Start a training run in the background and watch its curve",
           command="train", command_help="train a model in the background and watch its curve"),
    Action("plugins", h.show_plugins, title="Plugins…", palette_help="Loaded plugins and the errors of those that failed",
           command="plugins", command_help="loaded plugins and the errors of those that failed"),
    Action("confidence", h.toggle_confidence, "ctrl+o", "", "confidence colours on/off (the panel shows ^o)", priority=True,
           title="Toggle confidence colours", palette_help="Colour the model's text by how sure it was of each character",
           command="colors", aliases=("confidence", "colours"),
           command_help="colour the model's text by its confidence in each character"),
    Action("inspect", inspect, "f4", "", "the inspector: the transcript coloured by one unit; ←/→ move its cursor",
           priority=True, title="Inspect the model's units",
           palette_help="Colour the transcript by one unit's activation; the strongest units under a cursor",
           command="inspect", args="[LAYER:UNIT[:Q]|auto [FEATURE]|off]", parse=parse_inspect,
           command_help="colour the transcript by a unit (auto: the one tracking the line position); off closes"),
    Action("save", h.save_transcript, title="Save transcript as Markdown", palette_help="Export the conversation to a .md file",
           command="save", args="[PATH|json]", parse=optional_text, aliases=("export",),
           command_help="export the transcript as Markdown (json or PATH.json: as JSON), each reply with its values"),
    Action("stop", h.stop, "escape", "Stop", "stop the reply; what was written is kept", title="Stop the reply",
           palette_help="Stop the reply in flight; what was written is kept", command="stop",
           command_help="stop the reply in flight (Esc)"),
    Action("temperature_up", h.temperature_step(1), "ctrl+up", "Temp+", "temperature up by 0.05, also while typing",
           key_display="^↑", priority=True, title="Temperature up", palette_help="Raise the temperature by 0.05"),
    Action("temperature_down", h.temperature_step(-1), "ctrl+down", "Temp−",
           "temperature down by 0.05, also while typing", key_display="^↓", priority=True,
           title="Temperature down", palette_help="Lower the temperature by 0.05"),
    Action("panel", h.toggle_panel, "ctrl+b", key_help="show/hide the side panel (hidden below 90 columns)",
           priority=True, title="Toggle the side panel", palette_help="Show or hide the panel of model and sampling values",
           command="panel", aliases=("sidebar",), command_help="show or hide the side panel (ctrl+b)"),
    Action("help", h.show_help, "f1", "Help", "this help", title="Chat commands and keys", palette_help="Show the help",
           command="help", aliases=("?",), command_help="commands and keys"),
    Action("values", h.show_values, title="Values of the last reply",
           palette_help="The sampling values the last reply was written with", command="values", args="[N]",
           parse=number(int, optional=True), aliases=("info",),
           command_help="the sampling values of the last reply, or of the reply to your message N"),
    Action("copy", h.copy, "f2", key_help="copy the last reply", title="Copy the last reply",
           palette_help="Copy the last reply to the clipboard (/copy all: the transcript)", command="copy",
           args="[N|all]", parse=optional_text, command_help="copy the last reply, the reply to your message N, or all"),
    Action("copy_or_quit", h.copy_or_quit, "ctrl+c", key_help="copy the selection; with nothing selected, quit",
           priority=True),
    Action("quit", h.quit, "ctrl+q", "Quit", "quit, also during a reply", priority=True, command="quit",
           aliases=("exit",)),
)
BY_ID = {a.id: a for a in ACTIONS}
# the order of the footer and of F1's keys (ACTIONS' order is that of the /commands)
KEY_ORDER = ("quit", "stop", "temperature_up", "temperature_down", "regenerate", "continue", "confidence", "inspect",
             "help", "new_chat", "models", "history", "settings", "train", "panel")
BY_KEY_ORDER = sorted(ACTIONS, key=lambda a: KEY_ORDER.index(a.id) if a.id in KEY_ORDER else len(KEY_ORDER))
BY_COMMAND = {name: a for a in ACTIONS if a.command for name in (a.command, *a.aliases)}
FIXED_KEYS = (("Enter", "send your message (or run a /command)"),
              ("Tab", "move between the input, the transcript and the temperature control"),
              ("ctrl+p", "command palette: every action, and /commands with arguments"))
_MODIFIERS = {"ctrl", "shift", "alt", "meta", "super", "hyper"}
_NAMED = {k.value.rsplit("+", 1)[-1] for k in Keys} | {"enter", "tab", "space", "backspace", "escape"} \
    | {f"f{i}" for i in range(1, 25)}


def parse(line: str) -> tuple[Action, tuple]:
    """'/temp 0.7' -> (the temperature action, (0.7,)). Raises CommandError."""
    name, _, arg = line.strip()[1:].partition(" ")
    name = name.lower()
    action = BY_COMMAND.get(name)
    if action is None:
        raise CommandError(f"unknown command /{name}; type /help for the list")
    return action, action.parse(arg.strip(), action.command)


def valid_key(key: object) -> bool:
    if not isinstance(key, str) or not key or len(key) > 40:
        return False
    *mods, base = key.split("+")
    return set(mods) <= _MODIFIERS and len(set(mods)) == len(mods) and (
        base in _NAMED or (len(base) == 1 and base.isprintable() and not base.isspace()))


def keymap(user: dict) -> tuple[dict[str, str | None], list[str]]:
    """The key of every action: the defaults with the user's ``keys`` table applied, and a
    one-line notice for each entry that was ignored (an unknown id, a key that is not one)."""
    keys = {a.id: a.key for a in ACTIONS}
    notices = []
    for action_id, key in (user or {}).items():
        if action_id not in keys:
            notices.append(f"keys: there is no action {str(action_id)[:40]!r}; ids: {', '.join(sorted(keys))}")
        elif not BY_ID[action_id].keyable:
            notices.append(f"keys: {action_id} needs a value (/{BY_ID[action_id].command} "
                           f"{BY_ID[action_id].args}); it cannot have a key")
        elif not valid_key(key):
            notices.append(f"keys: {str(key)[:40]!r} is not a key (like ctrl+g or f5); "
                           f"{action_id} keeps {keys[action_id]}")
        else:
            keys[action_id] = key
    moved = [i for i in (user or {}) if i in keys and keys[i] != BY_ID[i].key]
    owners = {k: i for i, k in keys.items() if k and i not in moved}  # a shared key: the earlier owner keeps it
    for action_id in moved:
        key = keys[action_id]
        if key in owners:
            keys[action_id] = BY_ID[action_id].key
            notices.append(f"keys: {key} already runs {owners[key]}; {action_id} keeps {keys[action_id] or 'no key'}")
            if keys[action_id] and owners.get(keys[action_id], action_id) != action_id:
                keys[action_id] = None  # its own key went to another action meanwhile
            elif keys[action_id]:
                owners[keys[action_id]] = action_id
        else:
            owners[key] = action_id
    return keys, notices


def apply_keys(app, user: dict) -> tuple[dict[str, str | None], list[str]]:
    """Give ``app`` the user's keys (Textual's keymap for actions with a default key, a new
    binding for the others); returns :func:`keymap`'s answer."""
    keys, notices = keymap(user)
    app.set_keymap({i: k for i, k in keys.items() if k and BY_ID[i].key and k != BY_ID[i].key})
    for a in ACTIONS:
        if a.key is None and keys.get(a.id):
            app.bind(keys[a.id], f"do('{a.id}')", description=a.id, show=False)
    return keys, notices


def bindings() -> list[Binding]:
    """The app's BINDINGS: every action's default key, with the action's id (which Textual's
    keymap remaps: ``App.set_keymap``)."""
    return [Binding(a.key, f"do('{a.id}')", a.label or a.id, show=bool(a.label), priority=a.priority,
                    key_display=a.key_display, id=a.id) for a in BY_KEY_ORDER if a.key]


def key_rows(keys: dict[str, str | None]) -> list[tuple[str, str]]:
    """F1's key table: Enter, Tab and the palette, then every action that has a key."""
    return list(FIXED_KEYS) + [(keys[a.id], a.key_help) for a in BY_KEY_ORDER if keys.get(a.id) and a.key_help]


def command_rows() -> list[tuple[str, str]]:
    return [(f"/{a.command} {a.args}".rstrip(), a.command_help) for a in ACTIONS if a.command_help]


def key_label(keys: dict[str, str | None], action_id: str) -> str:
    """The key of an action as the panel shows it (``^o``)."""
    return (keys.get(action_id) or "").replace("ctrl+", "^")
