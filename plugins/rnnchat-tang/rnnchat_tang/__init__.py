"""rnnchat-tang: a character LSTM trained on 57,603 Tang poems, registered as ``tang-poems``.

Chat with it by giving a title: the model writes the author and the poem.
The package holds only the model file and this registration (no torch import).
"""

from pathlib import Path

from rnnchat.plugins import CheckpointSpec, hookimpl

__version__ = "0.1.0"
MODEL = Path(__file__).parent / "tang-poems.safetensors"


@hookimpl
def register_checkpoints(register):
    register(CheckpointSpec("tang-poems", MODEL,
                            "2x384 LSTM trained on 57,603 Tang poems; give it a title, it writes the poem"))
