"""The user's settings while the chat app runs.

:class:`SettingsKeeper` applies them when the app mounts (theme, confidence colours, and the
warnings of a damaged file or an unusable key), takes the values in use into them after every
change, and writes them soon after (once for many changes) and when the app quits. Reading and
writing the file itself is ``rnnchat.session.settings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnchat.session.settings import Settings

if TYPE_CHECKING:
    from rnnchat.tui.app import RnnchatApp

SAVE_DELAY = 0.5  # seconds: many changes in a row are written once


class SettingsKeeper:
    def __init__(self, app: "RnnchatApp", settings: Settings | None, warning: str | None = None,
                 persist: bool = True) -> None:
        self.app = app
        self.settings = settings if settings is not None else Settings()
        self.warning = warning  # what Settings.load said about a damaged file
        self.persist = persist  # False: never write the file (tests, demos)
        self._timer = None

    def apply(self, notices: list[str]) -> None:
        """On mount: the saved theme and confidence colours; the settings' warning and ``notices``
        (the unusable entries of the ``keys`` table) each as a warning."""
        app = self.app
        if self.settings.theme and self.settings.theme in app.available_themes:
            app.theme = self.settings.theme
        app.theme_changed_signal.subscribe(app, self._theme_changed)
        app.chat.confidence = bool(self.settings.confidence)
        for warning in ([self.warning] if self.warning else []) + list(notices):
            app.notify(warning, severity="warning", markup=False)

    def _theme_changed(self, theme) -> None:
        self.settings.theme = theme.name
        self.changed()

    def changed(self) -> None:
        """Take the values in use into the settings now; write them soon (once for many changes)."""
        self.settings.sampling = self.app.params
        self.settings.confidence = self.app.chat.confidence
        if self._timer is None:
            self._timer = self.app.set_timer(SAVE_DELAY, self.save)

    def save(self) -> None:
        """Write the settings now (a write that fails is a warning; the app goes on)."""
        self._timer = None
        if not self.persist:
            return
        try:
            self.settings.save()
        except OSError as exc:
            self.app.notify(f"could not save the settings: {exc}", severity="warning", markup=False)
