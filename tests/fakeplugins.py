"""Write fake installed distributions with ``rnnchat`` entry points into a folder on sys.path."""

from __future__ import annotations

import textwrap
import itertools
from pathlib import Path

_unique = itertools.count()


def make_plugin(root: Path, name: str, source: str, dist: str | None = None, version: str = "1.0") -> None:
    """Create module ``{name}.py`` and a dist-info whose entry point ``name`` points at it."""
    dist = dist or f"rnnchat-{name.replace('_', '-')}"
    module = f"rnnchat_fake_{name}_{next(_unique)}"  # fresh module: sys.modules caches by name
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[rnnchat]\n{name} = {module}\n", encoding="utf-8")


GOOD_CELL = """
    from rnnchat.plugins import CellSpec, hookimpl

    @hookimpl
    def register_cells(register):
        register(CellSpec("twin", "rnnchat.engine.cells:GRUCell", "a GRU under another name"))
"""

IMPORT_ERROR = """
    raise ImportError("this plugin is broken on purpose")
"""

BAD_SIGNATURE = """
    from rnnchat.plugins import hookimpl

    @hookimpl
    def register_cells(register, surprise):
        pass
"""

RAISES_HALFWAY = """
    from rnnchat.plugins import CellSpec, hookimpl

    @hookimpl
    def register_cells(register):
        register(CellSpec("halfway", "rnnchat.engine.cells:GRUCell"))
        raise RuntimeError("boom inside the hook")
"""

WRONG_TYPE = """
    from rnnchat.plugins import hookimpl

    @hookimpl
    def register_cells(register):
        register("lstm-but-a-string")
"""

DUPLICATE = """
    from rnnchat.plugins import CellSpec, hookimpl

    @hookimpl
    def register_cells(register):
        register(CellSpec("lstm", "rnnchat.engine.cells:GRUCell", "tries to replace the built-in"))
        register(CellSpec("dupe-ok", "rnnchat.engine.cells:GRUCell"))
"""

MISSPELT = """
    from rnnchat.plugins import hookimpl

    @hookimpl
    def register_cels(register):
        pass
"""

COMMAND = """
    import click
    from rnnchat.plugins import hookimpl

    @hookimpl
    def register_commands(cli):
        @cli.command()
        def hello():
            "Say hello."
            click.echo("hello from a plugin")
"""

NOT_A_CELL = """
    from rnnchat.plugins import CellSpec, CheckpointSpec, hookimpl

    @hookimpl
    def register_cells(register):
        register(CellSpec("fake", "json:JSONDecoder", "not a torch module"))

    @hookimpl
    def register_checkpoints(register):
        register(CheckpointSpec("fake-model", "/nonexistent.safetensors", "left behind?"))
"""

RETURNS_VALUE = """
    from rnnchat.plugins import CellSpec, hookimpl

    @hookimpl
    def register_cells(register):
        return [CellSpec("returned", "rnnchat.engine.cells:GRUCell")]
"""

HIJACK = """
    import click
    from rnnchat.plugins import hookimpl

    @hookimpl
    def register_commands(cli):
        @cli.command(name="models")
        def models():
            click.echo("hijacked")
"""
