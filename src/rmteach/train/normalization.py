"""The paper's shift and scale of the proxy RM: fitted on the initial policy's samples, or read from a report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..core.blocks import SamplingConfig
from ..core.data import Prompt
from ..core.errors import ItemError, UserError
from ..core.metrics import Normalization, fit_normalization
from .evaluator import flatten, sample_aside, shard


def fit_initial_normalization(
    model: Any, tok: Any, rm: Any, prompts: list[Prompt], sampling: SamplingConfig, *, rank: int = 0,
    world: int = 1,
) -> Normalization:
    """The paper's normalization, fitted at start: sample the initial policy, score, mean and std of all rewards.

    With several processes each samples every world-th prompt and the rewards are gathered, so every process
    gets the same normalization. The prompts' extra columns reach the RM (`extras`) as in training; their ids
    name the prompt when the RM fails on one.
    """
    idx, real = shard(len(prompts), rank, world)
    mine = [prompts[i] for i in idx[:real]]
    responses = sample_aside(model, tok, [prompts[i].input for i in idx], sampling)[:real]  # (n_mine, K)
    flat_p, flat_r, ids, extras = flatten(mine, responses)  # (n_mine * K,) each
    try:
        raw = rm.score(flat_p, flat_r, **({"extras": extras} if extras else {})) if mine else []
    except ItemError as e:
        raise e.named(ids) from e.__cause__
    rewards = [float(x) for x in raw]
    if world > 1:
        from accelerate.utils import gather_object

        rewards = gather_object(rewards)
    r = np.asarray(rewards, dtype=np.float64)
    if not np.isfinite(r).all():
        raise UserError(f"reward model '{rm.name}' returned non-finite rewards on the initial policy's samples")
    norm = fit_normalization(r)
    if norm.std == 0.0:
        raise UserError(
            f"reward model '{rm.name}' gives every initial-policy sample the same reward: nothing to learn from "
            "(normalization std is 0)"
        )
    return norm


def normalization_from_report(path: str | Path, rm_cfg: Any, policy_path: str) -> Normalization:
    """An RM's `normalization` block from an `rmteach evaluate` report.json, matched by name.

    The report's RM must have the same path/callable and transform (else the numbers belong to another RM);
    a different policy only warns (the user may have copied the model elsewhere).
    """
    from ..core.config import to_plain
    from ..core.progress import console

    from ..core.io import read_user_text

    path = Path(path)
    try:
        report = json.loads(read_user_text(path, "normalization report"))
    except json.JSONDecodeError as e:
        raise UserError(f"normalization report {path}: not valid JSON ({e})") from None
    cards_in = report.get("reward_models") if isinstance(report, dict) else None
    if not isinstance(cards_in, list) or not all(isinstance(c, dict) for c in cards_in):
        raise UserError(f"normalization report {path}: not an `rmteach evaluate` report.json (no reward_models list)")
    cards = {c.get("name"): c for c in cards_in}
    if rm_cfg.name not in cards:
        raise UserError(
            f"normalization report {path} has no reward model '{rm_cfg.name}' (has: {', '.join(map(str, cards))})"
        )
    rep = report.get("config") if isinstance(report.get("config"), dict) else {}
    listed = [r for r in (rep.get("reward_models") or []) + [rep.get("ground_truth") or {}] if isinstance(r, dict)]
    theirs = {r.get("name"): r for r in listed}.get(rm_cfg.name)
    mine = to_plain(rm_cfg)
    same = ("path", "callable", "http", "custom", "judge", "transform")
    if theirs is not None and any(theirs.get(k) != mine.get(k) for k in same):
        raise UserError(
            f"normalization report {path}: reward model '{rm_cfg.name}' there has another path, callable, judge or transform"
        )
    measured_on = (rep.get("policy") or {}).get("path") if isinstance(rep.get("policy"), dict) else None
    if measured_on != policy_path:
        console().print(f"[yellow]warning:[/yellow] {path} was measured on policy {measured_on}")
    n = cards[rm_cfg.name].get("normalization")
    try:
        norm = Normalization(mean=float(n["mean"]), std=float(n["std"]))
    except (TypeError, KeyError, ValueError):
        raise UserError(f"normalization report {path}: reward model '{rm_cfg.name}' has no normalization "
                        "mean and std") from None
    if not (math.isfinite(norm.mean) and math.isfinite(norm.std) and norm.std >= 0):
        raise UserError(f"normalization report {path}: reward model '{rm_cfg.name}' has normalization mean "
                        f"{norm.mean} and std {norm.std}; both must be finite numbers, the std >= 0")
    return norm
