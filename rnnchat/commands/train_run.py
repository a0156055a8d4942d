"""Set up and run a training job for ``rnnchat train`` (single process or torchrun)."""

from __future__ import annotations

from pathlib import Path

import click

from rnnchat import paths
from rnnchat.errors import RnnchatError


def _run_dir(name, out, run_dir, resume) -> Path:
    if resume:
        p = Path(resume).expanduser()
        if p.is_dir():
            return p
        candidate = paths.runs_dir() / resume
        if candidate.is_dir():
            return candidate
        raise RnnchatError(f"no run {resume!r} to resume: not a folder and not under {paths.runs_dir()}")
    if run_dir:
        return Path(run_dir)
    if name:
        return paths.runs_dir() / name
    if out:
        return Path(out).with_suffix(".run")
    raise RnnchatError("say where the model goes: --name NAME or --out PATH")


def run_training(corpus, model_opts: dict, chat: dict, explicit: set, *, steps, budget, val_fraction,
                 eval_every, seed, precision, max_vocab, storage, device, out, name, run_dir, resume, quiet):
    from rnnchat.corpora import resolve_corpus
    from rnnchat.engine import distributed as dist
    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.device import pick_device, set_cpu_threads
    from rnnchat.engine.precision import auto_precision
    from rnnchat.engine.resume import read_state_meta
    from rnnchat.engine.train import FINAL_STATE, TrainConfig, Trainer
    from rnnchat.train_report import Reporter

    folder = _run_dir(name, out, run_dir, resume)
    if resume:
        state_meta = read_state_meta(folder / FINAL_STATE)
        saved = state_meta["config"]
        cfg = TrainConfig(**saved)
        if steps is not None:
            cfg.steps, cfg.budget = steps, None
        if budget is not None:
            cfg.budget, cfg.steps = budget, None
        corpus_path = resolve_corpus(corpus or state_meta["corpus"].get("path"))
        out = out or state_meta.get("out")
        name = name or state_meta.get("name")
        vocab_chars = state_meta["vocab"]
    else:
        if steps is None and budget is None:
            raise RnnchatError("give --steps N or --budget TIME (e.g. 90s, 10m, 2h)")
        corpus_path = resolve_corpus(corpus)
        cfg = TrainConfig(**model_opts, steps=steps, budget=budget, val_fraction=val_fraction, seed=seed,
                          chat=chat, storage_dtype=storage)
        vocab_chars = None
    if out is None and name:
        out = str(paths.models_dir() / f"{name}.safetensors")
    dev = dist.local_device(pick_device(device))
    if dev.type == "cpu":
        set_cpu_threads()
    dist.init(dev)
    try:
        if not resume:
            cfg.precision = auto_precision(dev) if precision == "auto" else precision
        elif "precision" in explicit and precision != "auto":
            cfg.precision = precision
        from rnnchat.vocab import Vocab

        data = load_corpus(corpus_path, vocab=Vocab(vocab_chars) if vocab_chars else None, max_vocab=max_vocab)
        if eval_every:
            cfg.eval_every = cfg.save_every = eval_every
        elif not resume:
            cfg.eval_every = cfg.save_every = _auto_eval_every(cfg)
        reporter = None if quiet or dist.rank() != 0 else Reporter()
        trainer = Trainer(cfg, data, folder, Path(out) if out else None, dev, reporter)
        trainer.extra_state = {"name": name, "out": out, "corpus_path": str(Path(corpus_path).resolve())}
        if resume:
            trainer.restore()
        if reporter:
            reporter.start(trainer, resumed=bool(resume))
        try:
            trainer.run()
        except KeyboardInterrupt:
            if reporter:
                reporter.stop()
            click.echo(f"interrupted: state saved in {folder}; continue with `rnnchat train --resume {folder}`",
                       err=True)
            raise SystemExit(130)
        if reporter:
            reporter.stop()
        final = trainer.finalize()
        if dist.rank() == 0 and final is not None:
            from rnnchat.checkpoint_meta import read_header

            loss = read_header(final).meta.get("val_loss")
            click.echo(f"saved {final} (validation loss {loss} nats/char); resume state in {folder}")
    finally:
        dist.shutdown()


def _auto_eval_every(cfg) -> int:
    if cfg.steps is not None:
        return max(10, min(500, cfg.steps // 10))
    return 200
