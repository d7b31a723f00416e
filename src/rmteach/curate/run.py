"""`rmteach curate`: a training prompt set per RM, of the prompts where it can teach, from an evaluate's output.

1. check the options; 2. claim `--out` (`core.io.claim_out_dir`, and `curate.output.check_own`); 3. read the
evaluate's report.json and prompts.parquet, and its prompt source again (the rows, with every column); 4. per RM,
select the prompts (`core.selection`, pure) and summarize what they hold; 5. write the whole output at once
(`curate.output`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core import io
from ..core.blocks import MAX_SEED, DataConfig
from ..core.errors import UserError, first_line
from ..evaluate.prompts import COLUMNS
from .output import check_own, print_table, write_outputs
from ..core.selection import RULES, eligible, kept_rows, parse_keep, select, summarize

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = "rmteach.curate/1"
MARKER = "curation.json"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # an RM's name is its folder's name


@dataclass
class Evaluation:
    """What curate reads of an evaluate output."""

    folder: Path
    config: dict[str, Any]  # report.json's `config`: the whole evaluate config
    table: pd.DataFrame  # prompts.parquet, one row per (prompt, RM)
    ground_truth: str | None


def check_options(rule: str, keep: Any, seed: int) -> int | float | None:
    """Refuse a bad rule, keep or seed before anything is read; returns keep parsed (None for zero_std)."""
    if rule not in RULES:
        raise UserError(f"unknown --rule '{rule}' (allowed: {', '.join(RULES)})")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed must be a whole number between 0 and {MAX_SEED} (got {seed!r})")
    if rule == "zero_std":
        if keep is not None:
            raise UserError("--keep is not an option of --rule zero_std: it keeps every prompt whose rewards are not "
                            "all equal; remove --keep (or use --rule variance to keep a number of prompts)")
        return None
    if keep is None:
        raise UserError(f"--rule {rule} needs --keep: a fraction of the eligible prompts such as 0.5, or a count "
                        "such as 100")
    return parse_keep(keep)


def read_evaluation(folder: str | Path) -> Evaluation:
    """report.json and prompts.parquet of an evaluate output; a `UserError` naming what is missing or wrong."""
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--evaluate {folder}: not a folder; name the --out folder of an rmteach evaluate run")
    try:
        report = json.loads(io.read_user_text(folder / "report.json", "evaluate report"))
    except ValueError as e:
        raise UserError(f"--evaluate {folder}: report.json is not JSON ({first_line(e)}); rerun rmteach evaluate"
                        ) from None
    if not (isinstance(report, dict) and str(report.get("schema", "")).startswith("rmteach.evaluate/")
            and isinstance(report.get("config"), dict)):
        raise UserError(f"--evaluate {folder}: report.json is not an rmteach evaluate report")
    parquet = folder / "prompts.parquet"
    if not parquet.is_file():
        raise UserError(f"--evaluate {folder} has no prompts.parquet (the per-prompt table curate selects from): "
                        "rerun rmteach evaluate with this version to write it")
    try:
        table = pd.read_parquet(parquet)
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: one line, --debug shows it
        raise UserError(f"--evaluate {folder}: cannot read prompts.parquet ({first_line(e)}); rerun rmteach "
                        "evaluate") from e
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"--evaluate {folder}: prompts.parquet has no column {missing[0]}; rerun rmteach evaluate")
    gold = report["config"].get("ground_truth")
    return Evaluation(folder, report["config"], table, gold.get("name") if isinstance(gold, dict) else None)


def pick_rms(ev: Evaluation, rms: list[str] | None, rule: str) -> list[str]:
    """The RMs to curate for: those named (any RM of the evaluate, its ground truth included), or every candidate."""
    t = ev.table
    names = list(dict.fromkeys(t["reward_model"]))
    candidates = list(dict.fromkeys(t.loc[~t["is_ground_truth"].astype(bool), "reward_model"]))
    if rms:
        unknown = next((r for r in rms if r not in names), None)
        if unknown is not None:
            raise UserError(f"--rm '{unknown}' is not a reward model of the evaluate {ev.folder} "
                            f"(it has: {', '.join(names)})")
        chosen = list(dict.fromkeys(rms))
    else:
        chosen = candidates
    if not chosen:
        raise UserError(f"the evaluate {ev.folder} has no candidate reward model; name one with --rm")
    bad = next((r for r in chosen if not SAFE_NAME.match(r)), None)
    if bad is not None:
        raise UserError(f"reward model '{bad}' names its output folder, so it must use letters, digits, '.', '_', "
                        "'-' only (and start with a letter or digit): leave it out with --rm NAME ... or rename it "
                        "in the evaluate config and rerun evaluate")
    if rule == "forecast" and ev.ground_truth is None:
        raise UserError(f"--rule forecast needs a ground truth, and the evaluate {ev.folder} had none: add "
                        "ground_truth to its config and rerun evaluate, or use --rule variance (no ground truth)")
    return chosen


def read_source(ev: Evaluation) -> tuple[DataConfig, list[dict[str, Any]], list[str]]:
    """The evaluate's prompt source: its config, its rows (every column) and their ids, checked against the
    prompts the evaluate measured (a source changed since then is refused)."""
    from pydantic import ValidationError

    from ..core.data import load_prompts
    from ..core.sources import read_rows

    try:
        cfg = DataConfig.model_validate(ev.config.get("prompts"))
    except ValidationError as e:
        raise UserError(f"--evaluate {ev.folder}: report.json's prompts config is not valid ({first_line(e)})"
                        ) from None
    rows = read_rows(cfg, "prompt")
    ids = [p.id for p in load_prompts(cfg)]  # validated as evaluate validated them; ids as it made them
    t = ev.table
    measured = list(t.loc[~t["is_ground_truth"].astype(bool), "prompt_id"].drop_duplicates()) or list(
        t["prompt_id"].drop_duplicates())
    if measured != ids[: len(measured)] or len(measured) != len(ids):
        where = next((i for i, (a, b) in enumerate(zip(measured, ids)) if a != b), min(len(measured), len(ids)))
        raise UserError(f"prompt set {cfg.where} changed since the evaluate {ev.folder} (its prompts differ from "
                        f"row {where} on: {len(ids)} rows now, {len(measured)} measured); rerun rmteach evaluate")
    return cfg, rows, ids


def curate_one(ev: Evaluation, name: str, n: int, rule: str, keep: int | float | None, seed: int
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """(kept (n,) bools over the source's prompts, the RM's summary) for one RM."""
    mine = ev.table[ev.table["reward_model"] == name].reset_index(drop=True)  # (m, ...), m <= n prompts in order
    if rule == "forecast" and not np.isfinite(mine["forecast_term"].to_numpy(dtype=np.float64)).any():
        raise UserError(f"reward model '{name}' has no forecast term in the evaluate {ev.folder}; use --rule variance")
    n_eligible = int(eligible(mine, rule).sum())
    if rule == "zero_std" and n_eligible == 0:
        raise UserError(f"reward model '{name}' gives every prompt the same reward for all K samples (all groups "
                        "dead): nothing to keep; leave it out with --rm")
    if isinstance(keep, int) and keep > n_eligible:
        why = {"variance": "prompts", "forecast": "prompts with a forecast term (forecast.max_prompts)"}[rule]
        raise UserError(f"--keep {keep} is more than the {n_eligible} {why} of reward model '{name}'; keep at "
                        f"most {n_eligible}, or a fraction such as 0.5")
    part = select(mine, rule, keep, seed)  # (m,)
    kept = np.zeros(n, dtype=bool)
    kept[: len(part)] = part  # a ground truth scored on the first m prompts only keeps none past them
    summary = {"n_total": n, "n_eligible": n_eligible, "n_kept": int(kept.sum()), **summarize(mine, part)}
    return kept, summary


def run_curate(evaluate: str | Path, out: str | Path, *, rule: str, keep: int | float | str | None = None,
               rms: list[str] | None = None, seed: int = 0, overwrite: bool = False) -> dict[str, Any]:
    """`rmteach curate`: write OUT/<rm>/prompts.jsonl per RM, curation.json and summary.md.

    Arguments:
        evaluate: the --out folder of an `rmteach evaluate` run (report.json, prompts.parquet).
        out: the output folder.
        rule: "variance", "zero_std" or "forecast" (see `rmteach.core.selection`).
        keep: a count (int, or a whole number as text) or a fraction in (0, 1] (float, or text with a point) of the
            eligible prompts; None for zero_std.
        rms: the RMs to curate for (default: every candidate RM of the evaluate, not its ground truth).
        seed: orders prompts of equal score.
        overwrite: replace a different curate output in `out` (only what curate wrote).

    Returns:
        curation.json's content.
    """
    keep = check_options(rule, keep, seed)
    rms = [rms] if isinstance(rms, str) else rms
    evaluate = Path(evaluate).absolute()
    # keep as text in the run's identity: 1 (one prompt) and 1.0 (all of them) are equal numbers
    config = {"evaluate": str(evaluate), "rule": rule, "keep": None if keep is None else repr(keep),
              "rm": list(rms) if rms else None, "seed": seed}
    out = io.claim_out_dir(out, MARKER, config, overwrite, "curate", whole=True)
    check_own(out, MARKER)
    ev = read_evaluation(evaluate)
    names = pick_rms(ev, rms, rule)
    source, rows, ids = read_source(ev)
    id_col = source.columns.get("id", "id")
    result: dict[str, Any] = {
        "schema": SCHEMA, "config": config, "evaluate": str(evaluate), "rule": rule, "keep": keep, "seed": seed,
        "ground_truth": ev.ground_truth, "source": source.model_dump(mode="json", exclude_none=True),
        "reward_models": [],
    }
    files = {}
    for name in names:
        kept, summary = curate_one(ev, name, len(ids), rule, keep, seed)
        prompts = {"path": f"{name}/prompts.jsonl", **({"columns": dict(source.columns)} if source.columns else {})}
        result["reward_models"].append({"name": name, **summary, "prompts": prompts,
                                        "kept_ids": [i for i, k in zip(ids, kept) if k]})
        files[name] = kept_rows(rows, ids, kept, id_col)
    write_outputs(out, result, files)
    print_table(result, out)
    return result
