"""Named corpora: the project's catalog, downloaded and user-added texts (torch-free)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from rnnchat import paths
from rnnchat.errors import CorpusError
from rnnchat.plugins.specs import CorpusSpec


def catalog_specs() -> list[CorpusSpec]:
    """The catalog shipped with rnnchat (``rnnchat/catalog.json``)."""
    text = resources.files("rnnchat").joinpath("catalog.json").read_text(encoding="utf-8")
    specs = []
    for entry in json.loads(text)["corpora"]:
        specs.append(CorpusSpec(name=entry["name"], description=entry.get("description", ""),
                                url=entry.get("url"), sha256=entry.get("sha256"), licence=entry.get("licence", ""),
                                size=entry.get("size")))
    return specs


def local_path(name: str) -> Path:
    return paths.corpora_dir() / f"{name}.txt"


def resolve_corpus(name_or_path: str | None) -> Path:
    """A file path, or the name of a catalog corpus that has been downloaded or added."""
    if not name_or_path:
        raise CorpusError("no corpus given")
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    from rnnchat.plugins.manager import get_host

    spec = get_host().corpora.get(name_or_path)
    if spec is not None:
        if spec.path and Path(spec.path).exists():
            return Path(spec.path)
        if local_path(spec.name).exists():
            return local_path(spec.name)
        raise CorpusError(f"corpus {name_or_path!r} is not downloaded yet: run `rnnchat corpora get {name_or_path}`")
    if local_path(name_or_path).exists():
        return local_path(name_or_path)
    raise CorpusError(f"corpus {name_or_path!r} does not exist: give a UTF-8 text file or a name from "
                      "`rnnchat corpora`")
