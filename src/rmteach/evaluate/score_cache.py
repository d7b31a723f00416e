"""Per-RM score caches of `rmteach evaluate`: a killed evaluation resumes without re-scoring finished RMs.

Only Hugging Face RMs (`path`) and LLM judges (`judge`) are cached: they are the expensive ones, and their
identity is checkable (the files of the model folder, or the hub id; a judge's template, labels, values and
examples are in its config). A callable's code or an HTTP server can change behind the same name,
so those are always scored again rather than risk a stale result. The key holds the samples' own cache key
(policy files, prompts, every sampling setting), the preference pairs, the RM's config (less its name and
batch size, which change no score), its files (and its `tokenizer`'s), the device, dtype and how many prompts it scores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..core import io
from ..core.blocks import RewardModelConfig
from ..core.config import to_plain
from ..core.data import PreferencePair
from ..core.hf import fingerprint
from .report import RewardTable


def score_key(
    rm_cfg: RewardModelConfig, samples: str, pairs: list[PreferencePair] | None, *, device: str, dtype: str,
    limit: int | None,
) -> str | None:
    """The cache key of one RM's scores, or None when the RM is not cached (not a `path` or `judge` RM)."""
    model = rm_cfg.path if rm_cfg.judge is None else rm_cfg.judge.path
    if model is None:
        return None
    plain = {k: v for k, v in to_plain(rm_cfg).items() if k not in ("name", "batch_size")}
    ident: dict[str, Any] = {
        "samples": samples, "rm": plain, "rm_files": fingerprint(model), "device": device, "dtype": dtype,
        "tokenizer_files": fingerprint(rm_cfg.tokenizer) if rm_cfg.tokenizer else None,
        "limit": limit, "pairs": [[p.id, p.prompt, p.chosen, p.rejected] for p in pairs] if pairs else None,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def load(root: Path, key: str | None) -> RewardTable | None:
    """The cached scores under `key`, or None (absent, unreadable or not ours: score again)."""
    if key is None:
        return None
    try:
        with np.load(root / "scores" / f"{key}.npz") as f:
            return RewardTable(onpolicy=f["onpolicy"], chosen=f["chosen"] if "chosen" in f else None,
                               rejected=f["rejected"] if "rejected" in f else None)
    except (OSError, ValueError, KeyError):
        return None


def save(root: Path, key: str | None, table: RewardTable) -> None:
    """Write one RM's scores under `key` atomically (nothing for uncached RMs); a failed write is not an error."""
    if key is None:
        return
    arrays = {"onpolicy": table.onpolicy}
    if table.chosen is not None and table.rejected is not None:
        arrays.update(chosen=table.chosen, rejected=table.rejected)
    try:
        with io.atomic_path(root / "scores" / f"{key}.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    except OSError:
        pass  # a read-only cache costs only the re-scoring
