"""The plugin system: hook markers, what plugins register, and the host that loads them."""

from rnnchat.plugins.hookspecs import hookimpl
from rnnchat.plugins.specs import CellSpec, CheckpointSpec, CorpusSpec

__all__ = ["hookimpl", "CellSpec", "CheckpointSpec", "CorpusSpec", "get_host"]


def get_host(reload: bool = False):
    from rnnchat.plugins.manager import get_host as _get_host
    return _get_host(reload)
