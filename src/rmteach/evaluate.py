"""`rmteach evaluate`: sample once from the policy, score with every RM, compute the report card.

Data flow: prompts -> policy samples (cached) -> raw rewards per RM -> normalization -> variance and
accuracies -> report.json, rewards.parquet, preference_rewards.parquet, summary.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import io, metrics
from .config import EvaluateConfig, RewardModelConfig, to_plain
from .data import PreferencePair, Prompt, hash_prompts, load_preferences, load_prompts
from .hf import check_model_ref, fingerprint, resolve_device
from .policy import sample_responses
from .progress import console, progress_bar
from .rewards import check_finite, import_callable, load_reward_model

SCHEMA = "rmteach.evaluate/1"


@dataclass
class RewardTable:
    """Raw rewards of one RM: on-policy (n_prompts, k) and, with a preference set, chosen/rejected (n_pairs,)."""

    onpolicy: np.ndarray
    chosen: np.ndarray | None = None
    rejected: np.ndarray | None = None


@dataclass
class EvalData:
    """Everything an evaluation measured, before it is summarised."""

    prompts: list[Prompt]
    responses: list[list[str]]  # (n_prompts, k)
    pairs: list[PreferencePair] | None
    rewards: dict[str, RewardTable] = field(default_factory=dict)  # by RM name, ground truth last


# ----------------------------------------------------------------------------------------------------------
# Sampling with a cache


def cache_root(cfg: EvaluateConfig) -> Path:
    """Where samples are cached: the config's `cache_dir`, `$RMTEACH_CACHE_DIR`, or ~/.cache/rmteach."""
    root = cfg.cache_dir or os.environ.get("RMTEACH_CACHE_DIR") or Path.home() / ".cache" / "rmteach"
    return Path(root)


