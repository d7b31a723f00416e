"""The report card of an evaluation: per-RM metrics from raw rewards (pure), the tables, the output files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core import io, metrics
from ..core.config import to_plain
from ..core.data import PreferencePair, Prompt
from ..core.progress import result_console
from .config import EvaluateConfig
from .forecast import forecast_report
from .ranking import forecast_sentence
from .prompts import concentration_rows

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
    gradient: dict[str, Any] | None = None  # `evaluate.gradient.gradient_alignment`'s result, when asked for


# ----------------------------------------------------------------------------------------------------------
# Metrics (pure: arrays in, JSON-able dict out)


def rm_metrics(
    table: RewardTable, gold: RewardTable | None, *, n_resamples: int, seed: int
) -> dict[str, Any]:
    """The report card of one RM from its raw rewards and (optionally) the ground truth's."""
    norm = metrics.fit_normalization(table.onpolicy)
    z = norm.apply(table.onpolicy)  # (n_prompts, k)
    per_prompt = metrics.per_prompt_variance(z)  # (n_prompts,): prompts.parquet's `variance`
    card: dict[str, Any] = {
        "normalization": {"mean": norm.mean, "std": norm.std},
        "reward_variance": {**metrics.variance_summary(z, n_resamples=n_resamples, seed=seed),
                            "frac_zero_std": metrics.frac_zero_std(table.onpolicy)},
        "concentration": metrics.concentration(per_prompt),
        "onpolicy_accuracy": None,
        "offpolicy_accuracy": None,
        "offpolicy_accuracy_vs_gold": None,
    }
    if gold is not None:  # the ground truth may score only the first m prompts (`forecast.max_prompts`)
        card["onpolicy_accuracy"] = metrics.onpolicy_accuracy(table.onpolicy[: len(gold.onpolicy)], gold.onpolicy)
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
        rms.append({"name": rm_cfg.name, "is_ground_truth": rm_cfg.name == gold_name, **card, "forecast": None})
    fc, forecast, ranking = cfg.forecast, _no_forecast(), None
    if gold is not None:
        grad = data.gradient["values"] if data.gradient else None
        blocks, ranking = forecast_report(
            {name: t.onpolicy for name, t in data.rewards.items()}, gold.onpolicy,
            [rm.name for rm in cfg.reward_models], group=fc.group, steps=fc.lookahead_steps,
            step_size=fc.lookahead_step_size, primary=fc.primary, n_resamples=cfg.bootstrap_samples,
            seed=cfg.sampling.seed, gradient=grad, scale_free=fc.assumed_trainer.scale_free,
            kl_coef=fc.assumed_trainer.kl_coef)
        for card in rms:
            card["forecast"] = blocks[card["name"]]
        ranking["sentence"] = forecast_sentence(ranking, fc.primary, cfg.policy.display_name)
        forecast = {"available": True, "primary": fc.primary, "num_prompts": len(gold.onpolicy),
                    **trainer_block(fc),
                    "advantage": "per-prompt standardized (GRPO group scaling)" if fc.group
                    else "normalized over all samples",
                    "gradient_parameters": None if not data.gradient else data.gradient["parameters"],
                    "gradient_num_parameters": None if not data.gradient else data.gradient["n_parameters"],
                    "gradient_num_prompts": None if not data.gradient else data.gradient["n_prompts"]}
    return {
        "schema": SCHEMA,
        "policy": cfg.policy.display_name,
        "num_prompts": len(data.prompts),
        "samples_per_prompt": cfg.sampling.samples_per_prompt,
        "num_preference_pairs": len(data.pairs) if data.pairs else 0,
        "seed": cfg.sampling.seed,
        "ground_truth": gold_name,
        "reward_models": rms,
        "forecast": forecast,
        "ranking": ranking,
        "config": to_plain(cfg),
    }


