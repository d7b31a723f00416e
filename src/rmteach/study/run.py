"""`rmteach study`: the paper's experiment as one command.

1. For each policy, one `evaluate` with its candidate RMs and the ground truth (samples cached), into
   `OUT/evaluate/<policy>/`: reward variance, accuracies and the normalization of every RM.
2. For each (policy, RM, seed), one `train` run into `OUT/runs/<policy>/<rm>/seed<k>/`, reusing the evaluate
   normalization (with a `curation` block, first the curated sets, `study.curation_sets`, and one more run per
   curated rule into `OUT/runs/<policy>/<rm>+<rule>/seed<k>/`). A run is finished when its `done.json` holds its
   config: a re-run skips finished runs, so a killed study resumes where it stopped (an interrupted run continues
   from its newest checkpoint, `train.checkpoint_every`, or else from step 0). Runs go to this machine's
   processes or, with `executor: submitit`, to cluster jobs (`study.executors`).
3. Outcomes per run from its eval curve, then correlations, rankings and claims (`study.outcomes`, `study.analysis`, `study.claims`).
4. `study.json` (no wall times, so a resumed study's equals an uninterrupted one's), `report.html`,
   `summary.md`, `plots/*.png`; wall times go to `timing.json`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from ..core import io, outdir
from ..core.config import to_plain
from ..core.errors import UserError
from ..core.progress import console, result_console
from ..evaluate.config import EvaluateConfig
from ..core.run_dir import read_metrics
from . import analysis, curation_sets, executors, outcomes
from .hacking import hacking_table
from .claims import HELD, NOT_HELD, UNDETERMINED
from .config import StudyConfig
from .executors import TrainFn
from .grid import EvaluateSpec, Grid, RunSpec, expand

SCHEMA = "rmteach.study/1"
MARKER = "config.json"  # written first: it claims --out for this config, so a killed study can resume there

EvaluateFn = Callable[[EvaluateConfig, Path], dict]  # (config, out folder) -> report dict, report.json written


# ----------------------------------------------------------------------------------------------------------
# Step 1: evaluate


def _run_evaluate(ecfg: EvaluateConfig, out: Path) -> dict:
    from ..evaluate.run import run_evaluate

    return run_evaluate(ecfg, out, overwrite=True)


def evaluate_policies(
    evaluations: list[EvaluateSpec], out: Path, evaluate_fn: EvaluateFn, timing: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """One evaluate per policy, reusing a finished one with the same config. Returns {policy: report}."""
    reports = {}
    for spec in evaluations:
        name, ecfg, folder = spec.policy, spec.config, spec.folder(out)
        if io.holds_config(folder / "report.json", to_plain(ecfg)):
            console().print(f"[dim]evaluate {name}: finished earlier, reusing {folder / 'report.json'}[/dim]")
            reports[name] = json.loads((folder / "report.json").read_text(encoding="utf-8"))
            timing["evaluate_s"][name] = None
            continue
        console().print(f"[bold]evaluate[/bold] {name}: {len(ecfg.reward_models)} reward models + ground truth")
        t0 = time.perf_counter()
        reports[name] = evaluate_fn(ecfg, folder)
        timing["evaluate_s"][name] = round(time.perf_counter() - t0, 3)
    return reports


def _card(report: dict[str, Any], rm_name: str) -> dict[str, Any]:
    for card in report["reward_models"]:
        if card["name"] == rm_name:
            return card
    raise UserError(f"the evaluate report of '{report.get('policy')}' has no reward model '{rm_name}'")


# ----------------------------------------------------------------------------------------------------------
# Step 2: train


def identities(runs: list[RunSpec], reports: dict[str, dict[str, Any]], sets: dict | None = None
               ) -> list[dict[str, Any]]:
    """What each run's `done.json` must hold for the run to count as finished.

    The run's train config plus the normalization values themselves: a re-done evaluate with other numbers
    re-does the runs, though the report's path is unchanged; a curated run's set by its sha256 (`sets`), likewise.
    """
    return [json.loads(json.dumps({"train": to_plain(run.config),
                                   "normalization": _card(reports[run.policy], run.reward_model)["normalization"],
                                   **({"curated_set": sets[(run.policy, run.reward_model, run.rule)]["sha256"]}
                                      if run.rule is not None and sets is not None else {})}))
            for run in runs]


def train_runs(
    cfg: StudyConfig, out: Path, runs: list[RunSpec], reports: dict[str, dict[str, Any]], train_fn: TrainFn,
    timing: dict[str, Any], sets: dict | None = None,
) -> None:
    """Train every unfinished run: here one at a time, `cfg.jobs` at once, or as submitit jobs (`executors`)."""
    built = list(zip(runs, identities(runs, reports, sets)))
    todo = []
    for run, identity in built:
        if io.holds_config(run.folder(out) / "done.json", identity):
            timing["train_s"][run.key] = None
        else:
            todo.append((run, identity))
    if len(todo) < len(built):
        console().print(f"[dim]{len(built) - len(todo)} of {len(built)} train runs finished earlier: skipped[/dim]")
    if not todo:
        return
    if cfg.executor == "submitit":
        executors.train_submitit(cfg, out, todo, train_fn, timing)
    elif cfg.jobs == 1 or len(todo) == 1:
        executors.train_serial(out, todo, train_fn, timing)
    else:
        executors.train_pool(cfg.jobs, out, todo, train_fn, timing)


# ----------------------------------------------------------------------------------------------------------
# Step 3: outcomes and analysis


EVALUATE_KEYS = ("normalization", "reward_variance", "onpolicy_accuracy", "offpolicy_accuracy",
                 "offpolicy_accuracy_vs_gold", "forecast")  # a run record's copy of its RM's report card


def run_record(cfg: StudyConfig, out: Path, run: RunSpec, card: dict[str, Any]) -> dict[str, Any]:
    """study.json's entry of one finished run: who, its evaluate metrics, its eval curve and outcomes."""
    folder = run.folder(out)
    curve = outcomes.eval_curve(read_metrics(folder / "metrics.jsonl"))
    try:
        values = outcomes.run_outcomes(curve, cfg.analysis.budgets)
    except ValueError as e:
        raise UserError(
            f"train run {run.key}: {e}; the train block must evaluate at step 0 and at least once more"
        ) from None
    return {
        "policy": run.policy,
        "reward_model": run.reward_model,
        **({"rule": run.rule} if run.rule is not None else {}),
        "seed": run.seed,
        "is_ground_truth": run.is_ground_truth,
        "folder": folder.relative_to(out).as_posix(),
        "evaluate": {k: card.get(k) for k in EVALUATE_KEYS},
        "predictors": analysis.predictors_from_card(card),
        "outcomes": values,
        "curve": curve,
    }


