"""The chat app: ``rnnchat`` opens it.

The app composes the screen (a :class:`ChatView`, the side panel, header and footer), loads
models and runs actions; ``tui/settings_keeper.py`` keeps its settings, ``tui/run.py`` runs it
as a process. The screen paints before torch is imported: a model loads in a background thread
that waits for the engine's own thread. The reply in flight belongs to the chat view. Every
action (key, F1 help, palette, /command) is declared once in ``tui/actions.py``. Threads and
the path of a character: ``docs/architecture.md``.
"""

from __future__ import annotations

from rich.text import Text
from textual import events, on
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import Footer, Header

from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams
from rnnchat.session.api import ChatAPI, SessionFactory, default_session_factory
from rnnchat.session.settings import Settings
from rnnchat.session.types import Turn
from rnnchat.tui import actions
from rnnchat.tui.chat_view import ChatView
from rnnchat.tui.commands import ChatCommands
from rnnchat.tui.loading import start_loading, start_opening
from rnnchat.tui.messages import ConversationFailed, ConversationOpened, LoadFailed, ModelLoaded
from rnnchat.tui.notices import load_failure, welcome
from rnnchat.tui.training_runs import TrainingRuns
from rnnchat.tui.settings_keeper import SettingsKeeper
from rnnchat.tui.startup import Startup, exit_after
from rnnchat.tui.widgets import Composer, Notice, SidePanel, TemperatureControl, Transcript


