"""A finished study's runs judged by the predictors of another evaluate of the same policy (issue 18).

The runs' outcomes stay as they are; each run's predictors (and evaluate block) are replaced by the RM's card in
the new evaluate's report.json, and the study's own analysis (`study.run.build_study`: correlations, claims,
hacking table) is redone. Use it to ask what a larger evaluate would have forecast for runs already trained,
without training again (the runs' normalization stays the one they trained with).

    python scripts/reanalyze_study.py STUDY_JSON EVALUATE_REPORT_JSON --out OUT_FOLDER [--add STUDY_JSON ...]

`--add` pools the runs of other studies of the same recipe: other seeds (e.g. `--set 'seeds=[2]'`), so the
analysis covers every seed, or other policies (e.g. `--set 'only.policies=[gemma3]'`), so claim (c) compares
them; their runs keep their own predictors and forecast stability. A (policy, RM, seed) present twice is refused.

Writes OUT_FOLDER/study.json and OUT_FOLDER/summary.md (only one policy's evaluate is replaced: the report's);
OUT_FOLDER must be new or empty.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rmteach.core import io  # noqa: E402
from rmteach.core.config import validate  # noqa: E402
from rmteach.study import analysis  # noqa: E402
from rmteach.study.config import StudyConfig  # noqa: E402
from rmteach.study.report.page import summary_markdown  # noqa: E402
from rmteach.study.run import EVALUATE_KEYS, _card, build_study  # noqa: E402


def reanalyze(study: dict, report: dict, added: list[dict] = ()) -> dict:
    """`study` (plus the runs of `added` studies) with the runs of `report`'s policy re-judged by `report`'s cards;
    its own config kept, with the seeds of every run."""
    pooled = list(study["runs"]) + [r for other in added for r in other["runs"]]
    keys = [(r["policy"], r["reward_model"], r.get("rule"), r["seed"]) for r in pooled]
    if len(set(keys)) != len(keys):
        raise SystemExit("the studies share a (policy, RM, seed): pool studies of other seeds only")
    seeds = sorted({r["seed"] for r in pooled})
    config = {**study["config"], "seeds": seeds}
    if (config.get("only") or {}).get("policies") is not None:  # the pooled studies' policies, in order
        config["only"] = {**config["only"], "policies": list(dict.fromkeys(r["policy"] for r in pooled))}
    cfg = validate(StudyConfig, config, "study.json's config")
    policy = report["policy"]
    runs = []
    for r in pooled:
        if r["policy"] == policy:
            card = _card(report, r["reward_model"])
            r = {**r, "evaluate": {k: card.get(k) for k in EVALUATE_KEYS},
                 "predictors": analysis.predictors_from_card(card)}
        runs.append(r)
    stability = {k: v for s in [*added, study] for k, v in s.get("forecast_stability", {}).items()}
    stability[policy] = (report.get("ranking") or {}).get("stability")
    return build_study(cfg, runs, stability)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("report", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--add", type=Path, action="append", default=[],
                    help="another study (other seeds or policies) to pool")
    a = ap.parse_args(argv)
    if a.out.exists() and any(a.out.iterdir()):
        raise SystemExit(f"--out {a.out} is not empty: choose a new folder (nothing there is replaced)")
    study = reanalyze(json.loads(a.study.read_text()), json.loads(a.report.read_text()),
                      [json.loads(p.read_text()) for p in a.add])
    a.out.mkdir(parents=True, exist_ok=True)
    io.write_json(a.out / "study.json", study)
    io.write_text(a.out / "summary.md", summary_markdown(study))
    print(f"wrote {a.out / 'study.json'} and {a.out / 'summary.md'}")


if __name__ == "__main__":
    main()
