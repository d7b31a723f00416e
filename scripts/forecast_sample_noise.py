"""How much of a forecast's Spearman with gold_auc is the forecast's own sampling noise (issue 18).

From one large `rmteach evaluate` (n prompts x K samples, rewards.parquet) and a `rmteach study` of the same
policy and RMs (study.json: its gold_auc per RM), for each smaller size (prompts x samples) it draws random
subsets of the prompts and of the sample slots, recomputes every predictor there as `evaluate` does, and reports
the mean and standard deviation over draws of each predictor's Spearman with gold_auc (all RMs, the ground
truth's row included, as the study's table). It also checks the ranking's `stability` (the mean bootstrap
Spearman `evaluate` reports) against what it estimates: the Spearman of the small evaluate's candidate ranking
with the large evaluate's.

    python scripts/forecast_sample_noise.py EVALUATE_DIR STUDY_JSON --policy smollm2 [--scale-free] [--draws 40]

`--scale-free` for an AdamW or clipped trainer (`TrainerAssumption.scale_free`), as the study's train block.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rmteach.core.metrics import correlation, onpolicy_accuracy, per_prompt_variance  # noqa: E402
from rmteach.evaluate import forecast as F  # noqa: E402
from rmteach.evaluate.ranking import bootstrap_indices, stability  # noqa: E402
from regime_analysis import rewards_by_rm  # noqa: E402 (beside this script)

SIZES = ((48, 4), (96, 4), (200, 4), (48, 8), (96, 8))


def predictors(rewards: dict[str, np.ndarray], gold: str, names: list[str], scale_free: bool) -> dict:
    """{predictor: {rm: value}} for one (sub)sample, as `evaluate` computes them (RLOO advantages)."""
    g = rewards[gold]
    gn = F.normalize(g)
    out: dict[str, dict[str, float]] = {}
    per_prompt = {}
    for rm in names:
        r = rewards[rm]
        z = F.proxy_signal(r, group=False, scale_free=scale_free)
        per_prompt[rm] = F.gold_rate_per_prompt(z, gn)
        out.setdefault("gold_rate", {})[rm] = float(per_prompt[rm].mean())
        out.setdefault("lookahead", {})[rm] = float(F.lookahead_per_prompt(z, gn, 60, 0.05).mean())
        out.setdefault("best_of_k_gold_lift", {})[rm] = float(F.best_of_k_per_prompt(r, gn).mean())
        out.setdefault("onpolicy_accuracy", {})[rm] = onpolicy_accuracy(r, g)
        out.setdefault("reward_variance", {})[rm] = float(per_prompt_variance(F.normalize(r)).mean())
    return out, per_prompt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evaluate", type=Path)
    ap.add_argument("study", type=Path)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--scale-free", action="store_true")
    ap.add_argument("--draws", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    rewards = rewards_by_rm(a.evaluate)
    study = json.loads(a.study.read_text())
    points = [p for p in study["points"] if p["policy"] == a.policy]
    auc = {p["reward_model"]: p["outcomes"]["gold_auc"]["mean"] for p in points}
    gold = next(p["reward_model"] for p in points if p["is_ground_truth"])
    names = sorted(auc)
    cands = [n for n in names if n != gold]
    n, k = rewards[gold].shape
    print(f"{a.evaluate}: {n} prompts x {k} samples; {len(names)} RMs; outcome gold_auc of {a.study}")

    def spear(values: dict[str, float], over: list[str], target: dict[str, float]) -> float:
        return correlation(np.array([values[x] for x in over]), np.array([target[x] for x in over]), "spearman")

    full, _ = predictors(rewards, gold, names, a.scale_free)
    print(f"\nall {n} x {k}: " + "  ".join(f"{p} {spear(v, names, auc):+.3f}" for p, v in full.items()))
    rng = np.random.default_rng(a.seed)
    print("\nsize      " + "  ".join(f"{p:>22s}" for p in full) + "   stability  vs large ranking")
    for n_p, n_k in SIZES:
        if n_p > n or n_k > k:
            continue
        rows: dict[str, list[float]] = {}
        stab, agree = [], []
        for _ in range(a.draws):
            ip = np.sort(rng.choice(n, n_p, replace=False))
            ik = np.sort(rng.choice(k, n_k, replace=False))
            sub = {rm: r[np.ix_(ip, ik)] for rm, r in rewards.items()}
            vals, per_prompt = predictors(sub, gold, names, a.scale_free)
            for p, v in vals.items():
                rows.setdefault(p, []).append(spear(v, names, auc))
            stab.append(stability({c: per_prompt[c] for c in cands}, bootstrap_indices(n_p, 500, 0)))
            agree.append(spear(vals["gold_rate"], cands, full["gold_rate"]))
        cells = "  ".join(f"{np.mean(v):+.2f} +- {np.std(v):.2f}".rjust(22) for v in rows.values())
        print(f"{n_p:3d} x {n_k}   {cells}   {np.mean(stab):.3f}      {np.mean(agree):.3f}")


if __name__ == "__main__":
    main()
