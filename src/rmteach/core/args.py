"""Command-line arguments every config-driven command shares: `--config`, `--set`, `--out`, `--overwrite`."""

from __future__ import annotations

import argparse


def add_run_args(p: argparse.ArgumentParser, *, example: str = "sampling.seed=3") -> None:
    """Add `--config/-c`, `--set KEY=VALUE` (repeatable), `--out/-o` and `--overwrite` to a command's parser.

    >>> p = argparse.ArgumentParser(); add_run_args(p)
    >>> vars(p.parse_args(["-c", "x.yaml", "-o", "out", "--set", "a=1"]))
    {'config': 'x.yaml', 'overrides': ['a=1'], 'out': 'out', 'overwrite': False}
    """
    p.add_argument("--config", "-c", required=True, help="YAML config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config value, e.g. --set {example} (repeatable)")
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different run of this command in --out (only what such a run wrote; a folder "
                   "holding anything else is refused)")
