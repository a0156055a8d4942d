"""``rnnchat corpora``: the catalog of known corpora and the user's local ones."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
@click.pass_context
def corpora(ctx):
    """List known corpora (catalog and local)."""
    if ctx.invoked_subcommand is not None:
        return
    from rnnchat.corpora import local_path
    from rnnchat.plugins.manager import get_host

    for spec in get_host().corpora.values():
        have = "local" if (spec.path or local_path(spec.name).exists()) else "not downloaded"
        click.echo(f"{spec.name:<18} {have:<15} {spec.description}")