def trainer_block(fc: Any) -> dict[str, Any]:
    """report.json's statement of the trainer the forecast assumes, with a warning when the config gave none."""
    t = fc.assumed_trainer
    given = fc.trainer is not None
    return {"trainer": {**to_plain(t), "algorithm": fc.algorithm, "grpo_scale_rewards": fc.grpo_scale_rewards,
                        "given": given, "description": f"{fc.algorithm}, {t.describe()}"},
            "trainer_warning": None if given else (
                "no trainer given: the forecast assumes rmteach train's defaults (" + t.describe() + "); set "
                "forecast.trainer (optimizer, learning_rate, max_grad_norm, kl_coef, steps) or forecast.train_config "
                "to the trainer you will use")}


def _no_forecast() -> dict[str, Any]:
    return {"available": False, "note": "no forecast without a ground truth: add `ground_truth` (any reward model "
            "or callable can serve, e.g. a larger judge) to forecast and rank the reward models"}


# ----------------------------------------------------------------------------------------------------------
# Output


def rewards_frame(data: EvalData):
    """One row per (prompt, sample, RM): prompt_id, sample, reward_model, reward, prompt, response.

    An RM scored on the first m prompts only (the ground truth under `forecast.max_prompts`) has m * K rows.
    """
    import pandas as pd

    k = len(data.responses[0])
    frames = []
    for name, table in data.rewards.items():
        n = len(table.onpolicy)
        frames.append(
            pd.DataFrame(
                {
                    "prompt_id": np.repeat([p.id for p in data.prompts[:n]], k).astype(str),
                    "sample": np.tile(np.arange(k), n).astype(np.int64),
                    "reward_model": name,
                    "reward": table.onpolicy.ravel(),
                    "prompt": np.repeat([p.text for p in data.prompts[:n]], k),
                    "response": [r for row in data.responses[:n] for r in row],
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


def row_order(report: dict[str, Any]) -> list[str]:
    """The RMs in the summary tables' order: the ranking's (best first) with a ground truth, the ground truth last."""
    names = [rm["name"] for rm in report["reward_models"]]
    order = [o["name"] for o in report["ranking"]["order"]] if report.get("ranking") else []
    return order + [n for n in names if n not in order]


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the one-line-per-RM summary (markdown and terminal share it), forecast first.

    With a ground truth the rows follow the ranking (best first, the ground truth last as a reference).
    """
    primary = (report.get("ranking") or {}).get("primary")
    header = ["reward model"]
    if primary:
        header += [f"forecast: {primary}", "95% CI", "P(above next)", "best-of-K lift", "hacking risk"]
    header += ["variance (mean)", "95% CI", "frac var<0.01", "on-policy acc", "off-policy acc",
               "off-policy acc vs gold"]
    cards = {rm["name"]: rm for rm in report["reward_models"]}
    p_next = {o["name"]: o["p_above_next"] for o in report["ranking"]["order"]} if primary else {}
    rows = []
    for name in row_order(report):
        rm = cards[name]
        v = rm["reward_variance"]
        row = [name + (" (ground truth)" if rm["is_ground_truth"] else "")]
        if primary:
            f = rm["forecast"][primary] or {"value": None}
            ci = f.get("ci95")
            row += [_fmt(f["value"]), f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "-", _fmt(p_next.get(name), 2),
                    _fmt(rm["forecast"]["best_of_k_gold_lift"]["value"]), _hack(rm["forecast"].get("hacking_risk"))]
        row += [_fmt(v["mean"]), f"[{_fmt(v['ci95'][0])}, {_fmt(v['ci95'][1])}]", _fmt(v["frac_below_0.01"], 2),
                _fmt(rm["onpolicy_accuracy"]), _fmt(rm["offpolicy_accuracy"]), _fmt(rm["offpolicy_accuracy_vs_gold"])]
        rows.append(row)
    return header, rows


def _hack(risk: dict[str, Any] | None) -> str:
    """The summary's hacking-risk cell: "yes" with the RM's best-of-K share of the ground truth's, else "-"."""
    if not risk or risk.get("best_of_k_share") is None:
        return "-"
    return f"yes ({risk['best_of_k_share']:.2f})" if risk["flag"] else "-"


def trainer_line(report: dict[str, Any]) -> str | None:
    """The summary's line on the trainer the forecast assumes (a warning when none was given), or None."""
    fc = report.get("forecast") or {}
    if not fc.get("available") or "trainer" not in fc:
        return None
    if fc.get("trainer_warning"):
        return "Warning: " + fc["trainer_warning"] + "."
    return f"The forecast assumes this trainer: {fc['trainer']['description']}."


def verdict(report: dict[str, Any]) -> str:
    """The summary's closing sentence: the best teacher and those within noise of it, or why there is none."""
    return report["ranking"]["sentence"] if report.get("ranking") else report["forecast"]["note"] + "."


def summary_markdown(report: dict[str, Any]) -> str:
    header, rows = summary_rows(report)
    lines = [
        f"# Reward models as teachers for `{report['policy']}`",
        "",
        f"{report['num_prompts']} prompts x {report['samples_per_prompt']} samples, seed {report['seed']}. "
        "Variance: mean over prompts of the within-prompt variance (ddof=1) of rewards normalized over all "
        "samples. Accuracy: agreement with the ground truth's ordering over sample pairs (on-policy) or "
        "preference pairs (off-policy). Forecast: the ground-truth gain the RM's policy gradient would give "
        "(`gold_rate`: its initial rate; see the README's \"Which RM should I use?\").",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    trainer = trainer_line(report)
    lines += ["", trainer] if trainer else []
    header, rows = concentration_rows(report, row_order(report))
    lines += ["", "Where the signal sits: the share of each RM's reward variance (summed over prompts) held by its "
              "highest-variance prompts; per-prompt values in `prompts.parquet`.", "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", verdict(report)]
    return "\n".join(lines) + "\n"


def print_summary(report: dict[str, Any]) -> None:
    """The summary table and the verdict on stdout (the result itself; progress and messages go to stderr)."""
    from rich.table import Table

    header, rows = summary_rows(report)
    table = Table(title=f"reward models as teachers for {report['policy']}")
    for h in header:
        table.add_column(h, justify="left" if h == "reward model" else "right")
    for r in rows:
        table.add_row(*r)
    header, rows = concentration_rows(report, row_order(report))
    where = Table(title="where the signal sits: share of reward variance in the highest-variance prompts")
    for h in header:
        where.add_column(h, justify="left" if h == "reward model" else "right")
    for r in rows:
        where.add_row(*r)
    out = result_console()
    out.print(table)
    trainer = trainer_line(report)
    if trainer:
        out.print(trainer, highlight=False)
    out.print(where)
    out.print(verdict(report), highlight=False)


def write_outputs(out: Path, report: dict[str, Any], data: EvalData, prompts: Any = None) -> None:
    """Write every output file atomically; report.json last, so its presence means a whole run.

    `prompts` is `evaluate.prompts.prompts_frame`'s frame, written as prompts.parquet when given.
    """
    out.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(out / "rewards.parquet") as tmp:
        rewards_frame(data).to_parquet(tmp, index=False)
    if prompts is not None:
        with io.atomic_path(out / "prompts.parquet") as tmp:
            prompts.to_parquet(tmp, index=False)
        from ..core.html import fig_to_png
        from .plots import concentration_figure

        io.write_bytes(out / "concentration.png", fig_to_png(concentration_figure(prompts, report["policy"])))
    if data.pairs:
        with io.atomic_path(out / "preference_rewards.parquet") as tmp:
            preference_frame(data).to_parquet(tmp, index=False)
    io.write_text(out / "summary.md", summary_markdown(report))
    io.write_json(out / "report.json", report)