def build_study(cfg: StudyConfig, runs: list[dict[str, Any]],
                stability: dict[str, float | None] | None = None) -> dict[str, Any]:
    """study.json's content from the run records: analysis plus the config (deterministic: no wall times).

    `stability`: per policy, its evaluate's ranking stability (`evaluate.ranking.stability`), which bounds how
    well the forecast can rank the RMs whatever training does."""
    a = cfg.analysis
    result = analysis.analyze(
        runs,
        budgets=a.budgets,
        primary_outcome=a.primary_outcome,
        include_ground_truth=a.include_ground_truth,
        n_resamples=a.bootstrap_samples,
        seed=a.seed,
        roles={rm.name: rm.role for rm in cfg.reward_models},
        transformed={rm.name for rm in cfg.reward_models if rm.transform is not None},
        exclude=a.exclude_from_correlations,
        forecast=a.forecast,
    )
    return {
        "schema": SCHEMA,
        "name": cfg.name,
        "policies": list(dict.fromkeys(r["policy"] for r in runs)),
        "reward_models": list(dict.fromkeys(r["reward_model"] for r in runs if not r["is_ground_truth"])),
        "ground_truth": cfg.ground_truth.name,
        "seeds": list(cfg.seeds),
        "primary_outcome": a.primary_outcome,
        "outcomes": outcomes.outcome_names(a.budgets),
        "predictors": list(analysis.PREDICTORS),
        "runs": list(runs),
        **result,
        "hacking": hacking_table(runs),
        "forecast_stability": dict(stability or {}),
        "config": to_plain(cfg),
    }


# ----------------------------------------------------------------------------------------------------------
# The command


