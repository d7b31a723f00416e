"""Prompt and preference sets: load from JSONL or a saved `datasets` dataset, validate, hash.

A prompt set has a `prompt` column and an optional `id` column; a preference set has `prompt`, `chosen`
and `rejected` (strings) and an optional `id`. Ids are strings or numbers, unique within a set (the row
index when absent). A file must be UTF-8 JSONL (a byte-order mark is dropped); anything else is refused
with one line naming the file, the line or row, and the column.

A preference row whose `chosen` and `rejected` are the same text carries no preference: every RM ties on
it, which pulls every RM's off-policy accuracy towards 0.5 alike. Such rows are dropped with a warning that
counts them and names the first id (they are not errors: public preference sets hold a few); a set left
with no pair is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .blocks import DataConfig
from .errors import UserError


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str


@dataclass(frozen=True)
class PreferencePair:
    id: str
    prompt: str
    chosen: str
    rejected: str


def _read_rows(cfg: DataConfig, what: str) -> list[dict[str, Any]]:
    from .io import read_user_text

    path = Path(cfg.path)
    if path.is_dir():
        rows = _read_dataset_dir(path, cfg.split, what)
    else:
        rows = []
        text = read_user_text(path, f"{what} set")
        if cfg.split is not None:
            raise UserError(f"{what} set {path}: 'split' is for a dataset folder saved with save_to_disk; this is a "
                            "file, so remove 'split'")
        for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a string
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: each line must be a JSON object")
            rows.append(row)
    if cfg.limit is not None:
        rows = rows[: cfg.limit]
    if not rows:
        raise UserError(f"{what} set is empty: {path}")
    return rows


def _read_dataset_dir(path: Path, split: str | None, what: str) -> list[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{what} set {path}: a folder, but not a dataset saved with save_to_disk ({first}); "
                        "point 'path' at a JSONL file or such a folder") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            if len(ds) != 1:
                raise UserError(f"{what} set {path} has splits {sorted(ds)}: set 'split' to one of them")
            split = next(iter(ds))
        if split not in ds:
            raise UserError(f"{what} set {path} has no split '{split}' (has: {', '.join(sorted(ds))})")
        ds = ds[split]
    return [dict(r) for r in ds]


def _check_columns(rows: list[dict[str, Any]], columns: tuple[str, ...], what: str, path: str) -> None:
    for i, row in enumerate(rows):
        for c in columns:
            if c not in row:
                raise UserError(
                    f"{what} set {path}: row {i} has no '{c}' column (needs: {', '.join(columns)})"
                )
            if not isinstance(row[c], str):
                raise UserError(f"{what} set {path}: row {i}: '{c}' must be a string")


def _ids(rows: list[dict[str, Any]], what: str, path: str) -> list[str]:
    for i, r in enumerate(rows):
        v = r.get("id")
        if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
            raise UserError(f"{what} set {path}: row {i}: 'id' must be a string or a number (got {type(v).__name__})")
    ids = [str(r["id"]) if r.get("id") is not None else str(i) for i, r in enumerate(rows)]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"{what} set {path}: id '{dup}' appears more than once")
    return ids


def load_prompts(cfg: DataConfig) -> list[Prompt]:
    """Load and validate a prompt set.

    Arguments:
        cfg: where the set is (JSONL file or `save_to_disk` folder), optional split and row limit.

    Returns:
        The prompts in file order; `id` is the `id` column as a string, or the row index.
    """
    rows = _read_rows(cfg, "prompt")
    _check_columns(rows, ("prompt",), "prompt", cfg.path)
    return [Prompt(id=i, text=r["prompt"]) for i, r in zip(_ids(rows, "prompt", cfg.path), rows)]


def load_preferences(cfg: DataConfig) -> list[PreferencePair]:
    """Load and validate a preference set with `prompt`, `chosen` and `rejected` string columns.

    Pairs whose chosen and rejected are the same text are dropped with a warning (see the module docstring);
    `limit` counts rows of the file, before that.
    """
    rows = _read_rows(cfg, "preference")
    _check_columns(rows, ("prompt", "chosen", "rejected"), "preference", cfg.path)
    ids = _ids(rows, "preference", cfg.path)
    pairs = [PreferencePair(i, r["prompt"], r["chosen"], r["rejected"]) for i, r in zip(ids, rows)]
    kept = [p for p in pairs if p.chosen != p.rejected]
    if len(kept) < len(pairs):
        first = next(p.id for p in pairs if p.chosen == p.rejected)
        if not kept:
            raise UserError(f"preference set {cfg.path}: every pair has the same text as chosen and rejected "
                            f"(first: id '{first}'); such pairs carry no preference")
        from .progress import console

        console().print(f"[yellow]warning:[/yellow] preference set {cfg.path}: dropped {len(pairs) - len(kept)} of "
                        f"{len(pairs)} pairs whose chosen and rejected are the same text (first: id '{first}')",
                        soft_wrap=True)
    return kept


def hash_prompts(prompts: list[Prompt]) -> str:
    """A stable sha256 of the ids and texts, for cache keys."""
    h = hashlib.sha256()
    for p in prompts:
        h.update(json.dumps([p.id, p.text]).encode())
    return h.hexdigest()


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically."""
    from .io import write_text

    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
