"""The plugin system: hook markers, what plugins register, and the host that loads them."""

from rnnchat.plugins.hookspecs import hookimpl
from rnnchat.plugins.specs import CellSpec, CheckpointSpec, CorpusSpec

__all__ = ["hookimpl", "CellSpec", "CheckpointSpec", "CorpusSpec"]

