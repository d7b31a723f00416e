"""Where a prompt or preference set's rows come from (`DataConfig`), read into plain row dicts.

- `path` to a `.jsonl` file (or any other suffix than below): streamed line by line here, so a bad line is named
  by its number (`p.jsonl:3: not valid JSON`) and `limit` stops the reading. UTF-8; a byte-order mark is dropped.
- `path` to a `.json` (one array of objects, or JSON lines), `.parquet` or `.csv` file, or `data_files`
  (a file, a glob, a list, or `{split: files}`): `datasets.load_dataset` with the matching builder.
- `path` to a folder saved with `save_to_disk`: `datasets.load_from_disk`.
- `hub`: `datasets.load_dataset(hub, subset, revision=..., data_files=...)`, a hub id or a local copy of a hub
  dataset repo. Offline (`HF_DATASETS_OFFLINE=1`) only what `datasets` cached before, or a local copy, loads.

A source with several splits needs `split`; `limit` keeps the first rows. Every failure is one `UserError`
naming the source. Columns and values are checked by `rmteach.core.data`.
"""

from __future__ import annotations

import glob
import json
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

from .blocks import DataConfig
from .errors import UserError, first_line
from .io import check_user_file

Row = dict[str, Any]
# File suffix -> `datasets` builder. Given as `path`, only these go through load_dataset (others: our JSONL reader).
BUILDERS = {".json": "json", ".jsonl": "json", ".ndjson": "json", ".parquet": "parquet", ".csv": "csv"}
LOADED = (".json", ".parquet", ".csv")


def read_rows(cfg: DataConfig, what: str) -> list[Row]:
    """The first `cfg.limit` rows of a set (all without a limit), as dicts of column -> value.

    Arguments:
        cfg: the set's source, split and limit.
        what: "prompt" or "preference", for messages.

    Returns:
        At least one row; raises `UserError` for a source that cannot be read or holds no row.
    """
    where, ds, rows = cfg.where, None, []
    if cfg.hub is not None:
        ds = pick_split(_load_hub(cfg, what), cfg.split, what, where)
    elif cfg.data_files is not None:
        ds = pick_split(_load_files(cfg.data_files, what, where), cfg.split, what, where)
    else:
        path = Path(cfg.path)
        if path.is_dir():
            ds = pick_split(_load_dir(path, what), cfg.split, what, where)
        else:
            if cfg.split is not None:
                raise UserError(f"{what} set {path}: 'split' is for a dataset folder saved with save_to_disk or a "
                                "source with several splits; this is one file, so remove 'split'")
            if path.suffix.lower() in LOADED:
                ds = pick_split(_load_files(str(path), what, where), None, what, where)
            else:
                rows = read_jsonl(path, what, cfg.limit)
    if ds is not None:
        n = len(ds) if cfg.limit is None else min(cfg.limit, len(ds))
        rows = ds.select(range(n)).to_list()
    rows = rows[: cfg.limit] if cfg.limit is not None else rows
    if not rows:
        raise UserError(f"{what} set is empty: {where}")
    return rows


def read_jsonl(path: Path, what: str, limit: int | None = None) -> list[Row]:
    """The first `limit` rows (all without a limit) of a UTF-8 JSONL file, one JSON object a line (blank lines
    skipped), streamed: a limit stops the reading, a large file shows a progress bar; errors name the line."""
    from .io import iter_user_lines

    rows: list[Row] = []
    for lineno, line in iter_user_lines(path, f"{what} set", progress=f"reading {what} set {path.name}"):
        if limit is not None and len(rows) >= limit:
            break
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{lineno}: each line must be a JSON object")
        rows.append(row)
    return rows


