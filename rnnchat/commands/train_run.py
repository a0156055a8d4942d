"""Set up and run a training job for ``rnnchat train`` (single process or torchrun)."""

from __future__ import annotations

from pathlib import Path

import click

from rnnchat.core import paths
from rnnchat.commands.train_checks import FLAGS, check_existing, check_out, check_writable_folder
from rnnchat.core.errors import PeerFailure, RnnchatError, first_line
from rnnchat.core.process_exit import end_without_teardown


def _run_dir(name, out, run_dir, resume, check: bool = True) -> Path:
    if resume:
        p = Path(resume).expanduser()
        if p.is_dir():
            return p
        candidate = paths.runs_dir() / resume
        if candidate.is_dir() or not check:
            return candidate if not p.is_absolute() else p
        raise RnnchatError(f"no run {resume!r} to resume: not a folder and not under {paths.runs_dir()}")
    if run_dir:
        return Path(run_dir)
    if name:
        return paths.runs_dir() / name
    if out:
        return Path(out).with_suffix(".run")
    raise RnnchatError("say where the model goes: --name NAME or --out PATH")


def _say(text: str) -> None:
    from rnnchat.engine import distributed as dist

    if dist.rank() == 0:
        click.echo(text, err=True)


def run_training(corpus, model_opts: dict, chat: dict, explicit: set, *, steps, budget, val_fraction,
                 eval_every, seed, precision, max_vocab, storage, device, out, name, run_dir, resume, quiet,
                 stop_after=None, overwrite=False, started=None):
    from rnnchat.engine import distributed as dist
    from rnnchat.engine.device import pick_device, set_cpu_threads
    from rnnchat.engine.train_config import ConfigError

    dev = dist.local_device(pick_device(device))
    if dev.type == "cpu":
        set_cpu_threads(dist.cpu_threads_per_process())
    dist.init(dev)
    # a training process ends at once when its work is done: the interpreter's teardown with torch
    # loaded took seconds of a --budget on a loaded machine, and a torchrun rank's process group
    # teardown can abort it; every file is written and closed by then
    end_without_teardown()
    try:
        setup = _agreed(lambda: _prepare(corpus, model_opts, chat, explicit, dev, steps=steps, budget=budget,
                                         val_fraction=val_fraction, eval_every=eval_every, seed=seed,
                                         precision=precision, max_vocab=max_vocab, storage=storage, out=out,
                                         name=name, run_dir=run_dir, resume=resume, overwrite=overwrite), dev)
        _train(setup, dev, quiet, stop_after, started)
    except ConfigError as exc:
        raise RnnchatError(exc.render(FLAGS)) from None
    except RuntimeError as exc:
        if not dist.active():
            raise
        first = first_line(exc)
        raise PeerFailure(f"rank {dist.rank()}: training stopped: another process failed or the connection "
                          f"between processes broke ({first[:200]})") from None


def _agreed(fn, dev):
    """Run a setup step on every rank; if any rank fails, every rank stops (with that rank's message)."""
    from rnnchat.engine import distributed as dist

    error = None
    try:
        result = fn()
    except RnnchatError as exc:
        error, result = exc, None
    ok = dist.all_ok(error is None, dev)
    if error is not None:
        raise error
    if not ok:
        raise RnnchatError(f"rank {dist.rank()}: another training process failed to start (see its message)")
    return result


def _shared_state(path: Path, dev):
    """Rank 0 reads the resume state (falling back to the previous save) and sends it to every rank."""
    from rnnchat.engine import distributed as dist
    from rnnchat.engine.resume import parse_state, read_state_bytes

    data, note, error = None, None, None
    if dist.rank() == 0:
        try:
            data, path, note = read_state_bytes(path)
        except RnnchatError as exc:
            error = exc
    data = dist.broadcast_bytes(data, dev)
    if error is not None:
        raise error
    if not data:
        raise RnnchatError(f"rank {dist.rank()}: rank 0 could not read the resume state (see its message)")
    meta, tensors = parse_state(data, path)
    return meta, tensors, note


