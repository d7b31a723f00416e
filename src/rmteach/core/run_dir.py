"""The output folder of a TRL run (`rmteach train`, `rmteach rm train`): its marker (run.json), metrics.jsonl,
checkpoints, resume and cleanup.

A kill can happen anywhere: metrics.jsonl lines are appended whole (fsynced at each checkpoint), a checkpoint
counts only once its trainer_state.json parses, and resuming truncates metrics.jsonl to the checkpoint's step
so every step appears exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import io, outdir

MARKER = "run.json"
METRICS = "metrics.jsonl"


def checkpoint_step(path: Path) -> int:
    return int(path.name.split("-")[1])


def last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint in `out`, or None.

    The Trainer writes trainer_state.json last, and not atomically: a kill can leave it empty or cut off,
    so a checkpoint counts only when that file parses.
    """

    def complete(p: Path) -> bool:
        try:
            return "global_step" in json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False

    done = [p for p in out.glob("checkpoint-*") if p.name.split("-")[1].isdigit() and complete(p)]
    return max(done, key=checkpoint_step) if done else None


def read_marker(out: Path) -> dict[str, Any] | None:
    """The run.json of `out`, or None when it is absent or not a JSON mapping."""
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def clear(out: Path, *, command: str = "train", remove_empty: bool = False) -> None:
    """Delete what an earlier `command` run wrote in `out` (its manifest's names, and only those: a folder holding
    anything else is refused, `outdir.clear_owned`); then `out` itself if asked and empty."""
    outdir.clear_owned(out, command, remove_empty=remove_empty)


def stepped(out: Path) -> bool:
    """Whether the run in `out` got past its first optimizer step (a metrics line beyond step 0, a checkpoint)."""
    return last_checkpoint(out) is not None or any(r.get("step", 0) >= 1 for r in read_metrics(out / METRICS))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a trailing line cut by a kill is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def truncate_metrics(path: str | Path, last_step: int) -> list[dict[str, Any]]:
    """Keep only records up to `last_step` (the checkpoint a run resumes from), rewritten atomically."""
    kept = [r for r in read_metrics(path) if r["step"] <= last_step]
    io.write_text(path, "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in kept))
    return kept
