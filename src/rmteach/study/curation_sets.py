"""Curation in a study: the curated prompt sets (written after each policy's evaluate) and what they did.

1. `write_sets`: for each `CurationSpec` of the grid, select the prompts from the policy's evaluate
   (`OUT/evaluate/<policy>/prompts.parquet`, that RM's per-prompt values, `core.selection`) out of the pool (the
   evaluate's prompt source, read again: the same rows with every column) and write
   `OUT/curation/<policy>/<rm>/<rule>/prompts.jsonl` and `selection.json`. Each set's sha256 joins its runs'
   identities (`study.run.identities`), so a set that changes re-does its runs though its path does not change.
2. `curation_result`: study.json's `curation`: the sets, the curated runs' records, and per (policy, RM, rule)
   the speed-up over the uniform arm (`study.curation`) and the final held-out gold difference (Welch t test).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core import io
from ..core.config import to_plain
from ..core.errors import UserError
from ..core.selection import eligible, kept_rows, select, summarize
from .curation import speedup
from .noise import resolved_difference

if TYPE_CHECKING:
    import pandas as pd

    from .config import StudyConfig
    from .grid import CurationSpec

SCHEMA = "rmteach.study.curation/1"


def pool_of(cfg: StudyConfig):
    """The prompt set the rules select from and the uniform arm trains on: the evaluate's prompts."""
    return cfg.prompts.evaluate or cfg.prompts.train


