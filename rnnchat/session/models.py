"""The models a chat can open: every registered checkpoint, read from its header (no torch)."""

from __future__ import annotations

from rnnchat.store.checkpoint_meta import describe
from rnnchat.core.errors import RnnchatError, first_line
from rnnchat.plugins.manager import get_host


def model_rows() -> list[dict]:
    """One dict per registered checkpoint: name, plugin, description (the checkpoint's, else the
    plugin's), hint and the header's facts,
    or ``error`` for a file that cannot be read."""
    host = get_host()
    rows = []
    for spec in host.checkpoints.values():
        row = {"name": spec.name, "plugin": host.owner_of("checkpoints", spec.name),
               "description": spec.description}
        try:
            facts = describe(spec.path)
            row.update(facts, description=facts["description"] or spec.description)  # the file's own first
        except (RnnchatError, OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            row.update(error=first_line(exc), path=str(spec.path))  # this one is broken; the others are listed
        rows.append(row)
    return rows
