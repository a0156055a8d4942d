"""What each chat action does: ``handler(app, *arguments)``. ``tui/actions.py`` ties each
handler to its key, palette entry and ``/command``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnchat.core.errors import SamplingError
from rnnchat.core.params import check_temperature
from rnnchat.session.types import SessionError
from rnnchat.tui.notices import tip
from rnnchat.tui.widgets.panel import TEMP_STEP

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp


def set_temperature(app: "RnnchatApp", value) -> None:
    try:
        value = check_temperature(round(float(value), 2))
    except (SamplingError, TypeError, ValueError) as exc:
        app.notify(str(exc), severity="error", markup=False)
        return
    app.set_params(temperature=value)


def temperature_step(sign: int):
    def step(app: "RnnchatApp") -> None:
        set_temperature(app, max(app.params.temperature + sign * TEMP_STEP, 0.0))

    return step


def setter(name: str):
    def set_value(app: "RnnchatApp", value) -> None:
        app.set_params(**{name: value})

    return set_value


def preset(app: "RnnchatApp", arg: str | None = None) -> None:
    """/preset NAME applies a preset; /preset save NAME keeps the values in use under NAME;
    /preset alone lists them."""
    from rnnchat.session import presets

    user = app.settings.presets
    if not arg:
        app.notify("presets: " + ", ".join(presets.names(user)) + " · /preset NAME, /preset save NAME",
                   markup=False, timeout=8)
        return
    word, _, name = arg.partition(" ")
    try:
        if word == "save":
            name = presets.check_name(name.strip())
            if name not in user and len(user) >= presets.MAX_PRESETS:
                raise SamplingError(f"at most {presets.MAX_PRESETS} presets; overwrite one")
            user[name] = presets.values_of(app.params)
            app.settings_changed()
            app.notify(f"Saved preset {name}: " + _values_line(user[name]), markup=False)
            return
        values = presets.find(presets.check_name(arg.strip()), user)
    except SamplingError as exc:
        app.notify(str(exc), severity="error", markup=False)
        return
    if values is None:
        app.notify(f"no preset {arg.strip()!r}; presets: {', '.join(presets.names(user))}", severity="error",
                   markup=False)
        return
    if app.set_params(**values):
        app.notify(f"Preset {arg.strip()}: " + _values_line(values), markup=False)


def _values_line(values: dict) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())


def stop(app: "RnnchatApp") -> None:
    if app.session is not None and app.session.busy:
        app.session.stop()


def regenerate(app: "RnnchatApp") -> None:
    app.chat.when_idle(app.chat.regenerate)


def continue_reply(app: "RnnchatApp") -> None:
    app.chat.when_idle(app.chat.continue_reply)


def reset(app: "RnnchatApp") -> None:
    def now() -> None:
        if app.session is None or not app.session.loaded:
            return
        try:
            app.session.reset()
        except SessionError as exc:
            app.notify(str(exc), severity="error", markup=False)
            return
        app.chat.transcript.clear()
        app.chat.transcript.add_notice(tip("New conversation: the model starts from the state after its stop sequence."))
        app.panel.show_speed(None)

    app.chat.when_idle(now)


def rewind(app: "RnnchatApp", n: int | None = None) -> None:
    app.chat.when_idle(lambda: _rewind(app, n))


def _rewind(app: "RnnchatApp", n: int | None) -> None:
    s = app.session
    if s is None or not s.loaded:
        return
    users = [i for i, t in enumerate(s.turns) if t.role == "user"]
    if not users:
        app.notify("Nothing to rewind yet", severity="warning")
        return
    n = len(users) if n is None else n
    if not 1 <= n <= len(users):
        app.notify(f"/rewind N: N is one of your messages, 1 to {len(users)}", severity="error")
        return
    k = users[n - 1]
    text = s.turns[k].text
    try:
        s.rewind(k)
    except SessionError as exc:
        app.notify(str(exc), severity="error", markup=False)
        return
    app.chat.rebuild()
    app.chat.restore_input(text)
    app.chat.input.focus()
    app.notify(f"Back to before your message {n}; it is in the input to edit or resend", markup=False)


def pick_model(app: "RnnchatApp", name: str | None = None) -> None:
    from rnnchat.tui.screens import ModelPicker

    if name:
        app.switch_model(name)
        return
    current = app.session.info.name if app.session is not None and app.session.info else None
    app.push_screen(ModelPicker(current), lambda chosen: chosen and app.switch_model(chosen))


def show_history(app: "RnnchatApp") -> None:
    from rnnchat.session.history import HistoryStore
    from rnnchat.tui.screens import HistoryScreen

    store = app.session.store if app.session is not None else HistoryStore()
    current = app.session.conversation_id if app.session is not None else None
    app.push_screen(HistoryScreen(store, current), lambda chosen: chosen and app.open_conversation(*chosen))


def show_plugins(app: "RnnchatApp") -> None:
    from rnnchat.tui.screens import PluginsScreen

    app.push_screen(PluginsScreen())


def show_training(app: "RnnchatApp") -> None:
    from rnnchat.tui.screens.train import TrainScreen

    if not isinstance(app.screen, TrainScreen):
        app.push_screen(TrainScreen(app.training))


def show_help(app: "RnnchatApp") -> None:
    from rnnchat.tui.actions import command_rows, key_rows
    from rnnchat.tui.screens import HelpScreen

    app.push_screen(HelpScreen(key_rows(app.keys), command_rows()))


def toggle_confidence(app: "RnnchatApp") -> None:
    from rnnchat.tui.actions import key_label

    app.chat.set_confidence(not app.chat.confidence)
    app.panel.show_confidence(app.chat.confidence, key_label(app.keys, "confidence"))
    app.settings_changed()


def save_transcript(app: "RnnchatApp", path: str | None = None) -> None:
    if app.session is None:
        app.notify("Nothing to save yet", severity="warning")
        return
    try:
        target = app.session.export_markdown(path or None)
    except SessionError as exc:
        app.notify(str(exc), severity="warning", markup=False)
        return
    app.notify(f"Saved the transcript to {target}", markup=False)


def toggle_panel(app: "RnnchatApp") -> None:
    """Show or hide the side panel (hidden by default below 90 columns)."""
    main, shown = app.query_one("#main"), app.panel.display
    main.remove_class("-panel-shown", "-panel-hidden")
    main.add_class("-panel-hidden" if shown else "-panel-shown")


def show_values(app: "RnnchatApp", n: int | None = None) -> None:
    """The sampling values a reply was written with: the last one, or the reply to your message N."""
    from rnnchat.session.export import values_line

    turns = app.session.turns if app.session is not None else []
    users = [i for i, t in enumerate(turns) if t.role == "user"]
    if n is not None and not 1 <= n <= len(users):
        app.notify(f"/values N: N is one of your messages, 1 to {len(users)}", severity="error")
        return
    after = turns[users[n - 1] + 1:users[n - 1] + 2] if n is not None else [t for t in turns if t.role == "model"][-1:]
    reply = after[0] if after and after[0].role == "model" and after[0].params else None
    if reply is None:
        app.notify("No reply yet", severity="warning")
        return
    app.notify(values_line(reply.params, reply.seed), title="Written with", markup=False, timeout=10)


def copy(app: "RnnchatApp", what: str | None = None) -> None:
    """Copy the last reply (no argument), the reply to your message N, or the whole transcript ('all')."""
    turns = app.session.turns if app.session is not None else []
    if what in ("all", "transcript"):
        text = "\n\n".join(f"{'You' if t.role == 'user' else 'Model'}: {t.text}" for t in turns if t.text)
        label = "the transcript"
    else:
        replies = [t for t in turns if t.role == "model" and t.text]
        if what is None:
            picked, label = (replies[-1] if replies else None), "the last reply"
        else:
            users = [i for i, t in enumerate(turns) if t.role == "user"]
            n = int(what) if what.isdigit() else 0
            if not 1 <= n <= len(users):
                app.notify(f"/copy N: N is one of your messages, 1 to {len(users)}; or /copy all", severity="error")
                return
            k = users[n - 1] + 1
            picked, label = (turns[k] if k < len(turns) and turns[k].role == "model" else None), f"the reply to #{n}"
        text = picked.text if picked is not None else ""
    if not text:
        app.notify("Nothing to copy yet", severity="warning")
        return
    app.copy_to_clipboard(text)
    app.notify(f"Copied {label} ({len(text):,} characters)", markup=False, timeout=3)


def copy_or_quit(app: "RnnchatApp") -> None:
    """ctrl+c as in a terminal app: copy the selection (in the input or the transcript) when
    there is one, else quit."""
    selected = app.chat.input.selected_text or app.screen.get_selected_text() or ""
    if selected:
        app.copy_to_clipboard(selected)
        app.notify(f"Copied {len(selected):,} characters", markup=False, timeout=2)
        return
    quit(app)


def quit(app: "RnnchatApp") -> None:
    app.call_later(app.action_quit)
