"""The curation validation of issue 21: does training on a curated prompt set reach the uniform set's gold sooner?

Cells: toy worlds x both policies x regime {SGD, AdamW} x every RM (the ground truth's own run included) x rule
{variance, forecast}. One study per (world, regime): the demo's full study over the world with a curation block
`{rules: [none, variance, forecast], keep: 0.5}`, trained 60 steps (eval every 5), 3 seeds. The uniform arm trains
on the pool the rules select from: the demo's evaluate prompts (its train prompts cut to `evaluate_prompts`), so
its runs differ from a plain demo study's (which train on all the train prompts). Every curve is measured on the
same held-out eval prompts.

Regimes (as in `regime_grid.py`, KL 0): SGD lr 0.003 without clipping (the paper's gradient-flow setting, the
demo's), AdamW lr 0.001 with max_grad_norm 1.0 (TRL's clipping default).

    python scripts/curation_grid.py run --world runs/toy/default-seed0 --world runs/toy/default-seed1 --out runs/cur
    python scripts/curation_grid.py analyze --out runs/cur [--json runs/cur/curation.json]

`run` resumes: a finished study is skipped, a killed one resumes where it stopped (finished runs are reused).
`analyze` prints one row per (world, policy, regime, RM, rule): `speedup_steps` (the fraction of the steps at which
the curated arm's seed-mean held-out gold first reaches the uniform arm's final; below 1 is faster) with its 95%
seed-bootstrap interval, the final-gold difference curated - uniform with its Welch test, and the curated set's
`forecast_gain` (`core.selection.summarize` on the study's evaluate), then how often each range of gain paid.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gridlib import REGIMES as ALL_REGIMES, add_run_parser, demo_study, run_cells  # noqa: E402 (beside this script)
from rmteach.curate.output import GAIN_LITTLE, GAIN_PAYS  # noqa: E402

REGIMES = {k: ALL_REGIMES[k] for k in ("sgd-kl0", "adamw-kl0")}  # KL 0 only
STEPS, EVAL_EVERY = 60, 5
CURATION = {"rules": ["none", "variance", "forecast"], "keep": 0.5, "seed": 0}


def study_config(world: Path, regime: str, seeds: int, steps: int = STEPS):
    """The demo's full study over `world` with the curation block, trained in `regime` for `steps` steps."""
    return demo_study(world, regime, seeds, steps=steps, eval_every=EVAL_EVERY, name="curation grid",
                      extra={"curation": dict(CURATION)})


def cmd_run(a: argparse.Namespace) -> None:
    run_cells(a.world, a.regime or list(REGIMES), a.out, lambda w, r: study_config(w, r, a.seeds, a.steps),
              force=a.force, label="curation grid")


@lru_cache(maxsize=None)
def _prompt_table(study_dir: Path, policy: str):
    """The study's per-prompt evaluate table of `policy`, read once for all its RMs and rules."""
    import pandas as pd

    return pd.read_parquet(study_dir / "evaluate" / policy / "prompts.parquet")


def forecast_gain(study_dir: Path, policy: str, rm: str, rule: str) -> float | None:
    """The curated set's forecast gain, from the study's evaluate table of `policy` and the set's kept ids."""
    import numpy as np

    from rmteach.core.selection import summarize

    table = _prompt_table(study_dir, policy)
    table = table[table.reward_model == rm].reset_index(drop=True)
    sel = json.loads((study_dir / "curation" / policy / rm / rule / "selection.json").read_text(encoding="utf-8"))
    return summarize(table, np.isin(table.prompt_id.to_numpy(), sel["kept_ids"]))["forecast_gain"]