def _prepare(corpus, model_opts, chat, explicit, dev, *, steps, budget, val_fraction, eval_every, seed,
             precision, max_vocab, storage, out, name, run_dir, resume, overwrite):
    """Everything checked, nothing changed: the settings, the corpus, the output, an existing run."""
    from rnnchat.store.corpora import resolve_named
    from rnnchat.engine import distributed as dist
    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.precision import auto_precision
    from rnnchat.engine.run_dir import RunBusy, busy
    from rnnchat.engine.train import FINAL_STATE, TrainConfig, config_from_dict
    from rnnchat.core.vocab import Vocab

    folder = _run_dir(name, out, run_dir, resume, check=dist.rank() == 0)
    if dist.rank() == 0 and (who := busy(folder)):
        raise RunBusy(f"{folder} is being trained by {who}: wait for it to end, or stop it "
                      "(Ctrl+C, or kill PID: it saves its state)")
    state = None
    notes = []
    out_given = out is not None
    if resume:
        meta, tensors, note = _shared_state(folder / FINAL_STATE, dev)
        state = (meta, tensors)
        if note:
            notes.append(note)
        cfg = config_from_dict(meta["config"])
        if steps is not None or budget is not None:
            cfg.steps, cfg.budget = steps, budget
        corpus_path, corpus_name = resolve_named(corpus or meta["corpus"].get("path"))
        corpus_name = meta["corpus"].get("name") or corpus_name
        out = out or meta.get("out")
        name = name or meta.get("name")
        vocab_chars = meta["vocab"]
        if "precision" in explicit and precision != "auto":
            cfg.precision = precision
    else:
        if steps is None and budget is None:
            raise RnnchatError("give --steps N or --budget TIME (e.g. 90s, 10m, 2h)")
        corpus_path, corpus_name = resolve_named(corpus)
        cfg = TrainConfig(**model_opts, steps=steps, budget=budget, val_fraction=val_fraction, seed=seed,
                          chat=chat, storage_dtype=storage)
        cfg.precision = auto_precision(dev) if precision == "auto" else precision
        vocab_chars = None
    if out is None and name:
        out = str(paths.models_dir() / f"{name}.safetensors")
    if eval_every:
        cfg.eval_every = cfg.save_every = eval_every
    elif not resume:
        cfg.eval_every = cfg.save_every = _auto_eval_every(cfg)
    cfg.validate()
    if dist.rank() == 0:
        if not resume:
            check_existing(folder, Path(out) if out else None, name, out_given, overwrite)
        if out:
            out = str(check_out(out, given=out_given))
        check_writable_folder(folder.parent, "the run folder")
    data = load_corpus(corpus_path, name=corpus_name, vocab=Vocab(vocab_chars) if vocab_chars else None,
                       max_vocab=max_vocab)
    if cfg.init_from and not resume:  # a fine-tune: the model's vocabulary, then the text's new characters
        from rnnchat.engine.finetune import base_vocab, extend_corpus
        data = extend_corpus(data, base_vocab(cfg.init_from))
    if cfg.steps is not None and cfg.budget is not None:
        notes.append(f"the run ends after {cfg.plan()}")
    return dict(cfg=cfg, data=data, folder=folder, out=out, name=name, corpus_path=corpus_path, state=state,
                notes=notes)


def _train(setup: dict, dev, quiet: bool, stop_after, started) -> None:
    from rnnchat.core.atomic import clean_stale
    from rnnchat.engine import distributed as dist
    from rnnchat.engine.run_dir import RunLock
    from rnnchat.engine.train import Trainer
    from rnnchat.engine.train_loop import Stop
    from rnnchat.training.train_report import Reporter

    cfg, folder, out = setup["cfg"], setup["folder"], setup["out"]
    resumed = setup["state"] is not None
    reporter = None if quiet or dist.rank() != 0 else Reporter()
    trainer = _agreed(lambda: Trainer(cfg, setup["data"], folder, Path(out) if out else None, dev, reporter,
                                      stop_after=stop_after, started=started, fresh=not resumed), dev)
    trainer.extra_state = {"name": setup["name"], "out": out,
                           "corpus_path": str(Path(setup["corpus_path"]).resolve())}
    lock = _agreed(lambda: _lock(RunLock(folder)) if dist.rank() == 0 else None, dev)
    try:
        if dist.rank() == 0:
            clean_stale(folder)
        if resumed:
            trainer.restore(*setup["state"])
            setup["state"] = None
        for note in setup["notes"] + trainer.notes:
            _say(f"note: {note}")
        if reporter:
            reporter.start(trainer, resumed=resumed)
        try:
            trainer.run()
            dist.barrier()  # every rank's last exchange is done before any rank ends
            final = None if trainer.stopped else trainer.finalize()
        except KeyboardInterrupt:
            if reporter:
                reporter.stop()
            _say(f"interrupted again: stopped without saving; the last saved state in {folder} is intact")
            raise SystemExit(130)
        except Stop as stop:
            if reporter:
                reporter.stop()
            _say(f"interrupted while {'re-scoring the best model' if str(stop) == 're-score' else 'saving'} "
                 f"(training done, step {trainer.progress.step}): state saved in {folder}; finish with "
                 f"`rnnchat train --resume {folder}`")
            raise SystemExit(130)
        finally:
            if reporter:
                reporter.stop()
    finally:
        if lock is not None:
            lock.release()
    step = trainer.progress.step
    if trainer.stopped == "signal":
        where = {"evaluation": " while evaluating", "save": " while saving"}.get(trainer.stopped_in, "")
        _say(f"interrupted at step {step}{where}: state saved in {folder}; continue with "
             f"`rnnchat train --resume {folder}`")
        raise SystemExit(130)
    if trainer.stopped == "stop-after":
        _say(f"stopped after step {step} (--stop-after): state saved in {folder}; continue with "
             f"`rnnchat train --resume {folder}`")
        return
    for note in ([] if reporter else trainer.phase_notes) + ([trainer.image_error] if trainer.image_error else []):
        _say(f"note: {note}")
    if dist.rank() == 0 and final is not None:
        from rnnchat.store.checkpoint_meta import read_header

        loss = read_header(final).meta.get("val_loss")
        loss = f"{loss:.4f}" if isinstance(loss, (int, float)) else "unknown"
        click.echo(f"saved {final} (validation loss {loss} nats/char); resume state in {folder}")


def _lock(lock):
    try:
        return lock.acquire()
    except OSError as exc:
        raise RnnchatError(f"cannot lock the run folder {lock.folder}: {exc.strerror or exc}") from None


def _auto_eval_every(cfg) -> int:
    if cfg.steps is not None:
        return max(10, min(500, cfg.steps // 10))
    return 200
