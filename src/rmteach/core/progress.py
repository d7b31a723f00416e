"""Progress bars and console output shared by the commands (rich; progress and messages on stderr).

On a terminal a progress bar is drawn and redrawn in place. Into a file or a CI log (stderr not a terminal) a
redrawn bar would show nothing until it ends, so a bar becomes plain lines instead: `description: done/total
(elapsed s, about T left)`, one per finished unit while units are few (<= `EVERY_UNIT`), else one every `LOG_EVERY_S`
seconds and at each tenth of the work. Results printed on stdout (`result_console`) use their natural width
when stdout is not a terminal, so a table written to a file is not squeezed into 80 columns.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Callable, Iterator

EVERY_UNIT = 100  # a bar of at most this many units logs each one
LOG_EVERY_S = 30.0  # else a line at least this often (and at every tenth)
LOG_WIDTH = 1000  # the width of a result written to a file: wide enough that no table is squeezed


@lru_cache(maxsize=1)
def console():
    """The stderr console: progress and messages never mix with machine-readable stdout."""
    from rich.console import Console

    return Console(stderr=True)


def result_console():
    """A console for results on stdout: the terminal's width on a terminal, else `LOG_WIDTH` columns
    (a table then takes its natural width, and a sentence stays on one line)."""
    import sys

    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(file=sys.stdout, width=None if tty else LOG_WIDTH, soft_wrap=not tty)


class LineProgress:
    """A progress bar for logs: `advance(n)` prints a line when a unit, a tenth or `LOG_EVERY_S` passes."""

    def __init__(self, description: str, total: int, print_line: Callable[[str], None],
                 clock: Callable[[], float] = time.perf_counter):
        self.description, self.total, self.print_line, self.clock = description, total, print_line, clock
        self.done, self.t0 = 0, clock()
        self.last_t, self.last_tenth = self.t0, 0

    def __call__(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        tenth = 10 * self.done // self.total if self.total else 10
        if self.total <= EVERY_UNIT or tenth > self.last_tenth or now - self.last_t >= LOG_EVERY_S:
            self.last_t, self.last_tenth = now, tenth
            elapsed = now - self.t0
            left = f", about {duration(elapsed / self.done * (self.total - self.done))} left" \
                if 0 < self.done < self.total else ""
            self.print_line(f"{self.description}: {self.done}/{self.total} ({elapsed:.1f} s{left})")


def duration(seconds: float) -> str:
    """A rough duration for an estimate: seconds, minutes, or hours and minutes.

    >>> duration(42.4), duration(95), duration(3 * 3600 + 37 * 60 + 10)
    ('42 s', '2 min', '3 h 37 min')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min"


@contextmanager
def progress_bar(description: str, total: int, *, shown: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal, `LineProgress` lines elsewhere; yields `advance(n)`. With
    `shown=False` (a process other than the main one of a sharded run) nothing is shown and `advance` does
    nothing.

    >>> lines = []
    >>> advance = LineProgress("scoring", 3, lines.append, clock=iter([0.0, 1.0, 2.5, 4.0]).__next__)
    >>> advance(1); advance(2); lines
    ['scoring: 1/3 (1.0 s, about 2 s left)', 'scoring: 3/3 (2.5 s)']
    """
    if not shown:
        yield lambda n=1: None
        return
    con = console()
    if not con.is_terminal:
        yield LineProgress(description, total, lambda line: con.print(line, highlight=False, soft_wrap=True))
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=con, transient=False,
    ) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)
