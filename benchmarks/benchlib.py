"""What every benchmark shares: its options, the toy world it runs on, and the figures file it writes.

Each `bench_*.py` takes `--smoke` (a size that finishes in seconds: CI runs it, asserting only that it runs
and writes finite figures, never a speed), `--json PATH` (the figures, written atomically, comparable from
one commit to the next) and, where it needs models, `--world PATH` (a built toy world; without it the
`tiny` preset is built into a temporary folder, seed 0).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

SCHEMA = "rmteach.bench/1"


def add_options(ap: argparse.ArgumentParser, *, world: bool = True) -> None:
    """Add `--smoke`, `--json` and (with `world`) `--world` to a benchmark's parser."""
    ap.add_argument("--smoke", action="store_true", help="a size that finishes in seconds (CI); speed not meaningful")
    ap.add_argument("--json", metavar="PATH", help="also write the figures, sizes and machine as JSON here")
    if world:
        ap.add_argument("--world", metavar="PATH",
                        help="a toy world (`rmteach toy build --out PATH`); default: the tiny one, in a temp folder")


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit code 2."""
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run(main: Callable[[], None]) -> None:
    """Run a benchmark's `main`, turning rmteach's `UserError` into one line on stderr and exit code 2."""
    from rmteach.core.errors import UserError, first_line

    try:
        main()
    except UserError as e:
        fail(first_line(e))


@contextmanager
def toy_world(path: str | None) -> Iterator[Path]:
    """The toy world at `path`, or (None) the `tiny` preset built with seed 0 into a folder removed afterwards."""
    if path is not None:
        root = Path(path)
        if not (root / "manifest.json").is_file():
            fail(f"--world {root}: no manifest.json there (build one with `rmteach toy build --out {root}`)")
        yield root
        return
    from rmteach.toy.build import run_build

    with tempfile.TemporaryDirectory(prefix="rmteach-bench-") as tmp:
        print("building the tiny toy world (seed 0) in a temporary folder ...", flush=True)
        run_build(Path(tmp) / "world", seed=0, preset="tiny", overwrite=False)
        yield Path(tmp) / "world"


def machine() -> dict[str, Any]:
    """Where the figures were measured: cores, library versions, the commit (None outside a git checkout)."""
    import torch
    import transformers

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "cpu_count": os.cpu_count(), "usable_cores": usable, "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "commit": commit,
    }


def save(path: str | None, name: str, figures: dict[str, float], sizes: dict[str, Any], **extra: Any) -> None:
    """Write the figures file (when `path` is given): `figures` are the timings and ratios (finite, > 0);
    `sizes` the problem's sizes; `extra` anything else worth keeping (per-run lists, checks, tables)."""
    if path is None:
        return
    from rmteach.core.io import write_json

    bad = {k: v for k, v in figures.items() if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)}
    if bad:
        raise ValueError(f"figures must be finite positive numbers: {bad}")  # a bug in the benchmark
    write_json(path, {"schema": SCHEMA, "benchmark": name, "figures": figures, "sizes": sizes,
                      "machine": machine(), **extra})
    print(f"wrote {path}")
