"""Resume state: weights, optimizer moments, RNG streams and data position, in safetensors + JSON.

``state.safetensors`` is replaced atomically at every save, and the save before
it is kept as ``state.prev.safetensors`` (a hard link, so it costs no copy). A
reader that finds the latest state unreadable (a copy cut short, a disk that
lied) falls back to the previous one and says so. Nothing is pickled: the file
is parsed from bytes, so rank 0 can read it and broadcast it to ranks on other
machines.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as serialize

from rnnchat.core.atomic import TMP_SUFFIX, atomic_path
from rnnchat.core.errors import RnnchatError, first_line
from rnnchat.core.safe_files import open_regular, read_regular

MAX_STATE_BYTES = 32 << 30  # a state is read whole into memory; a larger file is refused

STATE_FORMAT = 2
READABLE_FORMATS = (1, 2)


def previous_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_state(path: Path, trainer, hidden: list[torch.Tensor] | None = None) -> None:
    """Write ``trainer``'s state; ``hidden`` is the carried recurrent state of every stream (all ranks)."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
    opt = trainer.opt.state_dict()
    for pid, st in opt["state"].items():
        for key, value in st.items():
            tensors[f"opt.{pid}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if trainer.device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(trainer.device)
    tensors["rng.data"] = trainer.data_gen.get_state()
    for i, t in enumerate(hidden or []):
        tensors[f"hidden.{i}"] = t.detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]
    extra = getattr(trainer, "extra_state", {})
    meta = {"format": STATE_FORMAT, "progress": asdict(trainer.progress), "config": asdict(trainer.cfg),
            "corpus": {"name": trainer.corpus.name, "sha256": trainer.corpus.sha256,
                       "path": extra.get("corpus_path") or str(Path(trainer.corpus.path).resolve())},
            **{k: v for k, v in extra.items() if k in ("name", "out")},
            "world_size": trainer.world, "vocab": trainer.corpus.vocab.chars, "param_groups": groups}
    try:
        # serialized in memory and written to our own temp file: safetensors' save_file makes a temp
        # file of its own, which a kill -9 leaves behind, and raises SafetensorError on a full disk
        data = serialize(tensors, metadata={"rnnchat_state": json.dumps(meta, ensure_ascii=False)})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
            _keep_previous(path)
    except (OSError, SafetensorError) as exc:
        raise RnnchatError(f"could not save training state {path}: {getattr(exc, 'strerror', None) or first_line(exc)}; "
                           "the previous state is unchanged") from None


def _keep_previous(path: Path) -> None:
    """Hard-link the current state to ``state.prev.safetensors`` before it is replaced."""
    if not path.exists():
        return
    prev = previous_path(path)
    link = prev.with_name(f".{prev.name}.link{TMP_SUFFIX}")
    try:
        if link.exists():
            link.unlink()
        os.link(path, link)
        os.replace(link, prev)
    except OSError:
        pass  # no hard links on this file system: keep only the latest state


def parse_state(data: bytes, where: Path | str) -> tuple[dict, dict]:
    """(metadata, tensors) from the bytes of a state file; RnnchatError if they are not a whole state."""
    try:
        if len(data) < 8:
            raise ValueError("file too short")
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8:
            raise ValueError("header runs past the end of the file")
        header = json.loads(data[8:8 + n])
        meta = json.loads(header["__metadata__"]["rnnchat_state"])
        if meta.get("format") not in READABLE_FORMATS:
            raise ValueError(f"format {meta.get('format')!r}, this rnnchat reads {READABLE_FORMATS}")
        check_state_meta(meta)
        tensors = load_tensors(data)
        check_state_tensors(tensors)
    except (SafetensorError, ValueError, KeyError, TypeError, UnicodeDecodeError, RuntimeError, RecursionError) as exc:
        raise RnnchatError(f"training state {where} is unreadable ({exc})") from None
    return meta, tensors


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt_str(v) -> bool:
    return v is None or isinstance(v, str)


