"""`rmteach study`: the paper's experiment as one command.

1. For each policy, one `evaluate` with its candidate RMs and the ground truth (samples cached), into
   `OUT/evaluate/<policy>/`: reward variance, accuracies and the normalization of every RM.
2. For each (policy, RM, seed), one `train` run into `OUT/runs/<policy>/<rm>/seed<k>/`, reusing the evaluate
   normalization. A run is finished when its `done.json` holds its config: a re-run skips finished runs, so a
   killed study resumes where it stopped (an interrupted run restarts from scratch: runs are short).
3. Outcomes per run from its eval curve, then correlations, rankings and claims (`rmteach.analysis`).
4. `study.json` (no wall times, so a resumed study's equals an uninterrupted one's), `report.html`,
   `summary.md`, `plots/*.png`; wall times go to `timing.json`.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import analysis, io
from .config import EvaluateConfig, PolicyConfig, RewardModelConfig, to_plain
from .errors import UserError
from .progress import console, progress_bar
from .study_config import StudyConfig
from .train_config import TrainConfig

SCHEMA = "rmteach.study/1"
MARKER = "config.json"  # written first: it claims --out for this config, so a killed study can resume there

TrainFn = Callable[..., Any]  # run_train(cfg, out, *, resume, overwrite) -> dict
EvaluateFn = Callable[[EvaluateConfig, Path], dict]  # (config, out folder) -> report dict, report.json written


@dataclass(frozen=True)
class Run:
    """One train run of the grid."""

    policy: str
    reward_model: str
    seed: int
    is_ground_truth: bool

    @property
    def key(self) -> str:
        return f"{self.policy}/{self.reward_model}/seed{self.seed}"

    def folder(self, out: Path) -> Path:
        return out / "runs" / self.policy / self.reward_model / f"seed{self.seed}"

    def log(self, out: Path) -> Path:
        """Where a worker process writes this run's output (with `jobs > 1`)."""
        return out / "logs" / f"{self.policy}__{self.reward_model}__seed{self.seed}.log"


def plan_runs(cfg: StudyConfig) -> list[Run]:
    """Every (policy, RM, seed) of the study, policy by policy, the ground truth's runs last per policy."""
    runs = []
    for policy in cfg.selected_policies():
        names = [(rm.name, False) for rm in cfg.reward_models_for(policy)]
        if cfg.train_on_ground_truth:
            names.append((cfg.ground_truth.name, True))
        runs += [Run(policy.display_name, n, s, gt) for n, gt in names for s in cfg.seeds]
    return runs


# ----------------------------------------------------------------------------------------------------------
# Step 1: evaluate


def _run_evaluate(ecfg: EvaluateConfig, out: Path) -> dict:
    from .evaluate import run_evaluate

    return run_evaluate(ecfg, out, overwrite=True)


def _same_config(path: Path, plain: Any) -> bool:
    """Whether the JSON file at `path` exists and its `config` equals `plain`."""
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("config") == json.loads(json.dumps(plain))
    except (json.JSONDecodeError, AttributeError):
        return False


def evaluate_policies(
    cfg: StudyConfig, out: Path, evaluate_fn: EvaluateFn, timing: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """One evaluate per policy, reusing a finished one with the same config. Returns {policy: report}."""
    reports = {}
    for policy in cfg.selected_policies():
        name = policy.display_name
        ecfg = cfg.evaluate_config(policy)
        folder = out / "evaluate" / name
        if _same_config(folder / "report.json", to_plain(ecfg)):
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


def build_train_configs(
    cfg: StudyConfig, out: Path, runs: list[Run], reports: dict[str, dict[str, Any]]
) -> list[tuple[Run, TrainConfig, dict[str, Any]]]:
    """Each run's TrainConfig and identity.

    The config is the `train` block plus the run's policy, RMs, prompts, seed, and the policy's evaluate
    report for the normalization. The identity (what `done.json` must hold for the run to count as finished)
    is the config plus the normalization values themselves: a re-done evaluate with other numbers re-does
    the runs, though the report's path is unchanged.
    """
    policies: dict[str, PolicyConfig] = {p.display_name: p for p in cfg.policies}
    rms: dict[str, RewardModelConfig] = {rm.name: rm.plain() for rm in cfg.reward_models}
    rms[cfg.ground_truth.name] = cfg.ground_truth
    built = []
    for run in runs:
        report = out / "evaluate" / run.policy / "report.json"
        try:
            tcfg = cfg.train_config(policies[run.policy], rms[run.reward_model], run.seed, str(report))
        except ValueError as e:
            raise UserError(f"train run {run.key}: train block: {e}") from None
        norm = _card(reports[run.policy], run.reward_model)["normalization"]
        built.append((run, tcfg, json.loads(json.dumps({"train": to_plain(tcfg), "normalization": norm}))))
    return built


def _train_job(train_fn: TrainFn, train_cfg: Any, folder: str, log: str, threads: int) -> float:
    """Run one train job in a worker process, its output to `log`; returns its wall time in seconds."""
    import sys

    import torch

    torch.set_num_threads(threads)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log, "w", encoding="utf-8") as f:  # the worker's fds 1 and 2 now write to this run's log
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    t0 = time.perf_counter()
    train_fn(train_cfg, Path(folder), resume=False, overwrite=True)
    return time.perf_counter() - t0


