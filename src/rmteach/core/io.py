"""Files: atomic output (a temporary file beside the target, then a rename) and reading the user's files.

A crash or kill never leaves a half-written file under the final name. A file the user names is read by
`read_user_text`, which turns every way of not being readable UTF-8 text into one line that names the file.
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


def read_user_text(path: str | os.PathLike, what: str) -> str:
    """The text of a file the user named: UTF-8, a leading byte-order mark dropped.

    Arguments:
        path: the file.
        what: what it is, for the message (e.g. "prompt set", "config file").

    Returns:
        Its text. Raises `UserError` naming the file when it is missing, a folder, unreadable or not UTF-8
        (with the line of the first bad byte).
    """
    from .errors import UserError

    path = Path(path)
    try:
        if path.is_dir():
            raise UserError(f"{what} {path} is a folder; expected a file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except PermissionError:
        raise UserError(f"{what} {path}: permission denied (make it readable to this user)") from None
    except OSError as e:
        raise UserError(f"{what} {path}: cannot read it ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(f"{what} {path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); "
                        "save it as UTF-8") from None


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


def check_out(out: str | os.PathLike) -> Path:
    """Refuse an output folder that cannot be one: a file, a path under a file, a folder we may not write in.

    Returns:
        `out` as a `Path` (nothing is created).
    """
    from .errors import UserError

    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file, not a folder")
        first = out
        while not first.exists():  # the nearest existing folder, where `out` will be created
            first = first.parent
    except OSError as e:  # a name too long, a folder we may not look into
        raise UserError(f"--out {out}: {e.strerror or e}") from None
    if not first.is_dir():
        raise UserError(f"--out {out}: {first} is a file, not a folder")
    if not os.access(first, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: no permission to write in {first}")
    return out


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

    out = check_out(out)
    try:
        if overwrite or not out.exists() or not any(out.iterdir()):
            return out
    except OSError as e:  # a folder we may not list
        raise UserError(f"--out {out}: {e.strerror or e}") from None
    marker_path = out / marker
    try:
        previous = json.loads(marker_path.read_text(encoding="utf-8")).get("config")
    except (OSError, ValueError, AttributeError):  # absent, unreadable, not JSON, not a mapping
        previous = None
    if previous is not None and previous == json.loads(json.dumps(config)):
        return out
    raise UserError(
        f"--out {out} already holds a different {command} run or other files; "
        "choose another folder or pass --overwrite"
    )