def pick_split(ds: Any, split: str | None, what: str, where: str) -> Any:
    """The `datasets.Dataset` of `split` in a DatasetDict (the only one when `split` is None), or `ds` itself."""
    import datasets

    if not isinstance(ds, datasets.DatasetDict):
        if split is not None:
            raise UserError(f"{what} set {where} has no splits: remove 'split'")
        return ds
    if split is None:
        if len(ds) != 1:
            raise UserError(f"{what} set {where} has splits {sorted(ds)}: set 'split' to one of them")
        split = next(iter(ds))
    if split not in ds:
        raise UserError(f"{what} set {where} has no split '{split}' (has: {', '.join(sorted(ds))})")
    return ds[split]


@contextmanager
def _quiet() -> Iterator[None]:
    """No `datasets` progress bars while a local set loads (rmteach shows its own progress; downloads from the
    hub keep theirs)."""
    from datasets.utils import logging as dlog

    was = dlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            dlog.enable_progress_bar()


def _load_dir(path: Path, what: str) -> Any:
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except (OSError, ValueError) as e:
        raise UserError(f"{what} set {path}: a folder, but not a dataset saved with save_to_disk ({first_line(e)}); "
                        "point 'path' at a JSONL, JSON, Parquet or CSV file or such a folder (a folder of data "
                        "files: data_files; a downloaded hub dataset: hub)") from None


def _files(data_files: Any) -> list[str]:
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, dict):
        return [f for v in data_files.values() for f in _files(v)]
    return list(data_files)


def _load_files(data_files: Any, what: str, where: str) -> Any:
    """`datasets.load_dataset(<builder>, data_files=...)`: every file of one format, each there unless a glob."""
    import datasets

    files = _files(data_files)
    kinds = {BUILDERS.get(Path(f).suffix.lower()) for f in files}
    if None in kinds or len(kinds) != 1:
        bad = next((f for f in files if Path(f).suffix.lower() not in BUILDERS), files[0])
        raise UserError(f"{what} set {where}: data files must all be .json/.jsonl, .parquet or .csv (got {bad}"
                        + (")" if None in kinds else ", among others of another format)"))
    for f in files:  # each file, and each file a glob matches, regular: a FIFO or a device would block or not end
        if not any(c in f for c in "*?[") and Path(f).is_dir():
            raise UserError(f"{what} set {f} is a folder; name its files (a glob such as {f}/*.parquet)")
        for name in [n for n in sorted(glob.glob(f)) if not Path(n).is_dir()] if any(c in f for c in "*?[") else [f]:
            check_user_file(name, f"{what} set")
    try:
        with _quiet():
            return datasets.load_dataset(kinds.pop(), data_files=data_files)
    except Exception as e:  # noqa: BLE001 - the files' fault (bad JSON, a corrupt parquet): one line, --debug shows it
        raise UserError(f"{what} set {where}: could not read it ({first_line(e)})") from e


def _load_hub(cfg: DataConfig, what: str) -> Any:
    """`datasets.load_dataset` of a hub dataset (or a local copy of one), with one-line errors."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    name = cfg.hub
    local = Path(name).is_dir() or datasets.config.HF_HUB_OFFLINE  # nothing to download: no progress bars
    try:
        with _quiet() if local else nullcontext():
            return datasets.load_dataset(name, cfg.subset, revision=cfg.revision, data_files=cfg.data_files)
    except ConnectionError as e:
        raise UserError(
            f"{what} set {cfg.where}: no network / dataset not in the local cache ({first_line(e)}): download it "
            f"first where the hub is reachable, with `hf download --repo-type dataset {name} --local-dir DIR` (then "
            "hub: DIR), or load it once there with datasets sharing this HF_HOME (then set HF_DATASETS_OFFLINE=1)"
        ) from e
    except DatasetNotFoundError as e:
        raise UserError(f"{what} set {cfg.where}: {first_line(e)} (a gated or private set needs `hf auth login`)"
                        ) from e
    except Exception as e:  # noqa: BLE001 - the set's fault (an unknown subset, bad files): one line
        raise UserError(f"{what} set {cfg.where}: could not load it ({first_line(e)})") from e
