"""Foundations every layer uses (torch-free): errors, environment, paths, safe file and text
handling, units, vocabularies, sampling values."""
