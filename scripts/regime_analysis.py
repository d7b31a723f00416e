"""`regime_grid.py analyze`: every predictor's Spearman with gold_auc in every cell of the regime grid.

A cell is (world, policy, regime, horizon). Per cell: each RM's outcome is its mean `gold_auc` over the seeds
(the ground truth's own run counted, as the acceptance asks), read from the runs' eval curves up to the horizon;
predictors are the report card's (paper predictors, forecasts) plus the candidate forecasts of `CANDIDATES`,
recomputed from the evaluate's raw rewards with the cell's train settings; `reliability` is the
Spearman-Brown-corrected split-half reliability of the outcome's RM ranking (`study.noise`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

from rmteach.core import io
from rmteach.core.run_dir import read_metrics
from rmteach.study.analysis import predictors_from_card
from rmteach.study.hacking import change_interval
from rmteach.study.noise import split_half_reliability
from rmteach.study.outcomes import eval_curve, run_outcomes

HORIZONS = (60, 240)
CARD = ("reward_variance", "onpolicy_accuracy", "offpolicy_accuracy", "on_off_accuracy", "gold_rate", "lookahead",
        "best_of_k_gold_lift")


def rewards_by_rm(evaluate_dir: Path) -> dict[str, np.ndarray]:
    """{rm name: (n, K) raw rewards} from an evaluate folder's rewards.parquet (prompts in id order)."""
    d = pd.read_parquet(evaluate_dir / "rewards.parquet")
    out = {}
    for name, g in d.groupby("reward_model", sort=False):
        w = g.pivot(index="prompt_id", columns="sample", values="reward").sort_index()
        out[str(name)] = w.to_numpy(dtype=np.float64)
    return out


def candidates() -> dict[str, Callable[..., float]]:
    """Candidate forecasts: (r, g, train) -> value. Imported late so the module can grow while the grid runs."""
    import regime_candidates

    return regime_candidates.CANDIDATES


def cell_rows(study_dir: Path, horizons=HORIZONS) -> list[dict[str, Any]]:
    """One row per (policy, RM, horizon): mean and per-seed gold_auc, every predictor."""
    train = json.loads((study_dir / "config.json").read_text())["config"]["train"]
    rows = []
    for pol_dir in sorted((study_dir / "evaluate").iterdir()):
        report = json.loads((pol_dir / "report.json").read_text())
        rewards = rewards_by_rm(pol_dir)
        gold = rewards.get(report.get("ground_truth") or "")
        cards = {c["name"]: c for c in report["reward_models"]}
        for rm_dir in sorted((study_dir / "runs" / pol_dir.name).iterdir()):
            seeds = sorted(rm_dir.glob("seed*"), key=lambda p: int(p.name[4:]))
            curves = [eval_curve(read_metrics(s / "metrics.jsonl")) for s in seeds if (s / "done.json").is_file()]
            card = cards.get(rm_dir.name)
            base = {k: v for k, v in predictors_from_card(card).items() if k in CARD} if card else {}
            r = rewards.get(rm_dir.name)
            for h in horizons:
                preds = dict(base)
                if gold is not None and r is not None:
                    for cname, fn in candidates().items():
                        preds[cname] = float(fn(r, gold, train, h))
                per_seed = []
                for c in curves:
                    keep = [i for i, s in enumerate(c["step"]) if s <= h]
                    cut = {k: [v[i] for i in keep] for k, v in c.items()}
                    per_seed.append(run_outcomes(cut, [1.0]))
                rows.append({"policy": pol_dir.name, "rm": rm_dir.name, "horizon": h,
                             "gold_auc": [o["gold_auc"] for o in per_seed],
                             "gold_change": [o["final_gold"] - o["initial_gold"] for o in per_seed],
                             **preds})
    return rows


