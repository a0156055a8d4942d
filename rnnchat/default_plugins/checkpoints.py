"""The bundled model, and models trained with ``rnnchat train --name``."""

from pathlib import Path

from rnnchat.plugins import CheckpointSpec, hookimpl
from rnnchat.plugins.specs import NAME_RE

MODELS = Path(__file__).parent / "models"


@hookimpl
def register_checkpoints(register):
    bundled = MODELS / "shakespeare.safetensors"
    if bundled.exists():
        register(CheckpointSpec("shakespeare", bundled,
                                "2-layer LSTM trained on Tiny Shakespeare (bundled)"))
    from rnnchat.core.paths import models_dir

    folder = models_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.safetensors")):
            if path.stem != "shakespeare" and NAME_RE.match(path.stem):
                register(CheckpointSpec(path.stem, path, "trained locally"))