def _mark_done(out: Path, run: Run, identity: dict[str, Any]) -> None:
    folder = run.folder(out)
    if not (folder / "metrics.jsonl").is_file():
        raise RuntimeError(f"train run {run.key} finished without writing {folder / 'metrics.jsonl'}")
    io.write_json(folder / "done.json", {"config": identity})


def train_runs(
    cfg: StudyConfig, out: Path, built: list[tuple[Run, TrainConfig, dict[str, Any]]], train_fn: TrainFn,
    timing: dict[str, Any],
) -> None:
    """Train every unfinished run, one at a time or `cfg.jobs` at once in worker processes."""
    todo = []
    for run, tcfg, identity in built:
        if _same_config(run.folder(out) / "done.json", identity):
            timing["train_s"][run.key] = None
        else:
            todo.append((run, tcfg, identity))
    if len(todo) < len(built):
        console().print(f"[dim]{len(built) - len(todo)} of {len(built)} train runs finished earlier: skipped[/dim]")
    if cfg.jobs == 1 or len(todo) <= 1:
        for i, (run, tcfg, identity) in enumerate(todo):
            console().print(f"[bold]train {i + 1}/{len(todo)}[/bold] {run.key}")
            t0 = time.perf_counter()
            try:
                train_fn(tcfg, run.folder(out), resume=False, overwrite=True)
            except UserError as e:
                raise UserError(f"train run {run.key}: {e}") from None
            timing["train_s"][run.key] = round(time.perf_counter() - t0, 3)
            _mark_done(out, run, identity)
        return
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // cfg.jobs)
    console().print(f"training {len(todo)} runs, {cfg.jobs} at a time; logs in {out / 'logs'}")
    ctx = multiprocessing.get_context("spawn")  # fork after torch/rich threads started is unsafe
    with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=ctx) as pool, progress_bar("train runs", len(todo)) as advance:
        futures = {}
        for run, tcfg, identity in todo:
            fut = pool.submit(_train_job, train_fn, tcfg, str(run.folder(out)), str(run.log(out)), threads)
            futures[fut] = (run, identity)
        try:
            for fut in as_completed(futures):
                run, identity = futures[fut]
                try:
                    timing["train_s"][run.key] = round(fut.result(), 3)
                except UserError as e:
                    raise UserError(f"train run {run.key}: {e} (log: {run.log(out)})") from None
                _mark_done(out, run, identity)
                advance(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # finished runs keep their done.json
            raise


# ----------------------------------------------------------------------------------------------------------
# Step 3: outcomes and analysis


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file (blank lines skipped)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_record(cfg: StudyConfig, out: Path, run: Run, card: dict[str, Any]) -> dict[str, Any]:
    """study.json's entry of one finished run: who, its evaluate metrics, its eval curve and outcomes."""
    folder = run.folder(out)
    curve = analysis.eval_curve(read_metrics(folder / "metrics.jsonl"))
    try:
        outcomes = analysis.run_outcomes(curve, cfg.analysis.budgets)
    except ValueError as e:
        raise UserError(
            f"train run {run.key}: {e}; the train block must evaluate at step 0 and at least once more"
        ) from None
    keys = ("normalization", "reward_variance", "onpolicy_accuracy", "offpolicy_accuracy", "offpolicy_accuracy_vs_gold")
    return {
        "policy": run.policy,
        "reward_model": run.reward_model,
        "seed": run.seed,
        "is_ground_truth": run.is_ground_truth,
        "folder": folder.relative_to(out).as_posix(),
        "evaluate": {k: card.get(k) for k in keys},
        "predictors": analysis.predictors_from_card(card),
        "outcomes": outcomes,
        "curve": curve,
    }


def build_study(cfg: StudyConfig, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """study.json's content from the run records: analysis plus the config (deterministic: no wall times)."""
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
    )
    return {
        "schema": SCHEMA,
        "name": cfg.name,
        "policies": [p.display_name for p in cfg.selected_policies()],
        "reward_models": list(dict.fromkeys(r["reward_model"] for r in runs if not r["is_ground_truth"])),
        "ground_truth": cfg.ground_truth.name,
        "seeds": list(cfg.seeds),
        "primary_outcome": a.primary_outcome,
        "outcomes": analysis.outcome_names(a.budgets),
        "predictors": list(analysis.PREDICTORS),
        "runs": list(runs),
        **result,
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
        train_fn: `rmteach.train.run_train` unless given (tests pass a fake; with `jobs > 1` it must be
            importable by name in a worker process).
        evaluate_fn: `(EvaluateConfig, folder) -> report` writing `folder/report.json`; default `run_evaluate`.

    Returns:
        The study dict written to `OUT/study.json`.
    """
    out = Path(out)
    plain = to_plain(cfg)
    out = io.claim_out_dir(out, MARKER, plain, overwrite, "study")
    t_start = time.perf_counter()
    if evaluate_fn is None:
        from .evaluate import preflight

        for policy in cfg.selected_policies():  # every missing model or callable fails before the first load
            preflight(cfg.evaluate_config(policy))
        evaluate_fn = _run_evaluate
    if train_fn is None:
        from .train import run_train as train_fn
    io.write_json(out / MARKER, {"schema": "rmteach.study-config/1", "config": plain})
    runs = plan_runs(cfg)
    n_cand = len({r.reward_model for r in runs if not r.is_ground_truth})
    if n_cand < analysis.MIN_POINTS:
        console().print(
            f"[yellow]note:[/yellow] {n_cand} candidate reward model(s): correlations need at least "
            f"{analysis.MIN_POINTS}, so the report will show curves and rankings only"
        )
    timing: dict[str, Any] = {"jobs": cfg.jobs, "evaluate_s": {}, "train_s": {}}

    reports = evaluate_policies(cfg, out, evaluate_fn, timing)  # 1.
    built = build_train_configs(cfg, out, runs, reports)
    train_runs(cfg, out, built, train_fn, timing)  # 2.

    t0 = time.perf_counter()  # 3.
    records = [run_record(cfg, out, run, _card(reports[run.policy], run.reward_model)) for run in runs]
    study = build_study(cfg, records)
    timing["analysis_s"] = round(time.perf_counter() - t0, 3)

    from .report.study_report import write_report  # 4.

    t0 = time.perf_counter()
    write_report(out, study)
    timing["report_s"] = round(time.perf_counter() - t0, 3)
    io.write_json(out / "study.json", study)  # last: its presence means a whole study
    timing["total_s"] = round(time.perf_counter() - t_start, 3)
    io.write_json(out / "timing.json", timing)
    print_claims(study)
    console().print(f"wrote {out / 'report.html'} and {out / 'study.json'} in {timing['total_s']:.0f} s")
    return study


def print_claims(study: dict[str, Any]) -> None:
    """The claims, one line each, on stdout (the result of the command)."""
    from rich.console import Console

    c = Console()
    colour = {analysis.HELD: "green", analysis.NOT_HELD: "red", analysis.UNDETERMINED: "yellow"}
    for claim in study["claims"]:
        c.print(f"[{colour[claim['status']]}]({claim['id']}) {claim['status']}[/]: {claim['statement']}")
        c.print(f"    {claim['summary']}", highlight=False)
