"""Shared core: the config base, config blocks, data sets, pure metrics, HF loading, atomic I/O, errors, progress."""