class RnnchatApp(App[int]):
    TITLE = "rnnchat"
    CSS_PATH = "rnnchat.tcss"
    COMMANDS = App.COMMANDS | {ChatCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS = actions.bindings()

    def __init__(self, model: str | None = None, *, session_factory: SessionFactory | None = None,
                 settings: Settings | None = None, settings_warning: str | None = None,
                 persist_settings: bool = True) -> None:
        super().__init__()
        self.requested_model = model
        self.kept = SettingsKeeper(self, settings, settings_warning, persist_settings)  # tui/settings_keeper.py
        self.params: SamplingParams = self.settings.sampling  # immutable: replaced whole (set_params)
        self.keys, self.key_notices = actions.apply_keys(self, self.settings.keys)
        self.training = TrainingRuns()  # the training runs this app started (tui/training_runs.py)
        self.session_factory = session_factory or default_session_factory
        self.session: ChatAPI | None = None
        self.startup = Startup()
        self.exit_after = exit_after()
        self.loading_model: str | None = None  # the model being loaded, while a load is in flight
        self._load_token = 0
        self._conv_token = 0
        self._painted = False
        self._ready_pending = False

    # ---- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="main"):
            yield ChatView(on_ended=self._reply_ended, commands=tuple(actions.BY_COMMAND), id="chat")
            yield SidePanel(id="panel")
        yield Footer(compact=True)

    @property
    def chat(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def transcript(self) -> Transcript:
        return self.chat.transcript

    @property
    def input(self) -> Composer:
        return self.chat.input

    @property
    def panel(self) -> SidePanel:
        return self.query_one(SidePanel)

    @property
    def settings(self) -> Settings:
        return self.kept.settings

    def on_mount(self) -> None:
        self.kept.apply(self.key_notices)
        self.panel.show_params(self.params)
        self.panel.show_confidence(self.chat.confidence, actions.key_label(self.keys, "confidence"))
        self.input.focus()
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
        """Load ``name`` (None: the default) in the background (``tui/loading.py``); the current
        session stays usable meanwhile."""
        self._load_token += 1
        session = self.session_factory(name, self.params, not explicit)
        self.loading_model = self.chat.loading_model = name or "default model"
        self.panel.show_model(None, loading=self.loading_model)
        self.sub_title = f"loading {self.loading_model}…"
        self.transcript.remove_notices("loading")
        self.transcript.remove_notices("error")
        self.transcript.add_notice(Notice(Text.assemble(("Loading ", "dim"), (self.loading_model, "bold"),
                                                        ("… (you can look around meanwhile: F1 for help)", "dim")),
                                          kind="loading"))
        start_loading(session, self._load_token, then_open, self._conv_token, self.post_message)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        if message.token != self._load_token or not self.is_running:  # a newer load superseded this one
            message.session.close()
            return
        self.loading_model = self.chat.loading_model = None
        old, self.session = self.session, message.session
        self.chat.session = self.session
        if old is not None and old is not message.session:
            old.close()
        info = message.info
        self.sub_title = info.name
        self.panel.show_model(info)
        self.panel.show_params(self.params)
        self.panel.show_speed(None)
        self.settings.model = info.source
        if message.opened is not None:
            self._reopened(message.opened.title)
        else:
            self.transcript.clear()
            self.transcript.add_notice(Notice(welcome(info, self.session.framing), kind="tip"))
        if info.note:
            self.notify(info.note, severity="warning", markup=False)
        self.settings_changed()
        self._tell_history()
        self._mark_ready()
        self.chat.send_pending()

    def on_load_failed(self, message: LoadFailed) -> None:
        if message.token != self._load_token:
            return
        self.loading_model = self.chat.loading_model = None
        self.chat.drop_pending()
        self.transcript.remove_notices("loading")
        name = message.model or "the default model"
        still = self.session.info if self.session is not None else None
        self.panel.show_model(still, error=None if still else message.error)
        self.sub_title = still.name if still else "no model"
        self.transcript.add_notice(Notice(load_failure(name, message.error, message.kind, still), kind="error"))
        self.notify(message.error, title=f"Could not open {name}", severity="error", markup=False)
        if self.exit_after == "ready":
            self.startup.mark("load-failed")
            self.exit(1)

    def switch_model(self, name: str, then_open: int | None = None) -> None:
        self.chat.when_idle(lambda: self.open_model(name, explicit=True, then_open=then_open))

    # ---- conversations ----------------------------------------------------------------------
    def _reply_ended(self, turn: Turn | None) -> None:
        if turn is not None:
            self.panel.show_speed(turn)
            self._tell_history()

    def _tell_history(self) -> None:
        """Say what the history store had to do (a damaged file moved aside)."""
        for warning in (self.session.store.take_warnings() if self.session is not None else ()):
            self.notify(warning, title="Chat history", severity="warning", markup=False, timeout=15)

    def open_conversation(self, conv_id: int, model: str) -> None:
        self._conv_token += 1
        s = self.session
        if s is not None and s.info is not None and s.info.source == model:
            self.chat.when_idle(lambda: start_opening(s, conv_id, self._conv_token, self.post_message))
        else:
            self.switch_model(model, then_open=conv_id)

    def on_conversation_opened(self, message: ConversationOpened) -> None:
        if message.token == self._conv_token:
            self._reopened(message.conversation.title)

    def _reopened(self, title: str) -> None:
        self.params = self.session.params.replace(stop=())  # the conversation's values
        self.chat.rebuild()
        self.panel.show_params(self.params)
        self.settings_changed()
        self.notify(f"Reopened “{title}”", markup=False)

    def on_conversation_failed(self, message: ConversationFailed) -> None:
        self.notify(message.error, title="Could not reopen the conversation", severity="error", markup=False)

    # ---- actions ----------------------------------------------------------------------------
    def action_do(self, action_id: str) -> None:
        """Run an action of ``tui/actions.py`` (its key, the palette)."""
        actions.BY_ID[action_id].handler(self)

    def palette_action(self, action_id: str) -> None:
        self.call_later(self.action_do, action_id)

    @on(ChatView.Command)
    def run_chat_command(self, line: "str | ChatView.Command") -> None:
        typed, line = (line.typed, line.line) if isinstance(line, ChatView.Command) else ("", line)
        try:
            action, args = actions.parse(line)
        except actions.CommandError as exc:
            self.notify(str(exc), severity="error", markup=False)
            if typed and not self.input.text:
                self.chat.restore_input(typed)  # left in the input to fix
            return
        action.handler(self, *args)

    @on(TemperatureControl.Changed)
    def _temperature_control(self, message) -> None:
        actions.BY_ID["temperature"].handler(self, message.value)

    def set_params(self, **changes) -> bool:
        """New sampling values, validated, handed to the session whole (it reads them once per
        character: the reply in flight follows from its next character)."""
        try:
            params = self.params.replace(**changes)
        except SamplingError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        self.params = params
        if self.session is not None:
            self.session.set_params(params)
        self.panel.show_params(params)
        self.settings_changed()
        return True

    async def action_quit(self, ask: bool = True) -> None:
        """Quit at once, also during a reply: the worker sees the stop within one character.
        With a training run going, first ask whether to leave it running or stop it."""
        if ask and self.training.ask_before_quit(self, lambda: self.call_later(self.action_quit, False)):
            return
        self.chat.quitting.set()
        if self.session is not None:
            self.session.stop()
        self.settings_changed()
        self.kept.save()
        self.exit(self.return_code or 0)

    def settings_changed(self) -> None:
        """Take the values in use into the settings; they are written soon (tui/settings_keeper.py)."""
        self.kept.changed()
