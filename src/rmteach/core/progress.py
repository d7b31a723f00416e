"""Progress bars and console output shared by the commands (rich, on stderr)."""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import Callable, Iterator


@lru_cache(maxsize=1)
def console():
    """The stderr console: progress and messages never mix with machine-readable stdout."""
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int, *, shown: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar; yields `advance(n)`. With `shown=False` (a process other than the main one of a
    sharded run) nothing is drawn and `advance` does nothing."""
    if not shown:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console(), transient=False,
    ) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)
