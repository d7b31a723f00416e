"""`rmteach evaluate` in several processes (`accelerate launch`): who does what, and gathering the results.

Each process samples its share of the prompts and scores its share of the pairs (`backends.sampler` and
`backends.rewards.score_grid` take a `share`); the pieces are gathered on every process, and only the main one
writes caches and outputs. The shares are chosen so that every sample and every score is the same as in one
process (whole seeded sampling batches, whole scoring batches), so the report is too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..core.hf import resolve_device


@dataclass(frozen=True)
class Processes:
    """This process's rank among `world` processes (rank 0 is the main one)."""

    rank: int = 0
    world: int = 1
    work: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # what this process did

    def tally(self, what: str, n: int) -> None:
        """Count work this process did (prompts sampled, pairs scored), for timing.json."""
        self.work[what] = self.work.get(what, 0) + int(n)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def share(self) -> tuple[int, int]:
        return self.rank, self.world

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order, on every process."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def all(self, flag: bool) -> bool:
        """Whether `flag` holds on every process (a collective decision, e.g. "every process has the cache")."""
        return all(self.gather(bool(flag)))


def start(device: str) -> tuple[Processes, str]:
    """The processes of this run (one unless `WORLD_SIZE` says more) and the device this process works on.

    Several processes join accelerate's process group: gloo on the CPU, NCCL with one GPU per process.

    >>> start("cpu")
    (Processes(rank=0, world=1), 'cpu')
    """
    want = resolve_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes(), want
    from accelerate import PartialState

    state = PartialState(cpu=want == "cpu")
    return Processes(state.process_index, state.num_processes), "cpu" if want == "cpu" else str(state.device)


def merge_rows(parts: Sequence[Sequence[Any]]) -> list[Any]:
    """One list from the processes' lists, each holding None where another process's share is.

    >>> merge_rows([[["a"], None, ["c"]], [None, ["b"], None]])
    [['a'], ['b'], ['c']]
    """
    out = list(parts[0])
    for part in parts[1:]:
        out = [mine if mine is not None else theirs for mine, theirs in zip(out, part)]
    if any(row is None for row in out):
        raise RuntimeError("a row was drawn by no process")  # a bug in the shares, not the user's input
    return out


def merge_arrays(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """One array from the processes' arrays, each NaN where another process's share is.

    >>> merge_arrays([np.array([1.0, np.nan]), np.array([np.nan, 2.0])]).tolist()
    [1.0, 2.0]
    """
    if parts[0] is None:
        return None
    out = np.array(parts[0], dtype=np.float64)
    for part in parts[1:]:
        out = np.where(np.isnan(out), part, out)
    if np.isnan(out).any():
        raise RuntimeError("a pair was scored by no process")  # scores are checked finite where computed
    return out
