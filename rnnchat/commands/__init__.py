"""Subcommands, one module each; each imports the engine only when it runs."""
