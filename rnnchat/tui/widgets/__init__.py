"""The chat app's widgets."""

from rnnchat.tui.widgets.composer import Composer
from rnnchat.tui.widgets.panel import SidePanel, TemperatureControl
from rnnchat.tui.widgets.transcript import Notice, Transcript, TurnView

__all__ = ["Composer", "SidePanel", "TemperatureControl", "Notice", "Transcript", "TurnView"]
