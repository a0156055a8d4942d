"""Named corpora: the project's catalog and the user's own corpora."""

from rnnchat.plugins import hookimpl


@hookimpl
def register_corpora(register):
    from rnnchat.store.corpora import catalog_specs

    for spec in catalog_specs():
        register(spec)
