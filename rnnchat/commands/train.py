"""``rnnchat train``: build a model from a UTF-8 corpus; resume; budgets; torchrun."""

from __future__ import annotations

import json
import os
import time

import click

from rnnchat.core.errors import RnnchatError
from rnnchat.plugins.specs import NAME_RE
from rnnchat.training.presets import PRESETS
from rnnchat.core.units import Duration, Escaped, FiniteFloat



def _process_age() -> float:
    """Seconds since this process started (Linux: /proc; elsewhere 0, i.e. from this import)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read(4096).rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read(100).split()[0])
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
    return age if 0.0 <= age < 600.0 else 0.0


COMMAND_START = time.perf_counter() - _process_age()  # a --budget counts from the process's start
_D = PRESETS["default"]
MODEL_OPTS = ("cell", "layers", "hidden", "embedding", "dropout", "seq_len", "batch_size", "lr", "carry_state")


@click.command()
@click.argument("corpus", required=False)
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="default", show_default=True,
              help="Defaults for the model and batch options below (see docs/training.md).")
@click.option("--cell", help="Recurrent cell (see `rnnchat cells`).")
@click.option("--cell-options", help='JSON options for the cell, e.g. \'{"nonlinearity": "relu"}\'.')
@click.option("--layers", type=click.IntRange(1, 64), help=f"Recurrent layers (default preset: {_D['layers']}).")
@click.option("--hidden", type=click.IntRange(1, 16384), help=f"Units per layer ({_D['hidden']}).")
@click.option("--embedding", type=click.IntRange(1, 16384), help=f"Character embedding size ({_D['embedding']}).")
@click.option("--dropout", type=FiniteFloat(0, 0.99), help=f"Dropout between layers ({_D['dropout']}).")
@click.option("--seq-len", type=click.IntRange(1, 100_000),
              help=f"Characters per window of backpropagation ({_D['seq_len']}).")
@click.option("--batch-size", type=click.IntRange(1, 100_000),
              help=f"Windows per step, per process under torchrun ({_D['batch_size']}).")
@click.option("--lr", type=FiniteFloat(0, 10, min_open=True),
              help=f"Peak learning rate: warmup, then cosine decay to the end of the run ({_D['lr']}).")
@click.option("--carry-state/--no-carry-state", default=None,
              help="Read the text as contiguous streams and carry the recurrent state between batches "
                   "(char-rnn's way), or train on random windows from a zero state.")
@click.option("--steps", type=click.IntRange(1), help="Train for N optimizer steps.")
@click.option("--budget", type=Duration(),
              help="Wall-clock time for the whole command (start-up, steps, evaluations, the final re-score "
                   "and the save): 90s, 10m, 2h. With --steps, whichever comes first ends the run.")
@click.option("--val-fraction", type=FiniteFloat(0, 0.5, min_open=True), default=0.1, show_default=True,
              help="The last part of the text, held out for validation.")
@click.option("--eval-every", type=click.IntRange(1), help="Steps between validations and state saves (default: scaled to the run).")
@click.option("--seed", type=click.IntRange(0, 2**31), default=1337, show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="Autocast precision; auto picks bf16 where the hardware runs it fast.")
@click.option("--max-vocab", type=click.IntRange(2), help="Cap the vocabulary; rarer characters share one token.")
@click.option("--storage", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32",
              show_default=True, help="dtype of the saved weights.")
@click.option("--chat-template", type=Escaped(), default=None, help="How a chat turn is framed; must contain {text}.")
@click.option("--chat-stop", type=Escaped(), multiple=True, help="Where a reply ends (default: a blank line).")
@click.option("--hint", help="One line on what to type, shown in the chat and the model picker "
              "(at most 80 characters), e.g. 'a poem title, e.g. 春望'.")
@click.option("--description", help="What the model is, shown in the model picker and `rnnchat models` "
              "(at most 500 characters).")
@click.option("--device", help="cpu, cuda, cuda:N or mps (default: the best available).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the best model to this file.")
@click.option("--name", help="Save the model under this name (listed by `rnnchat models`).")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Folder for resume state (default: by name).")
@click.option("--resume", "resume", help="Continue a run (its name or folder) exactly where it stopped.")
@click.option("--stop-after", type=click.IntRange(1), metavar="K",
              help="Stop after step K, saving the state as Ctrl+C does (the run's plan is unchanged).")
@click.option("--init-from", metavar="MODEL",
              help="Fine-tune: start from this model's weights (a name from `rnnchat models` or a file); "
                   "its shape, vocabulary (plus the new text's characters) and chat template are kept.")
@click.option("--overwrite", is_flag=True,
              help="Start over a run (finished or not) or a model of the same name; without it that is refused.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(corpus, preset, **opts):
    """Train a model on CORPUS (a UTF-8 text file or a catalog name)."""
    from rnnchat.commands.train_run import run_training

    name = opts.get("name")
    if name is not None and not NAME_RE.match(name):
        raise RnnchatError(f"--name {name!r} is invalid: use lowercase letters, digits, '-', '_' or '.'")
    if corpus is None and not opts.get("resume"):
        raise RnnchatError("give a CORPUS file (or --resume RUN); see `rnnchat train --help`")
    chosen = dict(PRESETS[preset])
    given = {k for k, v in opts.items() if k in MODEL_OPTS + ("cell_options",) and v is not None}
    chosen.update({k: v for k, v in opts.items() if k in MODEL_OPTS and v is not None})
    chosen["cell_options"] = parse_cell_options(opts.pop("cell_options"))
    base_chat = {}
    init_from = opts.pop("init_from")
    if init_from is not None:
        if opts.get("resume") or opts.get("max_vocab"):
            raise RnnchatError("--init-from starts a new run from a model's vocabulary: it cannot go with "
                               + ("--resume (a resumed fine-tune continues as it began)" if opts.get("resume")
                                  else "--max-vocab"))
        from rnnchat.engine.finetune import plan

        chosen, base_chat = plan(init_from, chosen, given)
    chosen["about"] = _about(opts.pop("hint"), opts.pop("description"), bool(opts.get("resume")))
    opts = {k: v for k, v in opts.items() if k not in MODEL_OPTS}
    stops = tuple(opts.pop("chat_stop")) or _base_stops(base_chat) or ("\n\n",)
    template = opts.pop("chat_template")
    if template is not None:
        if "{text}" not in template:
            raise RnnchatError("--chat-template must contain {text}")
    template = template or _base_template(base_chat) or "{text}"
    chat = {"template": template, "stop": list(stops)}
    run_training(corpus, chosen, chat, explicit={k for k, v in opts.items() if v is not None},
                 started=COMMAND_START, **opts)


def _about(hint: str | None, description: str | None, resume: bool) -> dict:
    """--hint and --description, checked as a checkpoint's fields are (one line each)."""
    from rnnchat.store.checkpoint_fields import display_problem

    about = {k: v for k, v in (("hint", hint), ("description", description)) if v is not None}
    if about and resume:
        raise RnnchatError("--hint and --description go with a new run; a resumed run keeps its own "
                           "(set them on the saved model with rnnchat.store.checkpoint_edit.set_meta)")
    for key, value in about.items():
        why = display_problem(key, value)
        if why:
            raise RnnchatError(f"--{key} {why}")
    return about


def _base_template(chat: dict) -> str | None:
    """A fine-tuned model's template (kept unless --chat-template is given), if it is a valid one."""
    t = chat.get("template")
    return t if isinstance(t, str) and "{text}" in t and len(t) <= 10_000 else None


def _base_stops(chat: dict) -> tuple[str, ...]:
    stops = chat.get("stop")
    ok = isinstance(stops, list) and 0 < len(stops) <= 16 and all(isinstance(s, str) and 0 < len(s) <= 100
                                                                  for s in stops)
    return tuple(stops) if ok else ()


def parse_cell_options(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise RnnchatError("--cell-options must be a JSON object, e.g. '{\"nonlinearity\": \"relu\"}'") from None
    if not isinstance(value, dict):
        raise RnnchatError("--cell-options must be a JSON object")
    return value


