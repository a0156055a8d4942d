"""``rnnchat runs``: list training runs, show one's curve and samples, remove one; ``models rm``."""

from __future__ import annotations

import json
import shutil
import sys

import click


def confirm(what: str, yes: bool) -> None:
    """Ask on a terminal (unless --yes); in non-interactive use (a script, a pipe) do not ask."""
    if yes or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return
    click.confirm(f"remove {what}?", abort=True)


def _time(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def runs(ctx, as_json):
    """List training runs: name, state (running, finished, stopped, failed), steps, best validation
    loss, training time and the model file. `runs show NAME` draws a run's curve; `runs rm NAME`
    removes it."""
    if ctx.invoked_subcommand is not None:
        return
    from rnnchat.core import paths
    from rnnchat.training.runs import list_runs
    from rnnchat.core.safe_text import json_safe, printable

    rows = list_runs()
    if as_json:
        click.echo(json_safe(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False)))
        return
    if not rows:
        click.echo(f"no runs in {paths.runs_dir()}; start one with `rnnchat train CORPUS --name NAME`")
        return
    click.echo(f"{'NAME':<20} {'STATE':<9} {'STEPS':>7} {'BEST VAL':>8} {'TIME':>7}  MODEL")
    for r in rows:
        best = f"{r.best_val:.4f}" if r.best_val is not None else "-"
        steps = str(r.steps) if r.steps is not None else "-"
        state = r.state + (f" (pid {r.holder})" if r.holder and r.holder.isdigit() else "")
        click.echo(f"{printable(r.name, 40):<20} {state:<9} {steps:>7} {best:>8} {_time(r.elapsed):>7}  "
                   f"{r.model or '-'}")
        for problem in r.problems:
            click.echo(f"  note: {printable(problem)}")


@runs.command()
@click.argument("name")
@click.option("--samples", "last", type=click.IntRange(0, 20), default=2, show_default=True,
              help="How many of the latest samples to print.")
def show(name, last):
    """Draw a run's loss curve and print its latest samples (escaped)."""
    from rnnchat.training.curves import loss_plot
    from rnnchat.training.run_metrics import read_points, read_samples
    from rnnchat.training.runs import escape, run_folder, run_info
    from rnnchat.core.safe_text import printable

    folder = run_folder(name)
    info = run_info(folder)
    points = read_points(folder)
    best = f"{info.best_val:.4f}" if info.best_val is not None else "-"
    click.echo(f"{printable(info.name, 100)}: {info.state}, step {info.steps if info.steps is not None else '-'}, "
               f"best validation loss {best}, {_time(info.elapsed)} of training, model {info.model or '-'}")
    width = max(40, min(shutil.get_terminal_size((100, 30)).columns, 160))
    plot = loss_plot(points, width, 18) if points else ""
    click.echo(plot if plot else "no metrics yet (metrics.jsonl is empty or missing)")
    for s in read_samples(folder, last) if last else []:
        click.echo(f"--- sample at step {s['step']} ---")
        click.echo(escape(s["text"]))


@runs.command("rm")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (the default when not on a terminal).")
def rm(name, yes):
    """Remove a run's folder (its resume state, metrics and samples). A running run is refused.
    The model it saved stays: `rnnchat models rm NAME` removes that."""
    from rnnchat.training.runs import lock_holder, remove_run, run_folder, RunError

    folder = run_folder(name)
    holder = lock_holder(folder)
    if holder is not None:
        raise RunError(f"run {name!r} is running (process {holder}): stop it first, then remove it")
    confirm(f"run {name!r} ({folder})", yes)
    click.echo(f"removed {remove_run(name)}")


@click.command("rm")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (the default when not on a terminal).")
def models_rm(name, yes):
    """Remove a model you trained (a file in the user data folder). Built-in and plugin models are
    refused: uninstall their plugin instead."""
    from rnnchat.commands.info import removable_model

    path = removable_model(name)
    confirm(f"model {name!r} ({path})", yes)
    path.unlink()
    click.echo(f"removed {path}")
