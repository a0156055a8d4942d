"""The chat app (Textual). Nothing in this package imports torch: the model loads in a worker."""
