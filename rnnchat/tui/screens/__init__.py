"""The chat app's screens: model picker, plugins, history, help."""

from rnnchat.tui.screens.help import HelpScreen
from rnnchat.tui.screens.history import HistoryScreen
from rnnchat.tui.screens.models import ModelPicker
from rnnchat.tui.screens.plugins import PluginsScreen

__all__ = ["HelpScreen", "HistoryScreen", "ModelPicker", "PluginsScreen"]
