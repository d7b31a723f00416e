"""Files: atomic output (a temporary file beside the target, then a rename) and reading the user's files.

A crash or kill never leaves a half-written file under the final name. A file the user names is read by
`read_user_text`, which turns every way of not being readable UTF-8 text into one line that names the file.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator


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


@contextmanager
def staged_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `dest`; if the block succeeds it replaces `dest` (a folder there is
    removed first), else it is removed: `dest` is never seen half-written.

    >>> import tempfile as t; root = Path(t.mkdtemp())
    >>> with staged_dir(root / "m") as stage:
    ...     _ = (stage / "w").write_text("1")
    >>> sorted(p.name for p in root.iterdir()), (root / "m" / "w").read_text()
    (['m'], '1')
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield stage
        if dest.exists():
            shutil.rmtree(dest)
        stage.rename(dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


MAX_TEXT_BYTES = 64 * 2**20  # a file read whole (a config, a report): anything larger is not one of ours
MAX_LINE_BYTES = 64 * 2**20  # one line of a JSONL set: a longer "line" is a file that is no JSONL
PROGRESS_BYTES = 16 * 2**20  # a file streamed with a progress bar from this size on
CHUNK_BYTES = 4 * 2**20  # a streamed file is read in blocks of this size
_NOT_REGULAR = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def check_user_file(path: str | os.PathLike, what: str) -> int:
    """Refuse what a user-named file cannot be, looking only at its type (`os.stat`: nothing is opened, so a FIFO
    without a writer cannot block): missing, a folder, a device, a FIFO, a socket.

    Returns:
        Its size in bytes. Raises `UserError` naming the file otherwise.
    """
    from .errors import UserError

    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except PermissionError:
        raise UserError(f"{what} {path}: permission denied (make it readable to this user)") from None
    except OSError as e:  # a name too long, a loop of links
        raise UserError(f"{what} {path}: cannot read it ({e.strerror or e})") from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise UserError(f"{what} {path} is a folder; expected a file")
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
        raise UserError(f"{what} {path} is {kind}, not a regular file: name a file (a pipe or device is not read)")
    return st.st_size


@contextmanager
def open_user_file(path: str | os.PathLike, what: str) -> Iterator[tuple[BinaryIO, int]]:
    """Open a regular file the user named for binary reading; yields (the file, its size in bytes).

    The type is checked before opening (`check_user_file`), and the open itself never waits (O_NONBLOCK, type
    checked again on the open file): a FIFO swapped in between is refused, not waited on. Errors: one `UserError`
    naming the file, reads included.
    """
    from .errors import UserError

    path = Path(path)
    check_user_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except PermissionError:
        raise UserError(f"{what} {path}: permission denied (make it readable to this user)") from None
    except OSError as e:
        raise UserError(f"{what} {path}: cannot read it ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{what} {path} is not a regular file: name a file (a pipe or device is not read)")
        try:
            yield f, st.st_size
        except OSError as e:  # a read error (EIO), a file truncated under us
            raise UserError(f"{what} {path}: cannot read it ({e.strerror or e})") from None


def _decoded(data: bytes, path: Path, what: str, line: int = 1) -> str:
    """UTF-8 text of `data`, whose first line is line `line` of `path`; a `UserError` naming the line otherwise."""
    from .errors import UserError

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line += data[: e.start].count(b"\n")
        raise UserError(f"{what} {path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); "
                        "save it as UTF-8") from None


def read_user_text(path: str | os.PathLike, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The text of a file the user named: UTF-8, a leading byte-order mark dropped, at most `max_bytes` long.

    Arguments:
        path: the file.
        what: what it is, for the message (e.g. "prompt set", "config file").
        max_bytes: the largest file read; a larger one is refused before it is read (a file that reports no
            size, such as those of /proc, is read up to one byte more and refused then).

    Returns:
        Its text. Raises `UserError` naming the file when it is missing, a folder, not a regular file (a FIFO,
        /dev/zero), larger than `max_bytes`, unreadable or not UTF-8 (with the line of the first bad byte).
    """
    from .errors import UserError

    path = Path(path)
    with open_user_file(path, what) as (f, size):
        data = f.read(max_bytes + 1) if size <= max_bytes else b""
    if size > max_bytes or len(data) > max_bytes:
        raise UserError(f"{what} {path} is larger than {_mib(max_bytes)}" + (f" ({_mib(size)})" if size else "")
                        + f"; a {what} this large is not one rmteach reads")
    return _decoded(data.removeprefix(b"\xef\xbb\xbf"), path, what)


