"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or kill never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `path` if the block succeeds.

    Arguments:
        path: the final file path; its parent folder is created if missing.

    Returns:
        A context manager yielding the temporary `Path` to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented, key-sorted JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON line to `path`, flushed and fsynced so a kill never leaves half a line."""
    line = json.dumps(obj, sort_keys=True, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def claim_out_dir(out: str | os.PathLike, marker: str, config: Any, overwrite: bool, command: str) -> Path:
    """Check that `out` is empty, absent, or holds the same run; refuse a different run unless `overwrite`.

    A folder "holds the same run" when its `marker` JSON file has a `config` equal to `config`.

    Arguments:
        out: the output folder.
        marker: the file name whose `config` key identifies the run (e.g. `report.json`).
        config: the plain (JSON-able) config of this run.
        overwrite: the user's `--overwrite`.
        command: the command name, for the message.

    Returns:
        `out` as a `Path` (not created: nothing is written until there is something whole to write).
    """
    from .errors import UserError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if overwrite or not out.exists() or not any(out.iterdir()):
        return out
    marker_path = out / marker
    if marker_path.is_file():
        try:
            previous = json.loads(marker_path.read_text(encoding="utf-8")).get("config")
        except (json.JSONDecodeError, AttributeError):
            previous = None
        if previous == json.loads(json.dumps(config)):
            return out
    raise UserError(
        f"--out {out} already holds a different {command} run or other files; "
        "choose another folder or pass --overwrite"
    )
