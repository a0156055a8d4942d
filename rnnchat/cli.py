"""The ``rnnchat`` command line. Nothing here imports torch: commands import the engine when they run."""

from __future__ import annotations

import json
import sys

import click

from rnnchat import __version__
from rnnchat.core.errors import RnnchatError
from rnnchat.core.process_exit import exit_now, teardown_skipped
from rnnchat.core.safe_text import json_safe, printable


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnnchat")
@click.pass_context
def cli(ctx):
    """Train, run and chat with recurrent language models.

    Run with no command to open the chat app on the default model.
    """
    if ctx.invoked_subcommand is None:
        from rnnchat.commands.chat import open_chat
        open_chat(None)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json):
    """List plugins, what each registered, and the errors of those that failed.

    Third-party cells are imported to check that they are proper cells.
    """
    from rnnchat.plugins.manager import get_host

    host = get_host()
    host.verify_cells()
    infos = [p.as_dict() for p in host.plugins.values()]
    if as_json:
        click.echo(json_safe(json.dumps(infos, indent=2, ensure_ascii=False)))
        return
    for p in infos:
        status = "ok" if p["loaded"] else "FAILED"
        click.echo(printable(f"{p['name']} {p['version'] or ''} [{status}]".replace("  ", " ")))
        for kind, names in p["registered"].items():
            click.echo(f"  {kind}: {printable(', '.join(names))}")
        for err in p["errors"]:
            click.echo(f"  error: {printable(err)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cells(as_json):
    """List the recurrent cells that models can use."""
    from rnnchat.plugins.manager import get_host

    host = get_host()
    host.verify_cells()
    rows = [{"name": s.name, "description": s.description, "plugin": host.owner_of("cells", s.name)}
            for s in host.cells.values()]
    if as_json:
        click.echo(json_safe(json.dumps(rows, indent=2, ensure_ascii=False)))
        return
    for r in rows:
        click.echo(printable(f"{r['name']:<10} {r['description']}  ({r['plugin']})"))


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models(ctx, as_json):
    """List registered models (bundled, trained locally, or from plugins); `get` downloads one, `rm` removes one."""
    if ctx.invoked_subcommand is not None:
        return
    from rnnchat.commands.info import model_rows

    rows = model_rows()
    if as_json:
        click.echo(json_safe(json.dumps(rows, indent=2, ensure_ascii=False)))
        return
    if not rows:
        click.echo("no models; train one with `rnnchat train CORPUS --name NAME`")
    for r in rows:
        if r.get("error"):
            click.echo(printable(f"{r['name']:<16} BROKEN: {r['error']}  ({r['plugin']})"))
            continue
        loss = f"{r['val_loss']:.4f}" if isinstance(r.get("val_loss"), (int, float)) else "-"
        click.echo(printable(f"{r['name']:<16} {r['cell']:<8} {r['layers']}x{r['hidden']:<6} "
                             f"{r['parameters'] / 1e6:6.2f}M params  {r['size_bytes'] / 1e6:6.1f} MB  "
                             f"val {loss}  {r['path']}  ({r['plugin']})"))
        about = " · ".join(x for x in (r.get("hint") and f"try: {r['hint']}", r.get("description")) if x)
        if about:
            click.echo(printable(f"{'':<16} {about}", 300))


@cli.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(path, as_json):
    """Print a checkpoint's metadata (PATH or a model name)."""
    from rnnchat.commands.info import inspect_checkpoint

    inspect_checkpoint(path, as_json)


def _register_builtin_commands() -> None:
    from rnnchat.commands import chat, corpora, generate, install, models_get, probe, runs, serve, train

    cli.add_command(generate.generate)
    cli.add_command(train.train)
    cli.add_command(chat.chat)
    cli.add_command(corpora.corpora)
    cli.add_command(install.install)
    cli.add_command(install.uninstall)
    cli.add_command(probe.probe)
    cli.add_command(serve.serve)
    models.add_command(models_get.get)
    cli.add_command(runs.runs)
    models.add_command(runs.models_rm)


_register_builtin_commands()


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    code = _run(argv)
    if teardown_skipped() or _plugin_threads_left() or _only_help(code, args):
        exit_now(code)
    sys.exit(code)


def _only_help(code: int, args: list[str]) -> bool:
    """A help page was printed and nothing else ran (no engine): the interpreter's teardown of
    the modules it loaded (a quarter of ``rnnchat --help``'s time) can be skipped."""
    return code == 0 and any(a in ("-h", "--help") for a in args) and "torch" not in sys.modules


def _run(argv) -> int:
    """Run one command; return the exit status (user mistakes print one line)."""
    from rnnchat.plugins.manager import get_host

    try:
        get_host().add_commands(cli)
        cli.main(args=argv, prog_name="rnnchat", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except RnnchatError as exc:
        click.echo(f"error: {printable(exc)}", err=True)  # one line; file text never raw
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    except SystemExit as exc:
        if exc.code and (plugin := _plugin_exit(exc, argv)):  # sys.exit(3) in a cell: not our status 3
            click.echo(f"error: plugin {plugin} failed: SystemExit: {exc.code}", err=True)
            return 1
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        click.echo(str(exc.code), err=True)
        return 1
    except Exception as exc:  # a plugin's bug (e.g. its cell raising in generation) is named in one line
        from rnnchat.plugins.guard import describe
        from rnnchat.plugins.manager import plugin_prefix

        if not (prefix := plugin_prefix(exc)):
            raise  # rnnchat's own bug: the traceback is wanted
        click.echo(f"error: {prefix}{describe(exc)}", err=True)
        return 1
    return 0


def _plugin_threads_left() -> bool:
    from rnnchat.plugins.guard import threads_left

    return threads_left()


def _plugin_exit(exc: SystemExit, argv) -> str | None:
    """The plugin whose code called sys.exit, unless it is running its own command."""
    from rnnchat.plugins.manager import blame, get_host

    plugin = blame(exc)
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    own = get_host().plugins[plugin].registered.get("commands", []) if plugin else []
    return None if plugin is None or (words and words[0] in own) else plugin
