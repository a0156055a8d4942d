"""rnnchat-mingru: the minGRU and minLSTM cells of "Were RNNs All We Needed?" (Feng et al., 2024).

This module is what rnnchat loads through the ``rnnchat`` entry point. It only
registers the cells, by name and import string, so importing it does not
import torch; ``rnnchat_mingru.cells`` is imported the first time a model uses
one of them.
"""

from rnnchat.plugins import CellSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def register_cells(register):
    register(CellSpec(
        "mingru", "rnnchat_mingru.cells:MinGRUCell",
        "minGRU (Feng et al. 2024): input-only gates, parallel log-space scan; option chunk"))
    register(CellSpec(
        "minlstm", "rnnchat_mingru.cells:MinLSTMCell",
        "minLSTM (Feng et al. 2024): input-only forget/input gates, parallel log-space scan; option chunk"))
