"""Resume state: weights, optimizer moments, RNG streams and position, in safetensors + JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rnnchat.atomic import atomic_path
from rnnchat.errors import RnnchatError

STATE_FORMAT = 1


def save_state(path: Path, trainer) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
    opt = trainer.opt.state_dict()
    for pid, st in opt["state"].items():
        for key, value in st.items():
            tensors[f"opt.{pid}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.data"] = trainer.data_gen.get_state()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]
    meta = {"format": STATE_FORMAT, "progress": asdict(trainer.progress), "config": asdict(trainer.cfg),
            "corpus": {"name": trainer.corpus.name, "sha256": trainer.corpus.sha256,
                       "path": str(Path(trainer.corpus.path).resolve())},
            **{k: v for k, v in getattr(trainer, "extra_state", {}).items() if k in ("name", "out")},
            "vocab": trainer.corpus.vocab.chars, "param_groups": groups}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"rnnchat_state": json.dumps(meta, ensure_ascii=False)})
    except OSError as exc:
        raise RnnchatError(f"could not save training state {path}: {exc.strerror or exc}; "
                           "the previous state is unchanged") from None


def read_state_meta(path: Path) -> dict:
    try:
        with safe_open(str(path), "pt") as fh:
            return json.loads(fh.metadata()["rnnchat_state"])
    except FileNotFoundError:
        raise RnnchatError(f"no training state at {path}: nothing to resume") from None
    except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise RnnchatError(f"training state {path} is unreadable ({exc}); start a new run") from None


def load_state(path: Path, trainer) -> None:
    meta = read_state_meta(path)
    if meta["corpus"]["sha256"] != trainer.corpus.sha256:
        raise RnnchatError(f"{path} was trained on a different corpus (sha256 differs); resume needs the same text")
    tensors = {}
    with safe_open(str(path), "pt") as fh:
        for key in fh.keys():
            tensors[key] = fh.get_tensor(key)
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    trainer.model.load_state_dict(model_state, strict=True)
    opt_state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    groups = meta["param_groups"]
    n_params = len(list(trainer.model.parameters()))
    groups[0]["params"] = list(range(n_params))
    trainer.opt.load_state_dict({"state": opt_state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    trainer.data_gen.set_state(tensors["rng.data"])
    for k, v in meta["progress"].items():
        setattr(trainer.progress, k, v)