def iter_user_lines(path: str | os.PathLike, what: str, *, progress: str | None = None,
                    max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """Stream the lines of a UTF-8 file the user named, split at "\\n" only (U+2028 may sit inside a JSON string).

    Arguments:
        path: the file.
        what: what it is, for the messages.
        progress: a progress bar's description, shown (by the first process of a launch) for a file of
            `PROGRESS_BYTES` or more; None: no bar.
        max_line_bytes: the longest line read; a longer one is refused (a file with no line breaks is no JSONL).

    Returns:
        An iterator of (line number from 1, the line without its "\\n"); a byte-order mark opening the file is
        dropped. Errors as `read_user_text`'s, a bad byte or an overlong line named by its line number.
    """
    from .errors import UserError
    from .progress import progress_bar

    path = Path(path)
    with open_user_file(path, what) as (f, size):
        shown = progress is not None and size >= PROGRESS_BYTES and os.environ.get("RANK", "0") == "0"
        with progress_bar(f"{progress} (KiB)", -(-size // 1024), shown=shown) as advance:
            lineno, tail, first, kib = 0, b"", True, 0  # kib: the KiB read so far, as the bar counts them
            while True:  # blocks of whole lines, decoded and split at once: a readline a line takes twice as long
                block = f.read(max(CHUNK_BYTES, 3 if first else 1))  # the first: a whole byte-order mark
                buf, first = tail + (block.removeprefix(b"\xef\xbb\xbf") if first else block), False
                cut = buf.rfind(b"\n") + 1 if block else len(buf)  # at the end, the last line needs no "\n"
                data, tail = buf[:cut], buf[cut:]
                if len(tail) > max_line_bytes:  # so no line is longer than this plus one block
                    bad = lineno + data.count(b"\n") + 1
                    raise UserError(f"{what} {path}: line {bad} is longer than {_mib(max_line_bytes)}; expected one "
                                    "JSON object a line")
                try:
                    lines: list[str] | list[bytes] = data.decode("utf-8").split("\n")
                except UnicodeDecodeError:  # decoded line by line: the lines before the bad one are read
                    lines = data.split(b"\n")
                for line in lines[:-1] if data.endswith(b"\n") or not data else lines:
                    lineno += 1
                    yield lineno, line if isinstance(line, str) else _decoded(line, path, what, lineno)
                if not block:
                    return
                advance(-(-f.tell() // 1024) - kib)
                kib = -(-f.tell() // 1024)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (manifests: identical builds give identical weights)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_yaml(path: str | os.PathLike, data: Any, comment: str) -> None:
    """Write `data` as YAML atomically, keys in their order, under a one-line `# comment` header."""
    import yaml

    write_text(path, f"# {comment}\n" + yaml.safe_dump(data, sort_keys=False, width=120))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in a file an rmteach run wrote (a marker, a summary, timings); `{}` when the file is absent,
    unreadable, not JSON or not an object: a run that finds nothing usable starts over."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def holds_config(path: str | os.PathLike, config: Any) -> bool:
    """Whether the JSON object at `path` (a run's marker, a study's done.json) has a `config` equal to `config`, a
    plain config compared as JSON has it; False when the file is absent, unreadable or has no `config`."""
    data = read_json_object(path)
    return "config" in data and data["config"] == json.loads(json.dumps(config))


def read_jsonl_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a JSONL file an rmteach run wrote (no user-data checks: `core.sources` reads users' files)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented, key-sorted JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def append_jsonl(path: str | os.PathLike, obj: Any, *, durable: bool = True) -> None:
    """Append one JSON line to `path` in one write, so a killed process never leaves half a line; with
    `durable`, fsynced too (a power cut keeps it). Without, `sync_file` makes what was appended durable."""
    line = json.dumps(obj, sort_keys=True, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        if durable:
            f.flush()
            os.fsync(f.fileno())


def sync_file(path: str | os.PathLike) -> None:
    """fsync `path` (what was appended to it reaches the disk); nothing when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def claim_out_dir(out: str | os.PathLike, marker: str, config: Any, overwrite: bool, command: str, *,
                  whole: bool = False) -> Path:
    """Check that `out` is empty, absent, or holds the same run; refuse a different run unless `overwrite`.

    A folder "holds the same run" when its `marker` JSON file has a `config` equal to `config`. With
    `overwrite`, a different run is taken only when the folder holds nothing but what a `command` run wrote
    (`outdir.foreign`); a folder of user files is never taken.

    Arguments:
        out: the output folder.
        marker: the file name whose `config` key identifies the run (e.g. `report.json`).
        config: the plain (JSON-able) config of this run.
        overwrite: the user's `--overwrite`.
        command: the command name (a key of `outdir.OWNED`), for the ownership check and the message.
        whole: the output replaces `out` as a whole (a staged one-shot command): the same run is taken only
            when nothing else is in the folder either.

    Returns:
        `out` as a `Path` (not created: nothing is written until there is something whole to write).
    """
    from . import outdir
    from .errors import UserError

    out = outdir.check_out(out, beside=whole)
    entries = outdir.contents(out)
    if not entries:
        return out
    if overwrite:
        why = outdir.foreign(out, command)
        if why is not None:
            raise UserError(why)
        return out
    if holds_config(out / marker, config):
        why = outdir.foreign(out, command) if whole else None
        if why is not None:
            raise UserError(why)
        return out
    found = outdir.owner(out)
    if found is not None and found[0] == command:
        raise UserError(f"--out {out} already holds a different {command} run; choose another folder or pass "
                        "--overwrite")
    what = f"an rmteach {found[0]} output" if found else f"{entries[0]}, which no rmteach run wrote"
    raise UserError(f"--out {out} already holds a different {command} run or other files ({what}): choose another "
                    f"folder; --overwrite replaces only an rmteach {command} output")