def rows(out: Path) -> list[dict[str, Any]]:
    """One row per (world, policy, regime, RM, rule) from every finished study under `out`."""
    found = []
    for path in sorted(out.glob("*/*/study.json")):
        study = json.loads(path.read_text(encoding="utf-8"))
        world, regime = path.parent.parent.name, path.parent.name
        change = {(h["policy"], h["reward_model"]): h["gold_change"] for h in (study.get("hacking") or {}).get("rows", [])}
        for c in (study.get("curation") or {}).get("comparisons", []):
            d = c["final_gold_difference"]
            found.append({"world": world, "policy": c["policy"], "regime": regime, "reward_model": c["reward_model"],
                          "is_ground_truth": c["is_ground_truth"], "rule": c["rule"], "kept": c["n_kept"],
                          "of": c["n_total"], "speedup_steps": c["speedup_steps"], "ci95": c["ci95"],
                          "reached_share": c["reached_share"], "uniform_final_gold": c["uniform_final_gold"],
                          "curated_final_gold": c["curated_final_gold"], "difference": d["difference"],
                          "margin": d["margin"], "resolved": d["resolved"],
                          "forecast_gain": forecast_gain(path.parent, c["policy"], c["reward_model"],
                                                         c["rule"]),
                          # the uniform arm's held-out gold change (the ground truth's own runs are not judged)
                          "uniform_hacked": change.get((c["policy"], c["reward_model"]), 1.0) < 0})
    return found


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def best_rule_summary(table: list[dict[str, Any]]) -> str:
    """Per (world, policy, regime): over the RMs whose uniform run does not hack the ground truth (held-out gold
    ends above its start), how many reach the uniform final in <= 0.67 of the steps (1.5x) with the best rule,
    and how many of those beyond seed noise (the 95% interval's upper end below 1)."""
    groups: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
    for r in table:
        if r["uniform_hacked"]:
            continue
        groups.setdefault((r["world"], r["policy"], r["regime"]), {}).setdefault(r["reward_model"], []).append(r)
    lines = ["| world | policy | regime | RMs (not hacking) | best rule <= 0.67 | ... and 95% upper end < 1 | "
             "median best speed-up |", "|---|---|---|---|---|---|---|"]
    for (world, policy, regime), by_rm in groups.items():
        best = [min(rs, key=lambda r: (r["speedup_steps"] is None, r["speedup_steps"] or 9.0)) for rs in by_rm.values()]
        fast = [b for b in best if b["speedup_steps"] is not None and b["speedup_steps"] <= 0.67]
        sure = [b for b in fast if b["ci95"] and b["ci95"][1] is not None and b["ci95"][1] < 1.0]
        med = sorted(9.0 if b["speedup_steps"] is None else b["speedup_steps"] for b in best)[len(best) // 2]
        lines.append(f"| {world} | {policy} | {regime} | {len(best)} | {len(fast)} | {len(sure)} | "
                     f"{'never' if med == 9.0 else f'{med:.2f}'} |")
    return "\n".join(lines)


GAIN_BINS = ((GAIN_PAYS, None), (GAIN_LITTLE, GAIN_PAYS), (None, GAIN_LITTLE))  # the ranges `curate` quotes


def gain_summary(table: list[dict[str, Any]]) -> str:
    """Per range of the curated set's forecast gain, over the curated arms whose uniform run does not hack: how many
    reach the uniform final in <= 0.67 of the steps, and how many of those beyond seed noise."""
    lines = ["| forecast gain | curated arms (not hacking) | <= 0.67 of the steps | ... and 95% upper end < 1 |",
             "|---|---|---|---|"]
    for lo, hi in GAIN_BINS:
        arms = [r for r in table if not r["uniform_hacked"] and r["forecast_gain"] is not None
                and (lo is None or r["forecast_gain"] >= lo) and (hi is None or r["forecast_gain"] < hi)]
        fast = [r for r in arms if r["speedup_steps"] is not None and r["speedup_steps"] <= 0.67]
        sure = [r for r in fast if r["ci95"] and r["ci95"][1] is not None and r["ci95"][1] < 1.0]
        name = f">= {lo}" if hi is None else f"< {hi}" if lo is None else f"{lo}-{hi}"
        lines.append(f"| {name} | {len(arms)} | {len(fast)} | {len(sure)} |")
    return "\n".join(lines)


def cmd_analyze(a: argparse.Namespace) -> None:
    table = rows(Path(a.out))
    if not table:
        print(f"no finished curation study under {a.out} (OUT/<world>/<regime>/study.json)", file=sys.stderr)
        sys.exit(2)
    head = f"{'world':<18} {'policy':<10} {'regime':<10} {'reward model':<16} {'rule':<9} {'kept':>7} " \
           f"{'speedup [95% CI]':>22} {'reached':>7} {'uniform':>8} {'curated':>8} {'diff':>8} resolved"
    print(head)
    print("-" * len(head))
    for r in table:
        ci = r["ci95"] or [None, None]
        speed = f"{_f(r['speedup_steps'])} [{_f(ci[0])}, {_f(ci[1])}]"
        rm = r["reward_model"] + (" (gt)" if r["is_ground_truth"] else "")
        print(f"{r['world']:<18} {r['policy']:<10} {r['regime']:<10} {rm:<16} {r['rule']:<9} "
              f"{r['kept']:>3}/{r['of']:<3} {speed:>22} {_f(r['reached_share']):>7} {_f(r['uniform_final_gold'], 3):>8} "
              f"{_f(r['curated_final_gold'], 3):>8} {r['difference']:>+8.3f} {'yes' if r['resolved'] else 'no'}")
    faster = [r for r in table if r["ci95"] and r["ci95"][1] is not None and r["ci95"][1] < 1.0]
    print(f"\n{len(faster)} of {len(table)} (world, policy, regime, RM, rule) cells reach the uniform final gold "
          "sooner beyond seed noise (the whole 95% interval below 1)")
    print("\n" + best_rule_summary(table))
    print("\n" + gain_summary(table))
    if a.json:
        Path(a.json).write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {a.json}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    add_run_parser(sub, REGIMES).add_argument("--steps", type=int, default=STEPS)
    an = sub.add_parser("analyze", help="the speed-up table of every finished study")
    an.add_argument("--out", required=True)
    an.add_argument("--json", help="also write the rows as JSON")
    a = ap.parse_args()
    cmd_run(a) if a.cmd == "run" else cmd_analyze(a)


if __name__ == "__main__":
    main()
