"""rnnchat.serve: an OpenAI-compatible HTTP API over rnnchat's models (docs/serve.md). Imports no torch."""