def read_pool(cfg: StudyConfig, table: pd.DataFrame, policy: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The pool's rows (every column) and ids, checked against the prompts the policy's evaluate measured."""
    from ..core.data import load_prompts
    from ..core.sources import read_rows

    pool = pool_of(cfg)
    rows, ids = read_rows(pool, "prompt"), [p.id for p in load_prompts(pool)]
    measured = list(table.loc[~table["is_ground_truth"].astype(bool), "prompt_id"].drop_duplicates())
    if measured != ids:
        raise UserError(f"prompt set {pool.where} changed since the evaluate of '{policy}' ({len(ids)} prompts now, "
                        f"{len(measured)} measured); rerun the study with --overwrite")
    return rows, ids


def select_set(table: pd.DataFrame, spec: CurationSpec, n: int, keep: int | float | None, seed: int
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """(kept (n,) bools over the pool, summary) of one (policy, RM, rule), as `rmteach curate` selects."""
    mine = table[table["reward_model"] == spec.reward_model].reset_index(drop=True)  # (m, ...), m <= n prompts
    where = f"curation: policy '{spec.policy}', reward model '{spec.reward_model}', rule {spec.rule}"
    if mine.empty:
        raise UserError(f"{where}: the evaluate's prompts.parquet has no row of it; rerun with --overwrite")
    n_eligible = int(eligible(mine, spec.rule).sum())
    if n_eligible == 0:
        why = {"forecast": "no prompt has a forecast term", "zero_std": "every prompt's rewards are all equal",
               "variance": "no prompt"}[spec.rule]
        raise UserError(f"{where}: {why}, so nothing can be kept; leave the rule out of curation.rules")
    keep = None if spec.rule == "zero_std" else keep
    if isinstance(keep, int) and keep > n_eligible:
        raise UserError(f"{where}: keep {keep} is more than its {n_eligible} eligible prompts; set curation.keep to "
                        f"at most {n_eligible}, or a fraction such as 0.5")
    part = select(mine, spec.rule, keep, seed)  # (m,)
    kept = np.zeros(n, dtype=bool)
    kept[: len(part)] = part  # a ground truth scored on the first m prompts only keeps none past them
    return kept, {"n_total": n, "n_eligible": n_eligible, "n_kept": int(kept.sum()), **summarize(mine, part)}


def write_sets(cfg: StudyConfig, out: Path, specs: list[CurationSpec], timing: dict[str, Any]
               ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Write every curated set of the grid; returns {(policy, RM, rule): selection.json's content}.

    Sets are written again on every invocation (selection is cheap and deterministic), so a re-done evaluate
    re-selects; the seconds per policy go to `timing["curation_s"]`.
    """
    import pandas as pd

    c = cfg.curation
    assert c is not None
    pool = pool_of(cfg)
    id_col = pool.columns.get("id", "id")
    sets: dict[tuple[str, str, str], dict[str, Any]] = {}
    timing.setdefault("curation_s", {})
    for policy in dict.fromkeys(s.policy for s in specs):
        t0 = time.perf_counter()
        parquet = out / "evaluate" / policy / "prompts.parquet"
        if not parquet.is_file():
            raise UserError(f"curation: the evaluate of '{policy}' wrote no prompts.parquet ({parquet}); rerun the "
                            "study with --overwrite with this version of rmteach")
        table = pd.read_parquet(parquet)
        rows, ids = read_pool(cfg, table, policy)
        for spec in (s for s in specs if s.policy == policy):
            kept, summary = select_set(table, spec, len(ids), c.keep, c.seed)
            text = "".join(json.dumps(r, default=str) + "\n" for r in kept_rows(rows, ids, kept, id_col))
            folder = spec.folder(out)
            io.write_text(folder / "prompts.jsonl", text)
            record = {"schema": SCHEMA, "policy": policy, "reward_model": spec.reward_model,
                      "is_ground_truth": spec.is_ground_truth, "rule": spec.rule,
                      "keep": None if spec.rule == "zero_std" else c.keep, "seed": c.seed,
                      "pool": to_plain(pool), "prompts": folder.relative_to(out).as_posix() + "/prompts.jsonl",
                      "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), **summary,
                      "kept_ids": [i for i, k in zip(ids, kept) if k]}
            io.write_json(folder / "selection.json", record)
            sets[(policy, spec.reward_model, spec.rule)] = record
        timing["curation_s"][policy] = round(time.perf_counter() - t0, 3)
    return sets


def curation_result(cfg: StudyConfig, records: list[dict[str, Any]], sets: dict[tuple[str, str, str], dict[str, Any]]
                    ) -> dict[str, Any]:
    """study.json's `curation`: settings, sets (without their ids), curated runs and the comparisons.

    Arguments:
        cfg: the study; records: every run's record (`study.run.run_record`), a curated one with its `rule`.
        sets: `write_sets`'s result.

    Returns:
        `{"rules", "keep", "seed", "pool", "uniform_trains_on", "sets", "comparisons", "runs"}`; each comparison
        (policy, RM, rule) holds `speedup_steps` and its `ci95` (`study.curation.speedup`), `reach_step`,
        `target` (the uniform seed-mean final held-out gold), the seed means of both final golds and
        `final_gold_difference` (curated - uniform, `noise.resolved_difference`).
    """
    c = cfg.curation
    assert c is not None
    a = cfg.analysis
    by_arm: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    for r in records:
        by_arm.setdefault((r["policy"], r["reward_model"], r.get("rule")), []).append(r)
    comparisons = []
    for i, (key, curated) in enumerate((k, v) for k, v in by_arm.items() if k[2] is not None):
        policy, rm, rule = key
        uniform = sorted(by_arm.get((policy, rm, None), []), key=lambda r: r["seed"])
        if not uniform:
            continue  # the uniform arm filtered out: nothing to compare with
        curated = sorted(curated, key=lambda r: r["seed"])
        s = speedup([r["curve"] for r in uniform], [r["curve"] for r in curated],
                    n_resamples=a.bootstrap_samples, seed=[a.seed, i])
        u_final = [r["outcomes"]["final_gold"] for r in uniform]
        c_final = [r["outcomes"]["final_gold"] for r in curated]
        comparisons.append({
            "policy": policy, "reward_model": rm, "rule": rule, "is_ground_truth": curated[0]["is_ground_truth"],
            "seeds": [r["seed"] for r in curated], **s, "n_kept": sets[key]["n_kept"], "n_total": sets[key]["n_total"],
            "uniform_final_gold": float(np.mean(u_final)), "curated_final_gold": float(np.mean(c_final)),
            "final_gold_difference": resolved_difference(c_final, u_final),
        })
    return {
        "rules": list(c.rules), "keep": c.keep, "seed": c.seed, "pool": to_plain(pool_of(cfg)),
        "uniform_trains_on": "pool",
        "sets": [{k: v for k, v in s.items() if k not in ("kept_ids", "schema", "pool")} for s in sets.values()],
        "comparisons": comparisons,
        "runs": [r for r in records if r.get("rule") is not None],
    }