def samples_key(cfg: EvaluateConfig, prompts: list[Prompt], device: str) -> str:
    """Cache key: the policy's identity, the prompts and every sampling setting."""
    ident = {
        "policy": cfg.policy.path,
        "policy_files": fingerprint(cfg.policy.path),
        "prompts": hash_prompts(prompts),
        "sampling": cfg.sampling.model_dump(),
        "device": device,
        "dtype": cfg.dtype,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def get_samples(cfg: EvaluateConfig, prompts: list[Prompt], device: str) -> tuple[list[list[str]], bool]:
    """Sample K responses per prompt, or read them from the cache. Returns (responses, from_cache)."""
    path = cache_root(cfg) / "samples" / f"{samples_key(cfg, prompts, device)}.json"
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        return cached["responses"], True
    with progress_bar(f"sampling {cfg.sampling.samples_per_prompt} responses/prompt", len(prompts)) as advance:
        responses = sample_responses(
            cfg.policy, prompts, cfg.sampling, device=device, dtype=cfg.dtype, progress=advance
        )
    io.write_json(path, {"policy": cfg.policy.path, "responses": responses})
    return responses, False


# ----------------------------------------------------------------------------------------------------------
# Scoring


def score_one(
    rm_cfg: RewardModelConfig, data: EvalData, device: str, dtype: str
) -> RewardTable:
    """Load one RM, score on-policy samples and preference pairs, free it. Checks every reward is finite."""
    k = len(data.responses[0])
    flat_prompts = [p.text for p in data.prompts for _ in range(k)]
    flat_ids = [p.id for p in data.prompts for _ in range(k)]
    flat_resp = [r for row in data.responses for r in row]
    n_items = len(flat_prompts) + (2 * len(data.pairs) if data.pairs else 0)
    rm = load_reward_model(rm_cfg, device=device, dtype=dtype)
    try:
        with progress_bar(f"scoring with {rm_cfg.name}", n_items) as advance:
            onpolicy = rm.score(flat_prompts, flat_resp, advance)
            check_finite(rm_cfg.name, onpolicy, flat_prompts, flat_ids)
            table = RewardTable(onpolicy=onpolicy.reshape(len(data.prompts), k))  # (n_prompts, k)
            if data.pairs:
                pp = [p.prompt for p in data.pairs]
                ids = [f"preference {p.id}" for p in data.pairs]
                table.chosen = rm.score(pp, [p.chosen for p in data.pairs], advance)
                check_finite(rm_cfg.name, table.chosen, pp, ids)
                table.rejected = rm.score(pp, [p.rejected for p in data.pairs], advance)
                check_finite(rm_cfg.name, table.rejected, pp, ids)
    finally:
        rm.close()  # one RM in memory at a time
    return table


# ----------------------------------------------------------------------------------------------------------
# Metrics (pure: arrays in, JSON-able dict out)


def rm_metrics(
    table: RewardTable, gold: RewardTable | None, *, n_resamples: int, seed: int
) -> dict[str, Any]:
    """The report card of one RM from its raw rewards and (optionally) the ground truth's."""
    norm = metrics.fit_normalization(table.onpolicy)
    z = norm.apply(table.onpolicy)  # (n_prompts, k)
    card: dict[str, Any] = {
        "normalization": {"mean": norm.mean, "std": norm.std},
        "reward_variance": metrics.variance_summary(z, n_resamples=n_resamples, seed=seed),
        "onpolicy_accuracy": None,
        "offpolicy_accuracy": None,
        "offpolicy_accuracy_vs_gold": None,
    }
    if gold is not None:
        card["onpolicy_accuracy"] = metrics.onpolicy_accuracy(table.onpolicy, gold.onpolicy)
    if table.chosen is not None and table.rejected is not None:
        card["offpolicy_accuracy"] = metrics.offpolicy_accuracy(table.chosen, table.rejected)
        if gold is not None and gold.chosen is not None and gold.rejected is not None:
            card["offpolicy_accuracy_vs_gold"] = metrics.offpolicy_accuracy_vs(
                table.chosen, table.rejected, gold.chosen, gold.rejected
            )
    return card


def build_report(cfg: EvaluateConfig, data: EvalData) -> dict[str, Any]:
    """report.json's content from the measured data."""
    gold_name = cfg.ground_truth.name if cfg.ground_truth else None
    gold = data.rewards.get(gold_name) if gold_name else None
    rms = []
    for rm_cfg in cfg.all_reward_models():
        card = rm_metrics(
            data.rewards[rm_cfg.name], gold, n_resamples=cfg.bootstrap_samples, seed=cfg.sampling.seed
        )
        rms.append({"name": rm_cfg.name, "is_ground_truth": rm_cfg.name == gold_name, **card})
    return {
        "schema": SCHEMA,
        "policy": cfg.policy.display_name,
        "num_prompts": len(data.prompts),
        "samples_per_prompt": cfg.sampling.samples_per_prompt,
        "num_preference_pairs": len(data.pairs) if data.pairs else 0,
        "seed": cfg.sampling.seed,
        "ground_truth": gold_name,
        "reward_models": rms,
        "config": to_plain(cfg),
    }


# ----------------------------------------------------------------------------------------------------------
# Output


def rewards_frame(data: EvalData):
    """One row per (prompt, sample, RM): prompt_id, sample, reward_model, reward, prompt, response."""
    import pandas as pd

    k = len(data.responses[0])
    n = len(data.prompts)
    frames = []
    for name, table in data.rewards.items():
        frames.append(
            pd.DataFrame(
                {
                    "prompt_id": np.repeat([p.id for p in data.prompts], k).astype(str),
                    "sample": np.tile(np.arange(k), n).astype(np.int64),
                    "reward_model": name,
                    "reward": table.onpolicy.ravel(),
                    "prompt": np.repeat([p.text for p in data.prompts], k),
                    "response": [r for row in data.responses for r in row],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def preference_frame(data: EvalData):
    """One row per (preference pair, RM): pair_id, reward_model, reward_chosen, reward_rejected, texts."""
    import pandas as pd

    assert data.pairs is not None
    frames = []
    for name, table in data.rewards.items():
        frames.append(
            pd.DataFrame(
                {
                    "pair_id": [p.id for p in data.pairs],
                    "reward_model": name,
                    "reward_chosen": table.chosen,
                    "reward_rejected": table.rejected,
                    "prompt": [p.prompt for p in data.pairs],
                    "chosen": [p.chosen for p in data.pairs],
                    "rejected": [p.rejected for p in data.pairs],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the one-line-per-RM summary (markdown and terminal share it)."""
    header = ["reward model", "variance (mean)", "95% CI", "frac var<0.01", "on-policy acc", "off-policy acc",
              "off-policy acc vs gold"]
    rows = []
    for rm in report["reward_models"]:
        v = rm["reward_variance"]
        name = rm["name"] + (" (ground truth)" if rm["is_ground_truth"] else "")
        rows.append([name, _fmt(v["mean"]), f"[{_fmt(v['ci95'][0])}, {_fmt(v['ci95'][1])}]",
                     _fmt(v["frac_below_0.01"], 2), _fmt(rm["onpolicy_accuracy"]), _fmt(rm["offpolicy_accuracy"]),
                     _fmt(rm["offpolicy_accuracy_vs_gold"])])
    return header, rows


def summary_markdown(report: dict[str, Any]) -> str:
    header, rows = summary_rows(report)
    lines = [
        f"# Reward models as teachers for `{report['policy']}`",
        "",
        f"{report['num_prompts']} prompts x {report['samples_per_prompt']} samples, seed {report['seed']}. "
        "Variance: mean over prompts of the within-prompt variance (ddof=1) of rewards normalized over all "
        "samples. Accuracy: agreement with the ground truth's ordering over sample pairs (on-policy) or "
        "preference pairs (off-policy).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def print_summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = summary_rows(report)
    table = Table(title=f"reward models as teachers for {report['policy']}")
    for h in header:
        table.add_column(h, justify="left" if h == "reward model" else "right")
    for r in rows:
        table.add_row(*r)
    Console().print(table)  # stdout: the result itself; progress and messages go to stderr


def write_outputs(out: Path, report: dict[str, Any], data: EvalData) -> None:
    """Write every output file atomically; report.json last, so its presence means a whole run."""
    out.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(out / "rewards.parquet") as tmp:
        rewards_frame(data).to_parquet(tmp, index=False)
    if data.pairs:
        with io.atomic_path(out / "preference_rewards.parquet") as tmp:
            preference_frame(data).to_parquet(tmp, index=False)
    io.write_text(out / "summary.md", summary_markdown(report))
    io.write_json(out / "report.json", report)


# ----------------------------------------------------------------------------------------------------------
# The command


def preflight(cfg: EvaluateConfig) -> None:
    """Fail before any model loads: missing local model folders, callables that do not import."""
    check_model_ref(cfg.policy.path, "policy")
    for rm_cfg in cfg.all_reward_models():
        if rm_cfg.path is not None:
            check_model_ref(rm_cfg.path, f"reward model '{rm_cfg.name}'")
        else:
            import_callable(rm_cfg.callable, f"reward model '{rm_cfg.name}'")


def evaluate(cfg: EvaluateConfig) -> tuple[dict[str, Any], EvalData]:
    """Run an evaluation in memory: sample (or reuse cached samples), score with every RM, build the report.

    Returns:
        (report dict, the measured data).
    """
    prompts = load_prompts(cfg.prompts)
    pairs = load_preferences(cfg.preferences) if cfg.preferences else None
    preflight(cfg)
    device = resolve_device(cfg.device)
    responses, cached = get_samples(cfg, prompts, device)
    if cached:
        console().print(f"[dim]using cached samples for {cfg.policy.display_name} ({len(prompts)} prompts)[/dim]")
    data = EvalData(prompts=prompts, responses=responses, pairs=pairs)
    for rm_cfg in cfg.all_reward_models():
        data.rewards[rm_cfg.name] = score_one(rm_cfg, data, device, cfg.dtype)
        if data.rewards[rm_cfg.name].onpolicy.std() == 0.0:
            console().print(
                f"[yellow]warning:[/yellow] reward model '{rm_cfg.name}' gave the same reward to every sample "
                "(std 0): its reward variance is reported as 0"
            )
    return build_report(cfg, data), data


def run_evaluate(cfg: EvaluateConfig, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """`rmteach evaluate`: evaluate and write report.json, rewards.parquet and summary.md under `out`."""
    out = io.claim_out_dir(out, "report.json", to_plain(cfg), overwrite, "evaluate")
    report, data = evaluate(cfg)
    write_outputs(out, report, data)
    print_summary(report)
    console().print(f"wrote {out / 'report.json'}")
    return report
