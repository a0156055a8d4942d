"""The hooks a plugin may implement. Each receives a ``register`` callback owned by the host.

See ``docs/plugins.md`` for a working example of every hook.
"""

import pluggy

hookspec = pluggy.HookspecMarker("rnnchat")
hookimpl = pluggy.HookimplMarker("rnnchat")


@hookspec
def register_cells(register):
    """Register recurrent cells: ``register(CellSpec(name, factory, description))``.

    :param register: callable taking one :class:`rnnchat.plugins.CellSpec`.
    """


@hookspec
def register_checkpoints(register):
    """Register trained models: ``register(CheckpointSpec(name, path, description))``.

    :param register: callable taking one :class:`rnnchat.plugins.CheckpointSpec`.
    """


@hookspec
def register_corpora(register):
    """Register named training texts: ``register(CorpusSpec(name, ...))``.

    :param register: callable taking one :class:`rnnchat.plugins.CorpusSpec`.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to ``rnnchat``: ``@cli.command()`` on the click group.

    :param cli: the top-level :class:`click.Group`.
    """
