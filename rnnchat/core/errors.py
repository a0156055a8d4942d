"""User-facing errors: each carries one line that says what was wrong and what to do."""

from __future__ import annotations


class RnnchatError(Exception):
    """A mistake the user can fix. The CLI prints it as one line and exits 1."""


class CheckpointError(RnnchatError):
    """A checkpoint file that cannot be used."""


class CorpusError(RnnchatError):
    """A training text that cannot be used."""


class PluginError(RnnchatError):
    """A plugin that broke the contract."""


class DeviceError(RnnchatError):
    """A device that is not available."""


class SamplingError(RnnchatError):
    """A sampling value that is out of range, or a model that produced invalid values."""


class ModelNotFound(RnnchatError):
    """A model name or path that does not exist."""


class SettingError(RnnchatError, ValueError):
    """A setting (an option or an ``RNNCHAT_*`` environment variable) with a value it cannot take."""


class ReadCancelled(RnnchatError):
    """A long read (a pasted message) was cancelled between chunks (Esc): nothing was sent."""


class PeerFailure(RnnchatError):
    """Another training process died, or the connection between processes broke."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