def analyze_cell(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Spearman of every predictor with the mean gold_auc over the RMs of one cell, and the reliability."""
    names = [r["rm"] for r in rows]
    n_seeds = min(len(r["gold_auc"]) for r in rows)
    y = np.array([np.mean(r["gold_auc"][:n_seeds]) for r in rows])
    vals = np.array([r["gold_auc"][:n_seeds] for r in rows])
    rel = split_half_reliability(vals)
    out = {"rms": names, "n_seeds": n_seeds, "reliability": rel["reliability"], "outcome": y.tolist(), "spearman": {}}
    keys = [k for k in rows[0] if k not in ("policy", "rm", "horizon", "gold_auc", "gold_change")]
    for k in keys:
        x = np.array([np.nan if r.get(k) is None else r[k] for r in rows], dtype=np.float64)
        ok = ~np.isnan(x)
        if ok.sum() >= 3 and np.ptp(x[ok]) > 0:
            out["spearman"][k] = float(stats.spearmanr(x[ok], y[ok]).statistic)
    out["hacked"] = [r["rm"] for r in rows if np.mean(r["gold_change"][:n_seeds]) < 0]
    ci = {r["rm"]: change_interval(r["gold_change"][:n_seeds]) for r in rows  # beyond seed noise: the t-interval
          if r["rm"] != "ground_truth"}
    out["hacked_beyond_noise"] = [m for m, c in ci.items() if c is not None and c[1] < 0]
    out["held_beyond_noise"] = [m for m, c in ci.items() if c is not None and c[0] > 0]
    out["gold_change"] = [float(np.mean(r["gold_change"][:n_seeds])) for r in rows]
    out["values"] = {k: [r.get(k) for r in rows] for k in keys}
    return out


def cmd_analyze(a) -> None:
    root = Path(a.out)
    cells = {}
    for study_dir in sorted(p.parent for p in root.glob("*/*/evaluate")):
        world, regime = study_dir.parent.name, study_dir.name
        if not (study_dir / "study.json").is_file() and not getattr(a, "partial", False):
            continue
        rows = cell_rows(study_dir)
        for pol in sorted({r["policy"] for r in rows}):
            for h in HORIZONS:
                sel = [r for r in rows if r["policy"] == pol and r["horizon"] == h]
                cells[f"{world}/{pol}/{regime}/{h}"] = analyze_cell(sel)
    if not cells:
        print("no finished cell yet")
        return
    preds = sorted({k for c in cells.values() for k in c["spearman"]})
    table = pd.DataFrame({k: {p: c["spearman"].get(p) for p in preds} | {"reliability": c["reliability"]}
                          for k, c in cells.items()}).T
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    print(table.round(3).to_string())
    print("\nmean over cells:\n" + table.mean().round(3).to_string())
    if a.json:
        io.write_json(Path(a.json), cells)
    acc = acceptance(cells)
    print("\nacceptance (primary = the trainer-following gold_rate):\n" + markdown(acc))
    print("\ncells passing: %d of %d; mean of the primary %.3f, of on-policy accuracy %.3f, of best-of-K %.3f" % (
        acc["ok"].sum(), len(acc), acc["forecast (trainer)"].mean(), acc["on-policy acc"].astype(float).mean(),
        acc["best-of-K"].astype(float).mean()))
    print("\nREADME table:\n" + readme_table(cells))
    print("\nhacking risk (240-step cells):", json.dumps(hacking(cells, 0.25, 0.5), indent=1))


def markdown(df: pd.DataFrame) -> str:
    """A frame as a markdown table, floats to 3 places (no tabulate needed)."""
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| cell | " + " | ".join(df.columns) + " |", "|---" * (len(df.columns) + 1) + "|"]
    lines += ["| " + " | ".join([str(i)] + [cell(v) for v in row]) + " |" for i, row in zip(df.index, df.values)]
    return "\n".join(lines)


def acceptance(cells: dict[str, Any], primary: str = "gr_auto") -> pd.DataFrame:
    """Per cell: the primary forecast, its rivals, the reliability, and issue 19's acceptance test."""
    rows = {}
    for k, c in cells.items():
        sp = c["spearman"]
        rival = max(sp.get("onpolicy_accuracy", -1), sp.get("best_of_k_gold_lift", -1))
        rel = c["reliability"]
        f = sp.get(primary, float("nan"))
        ok = (f >= 0.9 or (rel is not None and rel < 0.95 and f >= rel - 0.05)) and f >= rival - 0.05
        rows[k] = {"forecast (trainer)": f, "gold_rate (SGD form)": sp.get("gold_rate"),
                   "lookahead": sp.get("la_card"), "best-of-K": sp.get("best_of_k_gold_lift"),
                   "on-policy acc": sp.get("onpolicy_accuracy"), "variance": sp.get("reward_variance"),
                   "reliability": rel, "ok": ok}
    return pd.DataFrame(rows).T


def hacking(cells: dict[str, Any], restrained: float, unrestrained: float) -> dict[str, Any]:
    """Recall and precision of the hacking-risk flag (best-of-K share of the ground truth's under a threshold)
    against the (policy, RM) pairs whose held-out ground truth ends below its start, per world, 240-step cells."""
    out = {}
    for k, c in cells.items():
        world, _, regime, h = k.split("/")
        if h != "240":
            continue
        tau = unrestrained if regime == "adamw-kl0" else restrained  # scale-free without KL: drifts furthest
        rms, bok = c["rms"], c["values"]["best_of_k_gold_lift"]
        g = bok[rms.index("ground_truth")]
        flagged = {r for r, b in zip(rms, bok) if r != "ground_truth" and b / g < tau}
        hacked = set(c["hacked"])
        o = out.setdefault(world, {"tp": 0, "fp": 0, "fn": 0, "missed": [], "false": [],
                                   "beyond_noise": {"tp": 0, "fp": 0, "fn": 0, "undetermined": 0, "missed": []}})
        o["tp"] += len(flagged & hacked)
        o["fp"] += len(flagged - hacked)
        o["fn"] += len(hacked - flagged)
        o["missed"] += [f"{k}:{r}" for r in hacked - flagged]
        o["false"] += [f"{k}:{r}" for r in flagged - hacked]
        if "hacked_beyond_noise" in c:  # judged only where the seeds' t-interval of the change excludes 0
            sure_h, sure_ok, b = set(c["hacked_beyond_noise"]), set(c["held_beyond_noise"]), o["beyond_noise"]
            b["tp"] += len(flagged & sure_h)
            b["fp"] += len(flagged & sure_ok)
            b["fn"] += len(sure_h - flagged)
            b["undetermined"] += len(rms) - 1 - len(sure_h) - len(sure_ok)
            b["missed"] += [f"{k}:{r}" for r in sure_h - flagged]
    for o in out.values():
        for d in (o, o["beyond_noise"]):
            d["recall"] = d["tp"] / max(1, d["tp"] + d["fn"])
            d["precision"] = d["tp"] / max(1, d["tp"] + d["fp"])
    return out


README_ROWS = [("gr_auto", "**forecast: gold_rate, following the trainer** (primary)"),
               ("gold_rate", "gold_rate in its SGD form (before this change)"),
               ("la_card", "forecast: lookahead (trainer's signal)"),
               ("best_of_k_gold_lift", "best-of-K gold lift"),
               ("onpolicy_accuracy", "on-policy accuracy"),
               ("offpolicy_accuracy", "off-policy accuracy"),
               ("reward_variance", "reward variance"),
               ("variance_and_accuracy", "variance & accuracy average"),
               ("reliability", "reliability of gold_auc (Spearman-Brown)")]


def with_average(cells: dict[str, Any]) -> None:
    """Add the paper's variance-and-accuracy average (min-max scaled over the cell's RMs) to each cell."""
    for c in cells.values():
        v = np.asarray(c["values"]["reward_variance"], dtype=float)
        a = np.asarray(c["values"]["onpolicy_accuracy"], dtype=float)
        scale = lambda x: (x - x.min()) / (np.ptp(x) or 1.0)  # noqa: E731
        avg = (scale(v) + scale(a)) / 2
        c["spearman"]["variance_and_accuracy"] = float(stats.spearmanr(avg, c["outcome"]).statistic)


def readme_table(cells: dict[str, Any]) -> str:
    """Rows: predictors; columns: regimes (optimizer, KL, steps); each the mean over the (world, policy) cells
    with the minimum in parentheses."""
    with_average(cells)
    regimes = sorted({(k.split("/")[2], int(k.split("/")[3])) for k in cells}, key=lambda x: (x[0], x[1]))
    head = "| predictor (Spearman with gold_auc, all 8 RMs) | " + " | ".join(
        f"{r.replace('-kl', ' KL ')} {h}" for r, h in regimes) + " | all cells |"
    lines = [head, "|---" * (len(regimes) + 2) + "|"]
    for key, label in README_ROWS:
        cols, every = [], []
        for r, h in regimes:
            vals = [(c["reliability"] if key == "reliability" else c["spearman"].get(key))
                    for k, c in cells.items() if k.split("/")[2] == r and int(k.split("/")[3]) == h]
            vals = [v for v in vals if v is not None]
            every += vals
            cols.append(f"{np.mean(vals):.3f} ({np.min(vals):.2f})")
        lines.append(f"| {label} | " + " | ".join(cols) + f" | {np.mean(every):.3f} ({np.min(every):.2f}) |")
    return "\n".join(lines)
