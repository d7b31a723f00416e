"""Resumable build steps: each part of the world lives in its own folder, finished when `inputs.json` says so.

A part's key is a hash of everything it is built from (its settings, its seed, the keys of the parts it
reads). `inputs.json` is written last and atomically, so a folder without it, or with another key, is an
interrupted or stale build: it is wiped and rebuilt. A re-run reuses every finished part whose inputs match.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core import io

INPUTS = "inputs.json"
# Bump when a change to the toy code changes what a part contains for the same inputs.
CODE_VERSION = 1


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj`."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def derive_seed(seed: int, name: str) -> int:
    """An independent 31-bit seed for the part `name` of the world built from `seed`.

    >>> derive_seed(0, "data") == derive_seed(0, "data") != derive_seed(1, "data")
    True
    """
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{name}".encode()).digest()[:4], "big") >> 1


@dataclass(frozen=True)
class Part:
    """One step's folder and the key of its inputs."""

    dir: Path
    key: str

    @classmethod
    def at(cls, root: Path, name: str, inputs: dict[str, Any]) -> "Part":
        return cls(root / name, digest({"code": CODE_VERSION, "inputs": inputs}))

    def done(self) -> bool:
        """True when the folder holds a finished build of exactly these inputs."""
        marker = self.dir / INPUTS
        if not marker.is_file():
            return False
        try:
            return json.loads(marker.read_text(encoding="utf-8")).get("key") == self.key
        except (json.JSONDecodeError, AttributeError):
            return False

    def start(self) -> Path:
        """Wipe whatever an interrupted or stale build left, and return the empty folder."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        return self.dir

    def finish(self, info: dict[str, Any] | None = None) -> None:
        """Mark the part finished (written last, atomically), with optional facts for the manifest."""
        io.write_json(self.dir / INPUTS, {"key": self.key, "info": info or {}})

    def info(self) -> dict[str, Any]:
        """The facts recorded by `finish`."""
        return json.loads((self.dir / INPUTS).read_text(encoding="utf-8"))["info"]


# ----------------------------------------------------------------------------------------------------------
# Running parts, in worker processes when there are several


@dataclass(frozen=True)
class Job:
    """A part to build: `fn(part, *args, progress=...)` wipes and fills `part.dir` and returns its facts.

    `fn` must be a module-level function (workers import it); `steps` is how many progress units it reports.
    """

    part: Part
    what: str
    fn: Callable[..., dict[str, Any]]
    args: tuple
    steps: int


def _work(job: Job, progress: Callable[[int], None] | None) -> tuple[dict[str, Any], float]:
    """Build one part; returns its facts and its wall time in seconds."""
    import time

    t0 = time.perf_counter()
    info = job.fn(job.part, *job.args, progress=progress)
    job.part.finish(info)
    return info, time.perf_counter() - t0


_QUEUE: Any = None  # in a worker: where progress goes
_PARENT = 0  # in a worker: the building process; if it dies (killed), the worker stops at its next step
PROGRESS_EVERY = 10  # a worker reports its steps in tens: one queue message per step cost ~3% of a build


def _init_child(queue: Any) -> None:
    """Worker set-up: one torch thread (the models are tiny; processes, not threads, use the cores)."""
    global _QUEUE, _PARENT
    import os
    import signal

    import torch

    from ..core.hf import quiet

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    _QUEUE, _PARENT = queue, os.getppid()
    quiet()
    torch.set_num_threads(1)


def _work_in_child(job: Job) -> tuple[dict[str, Any], float]:
    import os

    unsent = [0]

    def progress(n: int) -> None:
        if os.getppid() != _PARENT:  # orphaned: never finish a part for a build that is gone
            os._exit(1)
        unsent[0] += n
        if unsent[0] >= PROGRESS_EVERY:
            _QUEUE.put((job.what, unsent[0]))
            unsent[0] = 0

    return _work(job, progress)  # the steps still unsent are counted when the part's result arrives


# Starting a worker (a fresh interpreter importing torch and transformers) costs a few seconds: below this
# many steps of work in all, one process is faster.
MIN_PARALLEL_STEPS = 600


class Workers:
    """Up to `n` spawned worker processes, started when first needed and kept for every `run_jobs` of a build
    (each start imports torch and transformers again: seconds of a core)."""

    def __init__(self, n: int):
        self.n, self.pool, self.queue = n, None, None

    def start(self) -> tuple[Any, Any]:
        """The pool and its progress queue, started on the first call."""
        if self.pool is None:
            from multiprocessing import get_context

            ctx = get_context("spawn")  # fork is unsafe once torch has started its thread pools
            self.queue = ctx.Queue()
            self.pool = ctx.Pool(self.n, initializer=_init_child, initargs=(self.queue,))
        return self.pool, self.queue

    def stop(self) -> None:
        """Stop the workers now (an error or Ctrl-C: their parts stay unfinished)."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None and exc[0] is None:
            self.pool.close()
        self.stop()


def run_jobs(jobs: list[Job], *, workers: int | Workers, title: str) -> dict[str, dict[str, Any]]:
    """Build every unfinished part of `jobs` (finished ones are reused) and return each part's facts.

    Independent parts run in up to `workers` spawned processes (a number, or a `Workers` kept across calls);
    each part is seeded on its own and runs single-threaded, so the result is the same for any number of workers.

    Returns:
        {job.what: facts recorded by the part}.
    """
    from ..core.progress import console, progress_bar

    infos: dict[str, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        if job.part.done():
            console().print(f"[dim]reusing the finished part '{job.what}'[/dim]")
            infos[job.what] = job.part.info()
        else:
            todo.append(job)
    if not todo:
        return infos

    def finished(what: str, result: tuple[dict[str, Any], float]) -> None:
        infos[what] = result[0]
        console().print(f"{title}: part '{what}' finished in {result[1]:.1f} s ({len(infos)}/{len(jobs)})",
                        highlight=False)

    n = workers.n if isinstance(workers, Workers) else workers
    with progress_bar(title, sum(j.steps for j in todo)) as advance:
        if n <= 1 or len(todo) == 1 or sum(j.steps for j in todo) < MIN_PARALLEL_STEPS:
            for job in todo:
                finished(job.what, _work(job, advance))
            return infos
        if isinstance(workers, Workers):
            _in_pool(todo, workers, advance, finished)
        else:
            with Workers(min(n, len(todo))) as own:
                _in_pool(todo, own, advance, finished)
    return infos


def _in_pool(todo: list[Job], workers: Workers, advance: Callable[[int], None],
             finished: Callable[[str, tuple[dict[str, Any], float]], None]) -> None:
    """Run `todo` in the workers, advancing the bar by their steps; stops the workers on any error."""
    import time
    from queue import Empty

    pool, queue = workers.start()
    steps = {job.what: job.steps for job in todo}
    shown = dict.fromkeys(steps, 0)  # steps shown per part; a late message of a finished part is dropped

    def show(what: str, n: int) -> None:
        n = min(n, steps[what] - shown[what])
        shown[what] += n
        advance(n)

    def drain() -> None:
        while True:
            try:
                what, n = queue.get_nowait()
            except Empty:
                return
            if what in shown:
                show(what, n)

    try:
        pending = {job.what: pool.apply_async(_work_in_child, (job,)) for job in todo}
        while pending:
            time.sleep(0.2)
            drain()
            for what in [w for w, r in pending.items() if r.ready()]:
                result = pending.pop(what).get()  # re-raises a worker's exception here
                show(what, steps[what])  # the part's steps in full, whatever its messages still in flight
                shown.pop(what)
                finished(what, result)
    except BaseException:
        workers.stop()
        raise