def check_state_meta(meta) -> None:
    """Every field the resume code uses, by type (ValueError naming the first that is wrong)."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"{what} has the wrong type")

    need(isinstance(meta, dict), "the metadata")
    need(meta.get("format") in READABLE_FORMATS and not isinstance(meta.get("format"), bool), "format")
    progress, config, corpus = meta.get("progress"), meta.get("config"), meta.get("corpus")
    need(isinstance(progress, dict) and all(isinstance(k, str) and (v is None or isinstance(v, (int, float)))
                                            and not isinstance(v, bool) for k, v in progress.items()), "progress")
    need(all(isinstance(progress.get(k, 0), int) and progress.get(k, 0) >= 0
             for k in ("step", "chars", "epoch", "window", "offset", "streams")), "progress")
    need(isinstance(config, dict) and all(isinstance(k, str) for k in config), "config")
    need(isinstance(corpus, dict) and isinstance(corpus.get("sha256"), str) and _opt_str(corpus.get("name"))
         and _opt_str(corpus.get("path")), "corpus")
    need(_opt_str(meta.get("name")) and _opt_str(meta.get("out")), "name/out")
    world = meta.get("world_size", 1)
    need(isinstance(world, int) and not isinstance(world, bool) and world >= 1, "world_size")
    vocab = meta.get("vocab")
    need(isinstance(vocab, list) and vocab and all(isinstance(c, str) and len(c) == 1 for c in vocab), "vocab")
    groups = meta.get("param_groups")
    need(isinstance(groups, list) and len(groups) >= 1 and all(isinstance(g, dict) for g in groups), "param_groups")
    for g in groups:
        for key, value in g.items():
            ok = value is None or isinstance(value, bool) or _number(value) or \
                (isinstance(value, list) and all(_number(x) for x in value))
            need(isinstance(key, str) and ok, f"param_groups.{key}")


def check_state_tensors(tensors: dict) -> None:
    """The tensors the resume code uses: RNG states as byte vectors, optimizer and hidden names well formed."""
    if "rng.data" not in tensors or not any(k.startswith("model.") for k in tensors):
        raise ValueError("tensors missing")
    for key in ("rng.torch", "rng.data", "rng.cuda"):
        if key in tensors and (tensors[key].dtype != torch.uint8 or tensors[key].dim() != 1):
            raise ValueError(f"{key} is not a byte vector")
    if "rng.torch" not in tensors:
        raise ValueError("tensors missing")
    for key in tensors:
        if key.startswith("opt.") and not re.fullmatch(r"opt\.\d{1,6}\.[A-Za-z_]\w*", key):
            raise ValueError(f"tensor name {key!r} is malformed")
        if key.startswith("hidden.") and not re.fullmatch(r"hidden\.\d{1,6}", key):
            raise ValueError(f"tensor name {key!r} is malformed")


def read_state_bytes(path: Path) -> tuple[bytes, Path, str | None]:
    """The bytes of the newest whole state: ``path``, else the previous save. Returns (bytes, file, note)."""
    path = Path(path)
    problem = None
    for candidate in (path, previous_path(path)):
        try:
            data = read_regular(candidate, MAX_STATE_BYTES, "training state")
        except FileNotFoundError:
            continue
        except OSError as exc:
            problem = problem or f"{candidate}: {exc.strerror or exc}"
            continue
        try:
            parse_state(data, candidate)
        except RnnchatError as exc:
            problem = problem or str(exc)
            continue
        note = None
        if candidate != path:
            note = (f"{path.name} is unreadable or missing ({problem or 'missing'}); "
                    f"resuming from the save before it, {candidate.name}")
        return data, candidate, note
    if problem:
        raise RnnchatError(f"{problem}; no earlier state to fall back on: start a new run")
    raise RnnchatError(f"no training state in {path.parent}: nothing to resume")


def read_state(path: Path) -> tuple[dict, dict, Path, str | None]:
    data, used, note = read_state_bytes(path)
    meta, tensors = parse_state(data, used)
    return meta, tensors, used, note


def apply_state(meta: dict, tensors: dict, trainer) -> list[torch.Tensor] | None:
    """Load weights, optimizer, RNG streams and progress into ``trainer``; return the saved hidden leaves."""
    if meta["corpus"]["sha256"] != trainer.corpus.sha256:
        raise RnnchatError("the run was trained on a different corpus (its sha256 differs); "
                           "resume needs the same text")
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        trainer.model.load_state_dict(model_state, strict=True)
    except RuntimeError as exc:
        raise RnnchatError(f"the saved weights do not fit the model: {str(exc).splitlines()[0]}") from None
    opt_state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    groups = meta["param_groups"]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    groups[0]["params"] = list(range(len(list(trainer.model.parameters()))))
    trainer.opt.load_state_dict({"state": opt_state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    if trainer.device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], trainer.device)
    trainer.data_gen.set_state(tensors["rng.data"])
    known = set(asdict(trainer.progress))
    for k, v in meta["progress"].items():
        if k in known:
            setattr(trainer.progress, k, v)
    hidden = [tensors[f"hidden.{i}"] for i in range(len(tensors)) if f"hidden.{i}" in tensors]
    return hidden or None


def peek_state(path: Path) -> dict | None:
    """The metadata of a state file from its header alone (None if there is none or it is unreadable)."""
    try:
        with open_regular(path, "training state") as (fh, _):
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > 100_000_000:
                return None
            header = json.loads(fh.read(n))
        meta = json.loads(header["__metadata__"]["rnnchat_state"])
        check_state_meta(meta)
        return meta
    except (OSError, struct.error, ValueError, KeyError, TypeError, RecursionError):
        return None


def unfinished(meta: dict) -> str | None:
    """'step 120 of 500' (or '30s of 90s') when a saved run has not reached its end, else None."""
    cfg, prog = meta.get("config", {}), meta.get("progress", {})
    if cfg.get("steps"):
        if prog.get("step", 0) < cfg["steps"]:
            return f"step {prog.get('step', 0)} of {cfg['steps']}"
    elif cfg.get("budget"):
        if prog.get("elapsed", 0.0) < cfg["budget"]:
            return f"{prog.get('elapsed', 0.0):.0f}s of a {cfg['budget']:.0f}s budget"
    return None