def run_study(
    cfg: StudyConfig,
    out: Path,
    *,
    overwrite: bool = False,
    train_fn: TrainFn | None = None,
    evaluate_fn: EvaluateFn | None = None,
) -> dict[str, Any]:
    """`rmteach study`: evaluate, train every run (skipping finished ones), analyze, write the report.

    Arguments:
        cfg: the study.
        out: the output folder; a folder holding this same study resumes it.
        overwrite: let a different study take `out` (runs whose config is unchanged are still reused).
        train_fn: `rmteach.train.run.run_train` unless given (tests pass a fake; with `jobs > 1` or
            `executor: submitit` it must be importable by name in a worker process or cluster job).
        evaluate_fn: `(EvaluateConfig, folder) -> report` writing `folder/report.json`; default `run_evaluate`.

    Returns:
        The study dict written to `OUT/study.json`.
    """
    out = Path(out)
    executors.preflight(cfg)  # submitit installed, sbatch there: before --out is claimed
    plain = to_plain(cfg)
    out = io.claim_out_dir(out, MARKER, plain, overwrite, "study")
    t_start = time.perf_counter()
    grid = expand(cfg, out)
    if evaluate_fn is None:
        from ..evaluate.run import preflight

        for spec in grid.evaluations:  # every bad data set, missing model or callable fails before the first load
            preflight(spec.config)
        evaluate_fn = _run_evaluate
    if train_fn is None:
        from ..train.run import preflight as train_preflight, run_train as train_fn

        if grid.runs:  # the train block's prompt sets and TRL settings (the same for every run)
            train_preflight(grid.runs[0].config, grid.runs[0].folder(out))
    outdir.claim(out, "study")  # first: --overwrite later removes only what a study wrote
    io.write_json(out / MARKER, {"schema": "rmteach.study-config/1", "config": plain})
    runs = grid.runs
    n_cand = len({r.reward_model for r in runs if not r.is_ground_truth})
    if n_cand < analysis.MIN_POINTS:
        console().print(
            f"[yellow]note:[/yellow] {n_cand} candidate reward model(s): correlations need at least "
            f"{analysis.MIN_POINTS}, so the report will show curves and rankings only"
        )
    timing: dict[str, Any] = {"jobs": cfg.jobs, "executor": cfg.executor, "evaluate_s": {}, "train_s": {}}

    reports = evaluate_policies(grid.evaluations, out, evaluate_fn, timing)  # 1.
    sets = curation_sets.write_sets(cfg, out, grid.curations, timing) if grid.curations else None
    train_runs(cfg, out, runs, reports, train_fn, timing, sets)  # 2.

    t0 = time.perf_counter()  # 3.
    records = [run_record(cfg, out, run, _card(reports[run.policy], run.reward_model)) for run in runs]
    stability = {p: (report.get("ranking") or {}).get("stability") for p, report in reports.items()}
    study = build_study(cfg, [r for r in records if "rule" not in r], stability)  # the uniform runs
    if sets is not None:
        study = {**study, "curation": curation_sets.curation_result(cfg, records, sets)}
    timing["analysis_s"] = round(time.perf_counter() - t0, 3)
    timing["forecast_cost"] = forecast_cost(out, grid)

    from .report.page import write_report  # 4.

    t0 = time.perf_counter()
    write_report(out, study, cost=timing["forecast_cost"])
    timing["report_s"] = round(time.perf_counter() - t0, 3)
    io.write_json(out / "study.json", study)  # last: its presence means a whole study
    timing["total_s"] = round(time.perf_counter() - t_start, 3)
    io.write_json(out / "timing.json", timing)
    print_claims(study)
    console().print(f"wrote {out / 'report.html'} and {out / 'study.json'} in {timing['total_s']:.0f} s")
    return study


def forecast_cost(out: Path, grid: Grid) -> dict[str, Any]:
    """The forecast's wall time against the study's RL wall time, from the evaluate and train runs' own records.

    `forecast_s` is each evaluation's whole report card (forecasts, variance and their bootstraps: an upper
    bound of the forecasts' cost); `gradient_s` the opt-in gradient alignment; `rl_train_s` the summed
    training time of every run (from its run.json, so runs finished in an earlier invocation count too).
    """
    times = {e.policy: io.read_json_object(e.folder(out) / "timing.json") for e in grid.evaluations}
    fc = {p: t.get("forecast_s") for p, t in times.items()}
    grad = {p: t.get("gradient_s") for p, t in times.items()}
    rl = [(io.read_json_object(r.folder(out) / "run.json").get("summary") or {}).get("timings", {}).get("train_seconds")
          for r in grid.runs]
    rl_s = sum(x for x in rl if x is not None)

    def share(part: dict[str, float | None]) -> float | None:
        known = [x for x in part.values() if x is not None]
        return round(sum(known) / rl_s, 6) if known and rl_s > 0 else None

    return {"forecast_s": fc, "gradient_s": grad, "rl_train_s": round(rl_s, 3),
            "runs_with_train_time": sum(x is not None for x in rl), "forecast_fraction": share(fc),
            "gradient_fraction": share(grad)}


def print_claims(study: dict[str, Any]) -> None:
    """The claims, one line each, on stdout (the result of the command)."""
    c = result_console()
    colour = {HELD: "green", NOT_HELD: "red", UNDETERMINED: "yellow"}
    for claim in study["claims"]:
        c.print(f"[{colour[claim['status']]}]({claim['id']}) {claim['status']}[/]: {claim['statement']}")
        c.print(f"    {claim['summary']}", highlight=False)
