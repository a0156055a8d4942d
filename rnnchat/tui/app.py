"""The chat app: ``rnnchat`` opens it.

The screen paints before torch is imported: the session's ``load`` runs in a thread worker.
Replies stream in a thread worker that only ever calls ``post_message``; characters reach the
screen in small batches (a few updates per 100 ms), so drawing never slows generation.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Callable

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input
from textual.worker import get_current_worker

from rnnchat.errors import SamplingError
from rnnchat.params import SamplingParams, check_temperature
from rnnchat.process_exit import exit_now
from rnnchat.session.settings import Settings
from rnnchat.session.types import SessionError
from rnnchat.tui import commands as chat_commands
from rnnchat.tui.commands import ChatCommands, CommandError
from rnnchat.tui.messages import (ConversationFailed, ConversationOpened, LoadFailed, ModelLoaded, ModelsListed,
                                  ReplyChunk, ReplyDone, ReplyFailed, error_kind, one_line)
from rnnchat.tui.screens import HelpScreen, HistoryScreen, ModelPicker, PluginsScreen
from rnnchat.tui.screens.train import TrainScreen, TrainingRuns
from rnnchat.tui.startup import Startup, exit_after
from rnnchat.tui.widgets import Notice, SidePanel, TemperatureControl, Transcript, TurnView
from rnnchat.tui.widgets.panel import TEMP_STEP

FLUSH_SECONDS = 0.04  # a worker posts the characters it has every 40 ms at most: 2-3 screen updates per 100 ms
PAINT_SHARE = 0.25  # ...and less often when painting a batch takes longer: the screen gets at most ~25 %
TRAIN_HINT = "rnnchat train corpora/tiny.txt --name tiny"

SessionFactory = Callable[[str | None, SamplingParams, bool], object]


def default_session_factory(model: str | None, params: SamplingParams, fallback: bool):
    from rnnchat.session.chat import ChatSession  # torch-free at import; load() imports the engine

    return ChatSession(model, params=params, fallback=fallback)


class Pacer:
    """Paces a reply's screen updates (shared by its worker and the UI thread).

    The worker posts the next batch only when the UI has painted the previous one and at least
    ``max(FLUSH_SECONDS, cost / PAINT_SHARE)`` has passed, where ``cost`` is how long the last batch
    took from posting to painted. Drawing shares the interpreter with generation, so bounding its
    share is what keeps a fast model fast. The worker only reads it; the UI thread only calls
    :meth:`painted` (an Event and a float: safe across threads).
    """

    def __init__(self, interval: float = FLUSH_SECONDS, share: float = PAINT_SHARE) -> None:
        self.interval, self.share = interval, share
        self.cost = 0.0
        self.last = 0.0
        self._painted = threading.Event()
        self._painted.set()

    def ready(self, now: float) -> bool:
        return self._painted.is_set() and now - self.last >= max(self.interval, self.cost / self.share)

    def sent(self, now: float) -> None:
        self.last = now
        self._painted.clear()

    def painted(self, posted_at: float) -> None:
        self.cost = max(0.0, time.monotonic() - posted_at)
        self._painted.set()


@dataclasses.dataclass
class LiveReply:
    id: int
    reply: object
    view: TurnView
    user_text: str | None  # the text sent (None for a regenerate), put back if the reply fails


class RnnchatApp(App[int]):
    TITLE = "rnnchat"
    CSS_PATH = "rnnchat.tcss"
    COMMANDS = App.COMMANDS | {ChatCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        Binding("escape", "stop_reply", "Stop", id="stop"),
        Binding("ctrl+up", "temperature_up", "Temp+", key_display="^↑", priority=True, id="temperature_up"),
        Binding("ctrl+down", "temperature_down", "Temp−", key_display="^↓", priority=True, id="temperature_down"),
        Binding("ctrl+r", "regenerate", "Regen", priority=True, id="regenerate"),
        Binding("ctrl+o", "toggle_confidence", "Colours", priority=True, id="confidence"),
        Binding("f1", "show_help", "Help", id="help"),
        Binding("ctrl+n", "reset_chat", "New chat", show=False, priority=True, id="new_chat"),
        Binding("ctrl+l", "pick_model", "Models", show=False, priority=True, id="models"),
        Binding("ctrl+y", "show_history", "History", show=False, priority=True, id="history"),
        Binding("ctrl+t", "show_training", "Train", show=False, priority=True, id="train"),
    ]
    KEY_HELP = [
        ("Enter", "send your message (or run a /command)"),
        ("Esc", "stop the reply; what was written is kept"),
        ("ctrl+↑ / ctrl+↓", "temperature up / down by 0.05, also while typing"),
        ("Tab", "move between the input, the transcript and the temperature control"),
        ("ctrl+r", "regenerate the last reply"),
        ("ctrl+o", "confidence colours on/off"),
        ("ctrl+n", "new conversation"),
        ("ctrl+l", "switch model"),
        ("ctrl+y", "conversation history"),
        ("ctrl+t", "train a model (runs in the background)"),
        ("ctrl+p", "command palette: every action, and /commands with arguments"),
        ("F1", "this help"),
        ("ctrl+q", "quit, also during a reply"),
    ]

    def __init__(self, model: str | None = None, *, session_factory: SessionFactory | None = None,
                 settings: Settings | None = None, settings_warning: str | None = None,
                 persist_settings: bool = True) -> None:
        super().__init__()
        self.requested_model = model
        self.settings = settings if settings is not None else Settings()
        self.settings_warning = settings_warning
        self.persist_settings = persist_settings
        self.params = self.settings.params()  # the live values every session reads while it streams
        self.session_factory = session_factory or default_session_factory
        self.session = None
        self.confidence = bool(self.settings.confidence)
        self.startup = Startup()
        self.exit_after = exit_after()
        self._quitting = threading.Event()
        self._load_token = 0
        self._loading: str | None = None  # name being loaded, while a load is in flight
        self._reply_counter = 0
        self._live: LiveReply | None = None
        self._after_reply: list[Callable[[], None]] = []
        self._model_names: list[str] = []
        self._settings_timer = None
        self._conv_token = 0
        self._painted = False
        self._ready_pending = False
        self.training = TrainingRuns()  # the training runs this app started (tui/screens/train.py)

    # ---- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="main"):
            with Vertical(id="chat"):
                yield Transcript(id="transcript")
                yield Input(placeholder="Say something… (Enter sends · /help for commands)", id="input")
            yield SidePanel(id="panel")
        yield Footer(compact=True)

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)

    @property
    def panel(self) -> SidePanel:
        return self.query_one(SidePanel)

    @property
    def input(self) -> Input:
        return self.query_one("#input", Input)

    def on_mount(self) -> None:
        if self.settings.theme and self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.panel.show_params(self.params)
        self.panel.show_confidence(self.confidence, "^o")
        self.input.focus()
        if self.settings_warning:
            self.notify(self.settings_warning, severity="warning", markup=False)
        self.open_model(self.requested_model or self.settings.model, explicit=self.requested_model is not None)

    def on_ready(self, event: events.Ready) -> None:
        """Textual sends Ready once the DOM is ready and the first frame has been displayed."""
        self._painted = True
        self.startup.mark("first-frame", since=event.time)
        if self.exit_after == "first-frame":
            self.exit(0)
        elif self._ready_pending:
            self._mark_ready()

    def _mark_ready(self) -> None:
        """The model is loaded and the screen shows it: the user can type and get an answer."""
        if not self._painted:  # a model that loads before the first frame waits for it
            self._ready_pending = True
            return
        self._ready_pending = False
        self.startup.mark("ready")
        if self.exit_after == "ready":
            self.exit(0)

    # ---- loading a model ------------------------------------------------------------------
    def open_model(self, name: str | None, explicit: bool = True, then_open: int | None = None) -> None:
        """Load ``name`` (None: the default) in a worker; the current session stays usable until it is ready."""
        self._load_token += 1
        token = self._load_token
        session = self.session_factory(name, self.params, not explicit)
        self._loading = name or "default model"
        self.panel.show_model(None, loading=self._loading)
        self.sub_title = f"loading {self._loading}…"
        self.transcript.remove_notices("loading")
        self.transcript.remove_notices("error")
        self.transcript.add_notice(Notice(Text.assemble(("Loading ", "dim"), (self._loading, "bold"),
                                                        ("… (you can look around meanwhile: F1 for help)", "dim")),
                                          kind="loading"))
        self._load_in_thread(session, token, then_open)

    @work(thread=True, group="load", exclusive=True, exit_on_error=False, name="load model")
    def _load_in_thread(self, session, token: int, then_open: int | None) -> None:
        """Runs ``session.load`` in a daemon thread and waits for it, polling for cancellation, so that
        quitting during a load (importing torch takes seconds) is immediate."""
        worker = get_current_worker()
        box: dict = {}

        def target() -> None:
            try:
                box["info"] = session.load()
            except BaseException as exc:  # noqa: BLE001 - reported to the UI
                box["error"] = exc
                return
            store = getattr(session, "store", None)
            if store is not None:  # a damaged history is found (and moved aside) now, not at the first save
                try:
                    store.list(1)
                except Exception:  # noqa: BLE001 - reported when the history is used
                    pass
            if then_open is not None:
                try:
                    box["opened"] = session.open_conversation(then_open)
                except BaseException as exc:  # noqa: BLE001
                    box["open_error"] = exc

        thread = threading.Thread(target=target, name="rnnchat-load", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.05)
            if worker.is_cancelled or self._quitting.is_set():
                return
        if "error" in box:
            exc = box["error"]
            session.close()
            self.post_message(LoadFailed(token, session.model_name, one_line(exc), error_kind(exc)))
            return
        self.post_message(ModelLoaded(token, session, box["info"], box.get("opened")))
        if "open_error" in box:
            self.post_message(ConversationFailed(self._conv_token, one_line(box["open_error"])))

    def on_model_loaded(self, message: ModelLoaded) -> None:
        if message.token != self._load_token:  # a newer load superseded this one
            message.session.close()
            return
        self._loading = None
        old, self.session = self.session, message.session
        if old is not None and old is not message.session:
            old.close()
        info = message.info
        self.sub_title = info.name
        self.panel.show_model(info)
        self.panel.show_params(self.params)
        self.panel.show_speed(None)
        self.settings.model = info.source
        self._settings_changed()
        if message.opened is not None:
            self._rebuild()
            self.notify(f"Reopened “{message.opened.title}”", markup=False)
        else:
            self.transcript.clear()
            self.transcript.add_notice(Notice(self._welcome(info), kind="tip"))
        if info.note:
            self.notify(info.note, severity="warning", markup=False)
        self.refresh_model_names()
        self._tell_history()
        self._mark_ready()

    def _tell_history(self) -> None:
        """Say what the history store had to do (a damaged file moved aside)."""
        store = getattr(self.session, "store", None)
        take = getattr(store, "take_warnings", None)
        for warning in (take() if take is not None else ()):
            self.notify(warning, title="Chat history", severity="warning", markup=False, timeout=15)

    def _welcome(self, info) -> Text:
        t = Text()
        t.append(info.name, style="bold")
        t.append(f" is ready ({info.cell}, {info.layers}×{info.hidden}, on {info.device}). ", style="")
        t.append("Type a line and press Enter.\n")
        if self.session.framing.has_speakers:
            t.append("It answers as a speaker of a play; each reply is labelled with the name it chose.\n",
                     style="dim")
        t.append("Turn the temperature while it writes: ctrl+↑/ctrl+↓, the control on the right, or /temp 0.7. "
                 "ctrl+o colours each character by the model's confidence. F1 or /help for the rest.", style="dim")
        return t

    def on_load_failed(self, message: LoadFailed) -> None:
        if message.token != self._load_token:
            return
        self._loading = None
        self.transcript.remove_notices("loading")
        name = message.model or "the default model"
        what = {
            "not-found": f"Pick another model with /model (ctrl+l), or train one:  {TRAIN_HINT}",
            "broken": f"Pick another model with /model (ctrl+l); `rnnchat inspect {name}` shows the file's details.",
            "device": "Choose another device: RNNCHAT_DEVICE=cpu rnnchat",
            "plugin": "See /plugins for the plugin's error; pick another model with /model.",
        }.get(message.kind, "Pick another model with /model (ctrl+l); /plugins lists plugin errors.")
        body = Text()
        body.append(f"Could not open {name}\n", style="bold")
        body.append(message.error + "\n")
        body.append("What to do: ", style="bold")
        body.append(what)
        if self.session is not None and self.session.info is not None:
            body.append(f"\nStill chatting with {self.session.info.name}.", style="dim")
            self.panel.show_model(self.session.info)
            self.sub_title = self.session.info.name
        else:
            self.panel.show_model(None, error=message.error)
            self.sub_title = "no model"
        self.transcript.add_notice(Notice(body, kind="error"))
        self.notify(message.error, title=f"Could not open {name}", severity="error", markup=False)
        self.refresh_model_names()
        if self.exit_after == "ready":
            self.startup.mark("load-failed")
            self.exit(1)

    # ---- model names for the command palette -----------------------------------------------
    @work(thread=True, group="models", exclusive=True, exit_on_error=False, name="list models")
    def refresh_model_names(self) -> None:
        try:
            from rnnchat.plugins.manager import get_host

            names = sorted(get_host().checkpoints)
        except Exception:  # noqa: BLE001 - the palette just lists no models
            return
        self.post_message(ModelsListed(names))

    def on_models_listed(self, message: ModelsListed) -> None:
        self._model_names = message.names

    def known_models(self) -> list[str]:
        return list(self._model_names)

    # ---- talking --------------------------------------------------------------------------
    @on(Input.Submitted, "#input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value
        if not text.strip():
            return
        self.input.value = ""
        if text.lstrip().startswith("/"):
            self.run_chat_command(text.strip())
        else:
            self.send_text(text)

    @on(Input.Changed, "#input")
    def _draft_changed(self, event: Input.Changed) -> None:
        self._read_draft(event.value)

    def _read_draft(self, text: str) -> None:
        """Let the model read the draft while it is typed (or pasted): Enter then has only the
        template's last characters left to read (see rnnchat/session/readahead.py)."""
        session = self.session
        if (not text.strip() or text.lstrip().startswith("/") or session is None or not session.loaded
                or self._loading is not None or self.replying):
            return
        session.read_ahead(text)

    def _can_talk(self, restore: str | None = None) -> bool:
        problem = None
        if self._loading is not None and (self.session is None or not self.session.loaded):
            problem = f"{self._loading} is still loading…"
        elif self.session is None or not self.session.loaded:
            problem = "No model is open: pick one with /model (ctrl+l)"
        elif self._loading is not None:
            problem = f"switching to {self._loading}…"
        elif self.replying:
            problem = "A reply is still being written: Esc stops it"
        if problem:
            self.notify(problem, severity="warning", markup=False)
            if restore is not None:
                self._restore_input(restore)
            return False
        return True

    @property
    def replying(self) -> bool:
        """A reply is in flight: its worker has not reported the end yet (it may be saving)."""
        return self._live is not None or (self.session is not None and self.session.busy)

    def _restore_input(self, text: str) -> None:
        self.input.value = text
        self.input.cursor_position = len(text)

    def send_text(self, text: str) -> None:
        if not self._can_talk(restore=text):
            return
        try:
            reply = self.session.send(text)
        except SessionError as exc:
            self.notify(str(exc), severity="error", markup=False)
            self._restore_input(text)
            return
        self.transcript.remove_notices("tip")
        self.transcript.add_turn(TurnView("user", text=text))
        self._start_reply(reply, text)

    def _model_view(self, live: bool = False, turn=None) -> TurnView:
        info = self.session.info if self.session is not None else None
        kw = {}
        if turn is not None:
            kw = dict(text=turn.text, probs=turn.probs, reason=turn.reason, chars_per_s=turn.chars_per_s)
        return TurnView("model", model_name=info.name if info else "model", framing=self.session.framing,
                        live=live, confidence=self.confidence, **kw)

    def _start_reply(self, reply, user_text: str | None) -> None:
        self._reply_counter += 1
        view = self.transcript.add_turn(self._model_view(live=True))
        self._live = LiveReply(self._reply_counter, reply, view, user_text)
        self.transcript.anchor()
        self._stream_reply(reply, self._reply_counter)

    @work(thread=True, group="reply", exit_on_error=False, name="reply")
    def _stream_reply(self, reply, reply_id: int) -> None:
        """Iterate the reply; post what arrived every FLUSH_SECONDS. Only post_message touches the app."""
        worker = get_current_worker()
        pacer = Pacer()  # the first character goes out at once, the rest in paced batches
        text: list[str] = []
        probs: list[float] = []

        def consume() -> None:
            for chunk in reply:
                text.append(chunk.text)
                probs.extend(chunk.probs)
                if worker.is_cancelled or self._quitting.is_set():
                    reply.cancel()
                now = time.monotonic()
                if pacer.ready(now):
                    pacer.sent(now)
                    self.post_message(ReplyChunk(reply_id, "".join(text), tuple(probs), pacer, now))
                    text.clear()
                    probs.clear()

        try:
            # on the session's engine thread, where its torch code runs best (see ChatSession)
            reply.session.on_engine_thread(consume)
        except Exception as exc:  # noqa: BLE001 - the session undid the exchange; the UI says why
            self.post_message(ReplyFailed(reply_id, one_line(exc)))
            return
        if text:
            self.post_message(ReplyChunk(reply_id, "".join(text), tuple(probs)))
        self.post_message(ReplyDone(reply_id, reply.turn, list(reply.notes)))

    def on_reply_chunk(self, message: ReplyChunk) -> None:
        live = self._live
        if live is not None and live.id == message.reply_id:
            live.view.append(message.text, message.probs)
        if message.pacer is not None:  # tell the worker once this batch is on the screen
            self.call_after_refresh(message.pacer.painted, message.posted_at)

    def on_reply_done(self, message: ReplyDone) -> None:
        live = self._live
        if live is None or live.id != message.reply_id:
            return
        self._live = None
        live.view.finish(message.turn)
        self.panel.show_speed(message.turn)
        for note in message.notes:
            self.notify(note, severity="warning", markup=False)
        self._tell_history()
        self._run_pending()
        self._read_draft(self.input.value)  # typed while the reply streamed

    def on_reply_failed(self, message: ReplyFailed) -> None:
        live = self._live
        if live is None or live.id != message.reply_id:
            return
        self._live = None
        self._rebuild()
        if live.user_text is not None and not self.input.value:
            self._restore_input(live.user_text)
        self.transcript.add_notice(Notice(Text.assemble(("The reply failed: ", "bold"), message.error), kind="error"))
        self.notify(message.error, title="The reply failed", severity="error", markup=False)
        self._run_pending()

    def _run_pending(self) -> None:
        pending, self._after_reply = self._after_reply, []
        for fn in pending:
            fn()

    def _when_idle(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` now, or stop the reply in flight and run it when the reply has ended."""
        if self.replying:
            self._after_reply.append(fn)
            if self.session is not None:
                self.session.stop()
            return
        fn()

    def _rebuild(self) -> None:
        """Redraw the transcript from the session's turns (after rewind, regenerate, reopen)."""
        t = self.transcript
        t.clear()
        if self.session is None:
            return
        for turn in self.session.turns:
            if turn.role == "user":
                t.add_turn(TurnView("user", text=turn.text))
            elif turn.reason is not None:
                t.add_turn(self._model_view(turn=turn))
        t.anchor()

    # ---- actions (keys, commands, palette) -------------------------------------------------
    def action_stop_reply(self) -> None:
        if self.session is not None and self.session.busy:
            self.session.stop()

    def action_temperature_up(self) -> None:
        self.set_temperature(self.params.temperature + TEMP_STEP)

    def action_temperature_down(self) -> None:
        self.set_temperature(max(self.params.temperature - TEMP_STEP, 0.0))

    @on(TemperatureControl.Changed)
    def _temperature_control(self, message: TemperatureControl.Changed) -> None:
        self.set_temperature(message.value)

    def set_temperature(self, value: float) -> None:
        try:
            value = check_temperature(round(float(value), 2))
        except (SamplingError, TypeError, ValueError) as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.params.temperature = value  # the reply in flight reads it for its next character
        self.panel.show_params(self.params)
        self._settings_changed()

    def set_param(self, name: str, value) -> bool:
        try:
            dataclasses.replace(self.params, **{name: value}).validate()
        except SamplingError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        setattr(self.params, name, value)
        self.panel.show_params(self.params)
        self._settings_changed()
        return True

    def action_regenerate(self) -> None:
        self._when_idle(self._regenerate)

    def _regenerate(self) -> None:
        if not self._can_talk():
            return
        try:
            reply = self.session.regenerate()
        except SessionError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        self._rebuild()
        self._start_reply(reply, None)

    def action_reset_chat(self) -> None:
        self._when_idle(self._reset)

    def _reset(self) -> None:
        if self.session is None or not self.session.loaded:
            return
        try:
            self.session.reset()
        except SessionError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.transcript.clear()
        self.transcript.add_notice(Notice(Text("New conversation: the model starts from a blank state.",
                                               style="dim"), kind="tip"))
        self.panel.show_speed(None)

    def action_rewind_last(self) -> None:
        self.run_chat_command("/rewind")

    def _rewind(self, n: int | None) -> None:
        if self.session is None or not self.session.loaded:
            return
        users = [i for i, t in enumerate(self.session.turns) if t.role == "user"]
        if not users:
            self.notify("Nothing to rewind yet", severity="warning")
            return
        n = len(users) if n is None else n
        if not 1 <= n <= len(users):
            self.notify(f"/rewind N: N is one of your messages, 1 to {len(users)}", severity="error")
            return
        k = users[n - 1]
        text = self.session.turns[k].text
        try:
            self.session.rewind(k)
        except SessionError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self._rebuild()
        self._restore_input(text)
        self.input.focus()
        self.notify(f"Back to before your message {n}; it is in the input to edit or resend", markup=False)

    def action_toggle_confidence(self) -> None:
        self.confidence = not self.confidence
        for view in self.transcript.turn_views():
            view.set_confidence(self.confidence)
        self.panel.show_confidence(self.confidence, "^o")
        self._settings_changed()

    def action_pick_model(self) -> None:
        current = self.session.info.name if self.session is not None and self.session.info else None

        def chosen(name: str | None) -> None:
            if name:
                self._switch_model(name)

        self.push_screen(ModelPicker(current), chosen)

    def _switch_model(self, name: str, then_open: int | None = None) -> None:
        self._when_idle(lambda: self.open_model(name, explicit=True, then_open=then_open))

    def action_show_plugins(self) -> None:
        self.push_screen(PluginsScreen())

    def action_show_help(self) -> None:
        self.push_screen(HelpScreen(self.KEY_HELP))

    def action_show_history(self) -> None:
        from rnnchat.session.history import HistoryStore

        store = getattr(self.session, "store", None) or HistoryStore()
        current = getattr(self.session, "conversation_id", None)

        def chosen(result) -> None:
            if result:
                self._open_conversation(*result)

        self.push_screen(HistoryScreen(store, current), chosen)

    def _open_conversation(self, conv_id: int, model: str) -> None:
        self._conv_token += 1
        if self.session is not None and self.session.info is not None and self.session.info.source == model:
            self._when_idle(lambda: self._open_in_thread(self.session, conv_id, self._conv_token))
        else:
            self._switch_model(model, then_open=conv_id)

    @work(thread=True, group="conversation", exclusive=True, exit_on_error=False, name="open conversation")
    def _open_in_thread(self, session, conv_id: int, token: int) -> None:
        try:
            conv = session.open_conversation(conv_id)
        except Exception as exc:  # noqa: BLE001
            self.post_message(ConversationFailed(token, one_line(exc)))
            return
        self.post_message(ConversationOpened(token, conv))

    def on_conversation_opened(self, message: ConversationOpened) -> None:
        if message.token != self._conv_token:
            return
        self._rebuild()
        self.panel.show_params(self.params)
        self.notify(f"Reopened “{message.conversation.title}”", markup=False)

    def on_conversation_failed(self, message: ConversationFailed) -> None:
        self.notify(message.error, title="Could not reopen the conversation", severity="error", markup=False)

    def action_save_transcript(self, path: str | None = None) -> None:
        if self.session is None:
            self.notify("Nothing to save yet", severity="warning")
            return
        try:
            target = self.session.export_markdown(path or None)
        except SessionError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        self.notify(f"Saved the transcript to {target}", markup=False)

    def action_show_training(self) -> None:
        if not isinstance(self.screen, TrainScreen):
            self.push_screen(TrainScreen(self.training))

    async def action_quit(self, ask: bool = True) -> None:
        """Quit at once, also during a reply: the worker sees the stop within one character.
        With a training run going, first ask whether to leave it running or stop it."""
        if ask and self.training.ask_before_quit(self, lambda: self.call_later(self.action_quit, False)):
            return
        self._quitting.set()
        if self.session is not None:
            self.session.stop()
        self._save_settings()
        self.exit(self.return_code or 0)

    def on_unmount(self) -> None:
        self._quitting.set()
        if self.session is not None:
            self.session.stop()

    def palette_action(self, action: str) -> None:
        """Run one of this app's actions by name (the command palette's hits use it)."""
        self.call_later(self.run_action, action)

    # ---- chat commands --------------------------------------------------------------------
    def run_chat_command(self, line: str) -> None:
        try:
            name, arg = chat_commands.parse(line)
            self._dispatch(name, arg)
        except CommandError as exc:
            self.notify(str(exc), severity="error", markup=False)

    def _dispatch(self, name: str, arg: str) -> None:
        num = chat_commands.number
        if name == "temp":
            self.set_temperature(num(arg, "temp"))
        elif name == "topk":
            self.set_param("top_k", num(arg, "topk", int))
        elif name == "topp":
            self.set_param("top_p", num(arg, "topp"))
        elif name == "max":
            self.set_param("max_chars", num(arg, "max", int))
        elif name == "seed":
            if arg.lower() in ("off", "none", "random"):
                self.set_param("seed", None)
            else:
                self.set_param("seed", num(arg, "seed", int))
        elif name == "reset":
            self.action_reset_chat()
        elif name == "regen":
            self.action_regenerate()
        elif name == "rewind":
            n = num(arg, "rewind", int) if arg else None
            self._when_idle(lambda: self._rewind(n))
        elif name == "model":
            if arg:
                self._switch_model(arg)
            else:
                self.action_pick_model()
        elif name == "history":
            self.action_show_history()
        elif name == "plugins":
            self.action_show_plugins()
        elif name == "colors":
            self.action_toggle_confidence()
        elif name == "save":
            self.action_save_transcript(arg or None)
        elif name == "stop":
            self.action_stop_reply()
        elif name == "help":
            self.action_show_help()
        elif name == "train":
            self.action_show_training()
        elif name == "quit":
            self.call_later(self.action_quit)

    # ---- settings -------------------------------------------------------------------------
    def _theme_changed(self, theme) -> None:
        self.settings.theme = theme.name
        self._settings_changed()

    def _settings_changed(self) -> None:
        self.settings.take_params(self.params)
        self.settings.confidence = self.confidence
        if self._settings_timer is None:
            self._settings_timer = self.set_timer(0.5, self._save_settings)

    def _save_settings(self) -> None:
        self._settings_timer = None
        if not self.persist_settings:
            return
        self.settings.take_params(self.params)
        self.settings.confidence = self.confidence
        try:
            self.settings.save()
        except OSError as exc:
            self.notify(f"could not save the settings: {exc}", severity="warning", markup=False)


def run_app(model: str | None = None, fast_exit: bool = True) -> None:
    """Open the chat app (``rnnchat``, ``rnnchat chat``).

    When the app has closed (terminal restored, workers finished, history and settings written)
    and torch was loaded, the process ends with ``os._exit``: tearing torch down takes from half a
    second to several on a busy machine, and nothing is left to do, so quitting stays immediate.
    """
    settings, warning = Settings.load()
    app = RnnchatApp(model, settings=settings, settings_warning=warning)
    code = app.run()
    app.startup.report()
    code = code or 0
    if fast_exit and "torch" in sys.modules:
        exit_now(code)
    if code:
        raise SystemExit(code)
