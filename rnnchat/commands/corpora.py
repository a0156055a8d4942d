"""``rnnchat corpora``: the catalog of known corpora and the user's local ones; get and add."""

from __future__ import annotations

import json

import click

from rnnchat.core.safe_text import json_safe, printable


def _size(n) -> str:
    if not isinstance(n, int):
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def corpora(ctx, as_json):
    """List known corpora (catalog, plugins and local); get or add one.

    Any name listed here can be given to `rnnchat train` in place of a file.
    """
    if ctx.invoked_subcommand is not None:
        return
    from rnnchat.store.corpora import corpus_rows

    rows = corpus_rows()
    if as_json:
        click.echo(json_safe(json.dumps(rows, indent=2, ensure_ascii=False)))
        return
    if not rows:
        click.echo("no corpora; add a text with `rnnchat corpora add PATH`")
    for r in rows:
        click.echo(printable(f"{r['name']:<18} {r['status']:<16} {_size(r['size']):>8}  {r['description'] or r['where']}"))


@corpora.command()
@click.argument("name")
@click.option("--url", help="Download from this URL instead (a mirror); the sha256 is still checked.")
@click.option("--force", is_flag=True, help="Download again even if the file is already there.")
def get(name, url, force):
    """Download catalog corpus NAME into the data directory and check its sha256."""
    from rnnchat.store.corpora import get_corpus

    path, fetched = get_corpus(name, url=url, force=force)
    if fetched:
        click.echo(f"downloaded {name} to {path} (sha256 verified); train with `rnnchat train {name}`")
    else:
        click.echo(f"{name} is already here: {path} (sha256 verified)")


@corpora.command()
@click.argument("path", type=click.Path(dir_okay=True))
@click.option("--name", help="Register it under this name (default: from the file name).")
@click.option("--replace", is_flag=True, help="Replace a corpus already registered under this name.")
def add(path, name, replace):
    """Register the local UTF-8 text PATH as a named corpus (the file is not copied)."""
    from rnnchat.store.corpora import add_corpus

    name, where, sha = add_corpus(path, name=name, replace=replace)
    click.echo(f"added {name}: {where} (sha256 {sha[:12]}…); train with `rnnchat train {name}`")
