"""The generation and training engine: the only package that imports torch."""
