"""The grid of a study as plain data: `expand(cfg, out)` is the only walk over policies x RMs x seeds (x rules).

Pure: a `StudyConfig` and an output folder in, one `EvaluateSpec` per policy and one `RunSpec` per
(policy, RM, seed) out, each carrying its validated `EvaluateConfig` / `TrainConfig`. With a `curation` block,
also one `CurationSpec` per (policy, RM, curated rule), the prompt set `study.curation_sets` writes after the
policy's evaluate, and one `RunSpec` per (policy, RM, curated rule, seed) training on it. Nothing is loaded
or written. A bad `evaluate` or `train` block raises `BlockError` naming the block, so the config's
validation (which expands the grid once at load time) and the run report it the same way.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ..core.blocks import PolicyConfig, RewardModelConfig
from ..core.config import format_error, to_plain
from ..evaluate.config import TRAINER_KEYS, EvaluateConfig
from ..train.config import TrainConfig

if TYPE_CHECKING:
    from .config import StudyConfig, StudyPrompts


class BlockError(ValueError):
    """The study's `evaluate` or `train` block does not make a valid config; the message names the key."""

    def __init__(self, block: str, message: str) -> None:
        super().__init__(f"{block}: {message}")
        self.block = block


@dataclass(frozen=True)
class EvaluateSpec:
    """The evaluation of one policy: every candidate RM it is trained with, and the ground truth."""

    policy: str
    config: EvaluateConfig

    def folder(self, out: Path) -> Path:
        return out / "evaluate" / self.policy


@dataclass(frozen=True)
class CurationSpec:
    """The curated train prompt set of one (policy, RM, rule), selected from the policy's evaluate."""

    policy: str
    reward_model: str
    is_ground_truth: bool
    rule: str

    def folder(self, out: Path) -> Path:
        """`prompts.jsonl` (the kept rows of the pool) and `selection.json` (what was kept) go here."""
        return out / "curation" / self.policy / self.reward_model / self.rule


@dataclass(frozen=True)
class RunSpec:
    """One train run of the grid."""

    policy: str
    reward_model: str
    seed: int
    is_ground_truth: bool
    config: TrainConfig  # normalized by the policy's evaluate report
    rule: str | None = None  # the curation rule of a curated run; None for the uniform arm

    @property
    def arm(self) -> str:
        """The run's folder under its policy: the RM's name, `<rm>+<rule>` for a curated run."""
        return self.reward_model if self.rule is None else f"{self.reward_model}+{self.rule}"

    @property
    def key(self) -> str:
        return f"{self.policy}/{self.arm}/seed{self.seed}"

    def folder(self, out: Path) -> Path:
        return out / "runs" / self.policy / self.arm / f"seed{self.seed}"

    def log(self, out: Path) -> Path:
        """Where a worker process writes this run's output (with `jobs > 1`)."""
        return out / "logs" / f"{self.policy}__{self.arm}__seed{self.seed}.log"


@dataclass(frozen=True)
class Grid:
    evaluations: list[EvaluateSpec]
    runs: list[RunSpec]  # policy by policy: uniform runs (the ground truth's last), then the curated ones
    curations: list[CurationSpec] = field(default_factory=list)  # empty without a curation block


def expand(cfg: "StudyConfig", out: Path) -> Grid:
    """Every evaluation and train run of a study whose outputs go under `out`.

    For each selected policy (after `only`): its candidate RMs (after `only` and each RM's `policies`), one
    evaluation of them with the ground truth, and one train run per (RM, seed), the ground truth's own runs
    last when `train_on_ground_truth`. Each train run reads its RM's normalization from the policy's
    evaluate report, `out/evaluate/<policy>/report.json`.

    With `cfg.curation`, the uniform runs train on the pool the rules select from (the evaluate's prompts,
    `prompts.evaluate or prompts.train`), and after them come, per curated rule, RM and seed, one run whose
    train prompts are `CurationSpec.folder(out)/prompts.jsonl` (the pool's columns kept); all else is equal.
    """
    keep_p = cfg.only.policies if cfg.only and cfg.only.policies is not None else None
    keep_r = cfg.only.reward_models if cfg.only and cfg.only.reward_models is not None else None
    evaluations, runs, curations = [], [], []
    pool = cfg.prompts.evaluate or cfg.prompts.train  # what `evaluate` measures and the rules select from
    for policy in cfg.policies:
        name = policy.display_name
        if keep_p is not None and name not in keep_p:
            continue
        rms = [rm for rm in cfg.reward_models
               if (rm.policies is None or name in rm.policies) and (keep_r is None or rm.name in keep_r)]
        if not rms:
            continue  # no candidate RM for this policy: nothing to compare
        report = str(out / "evaluate" / name / "report.json")  # `EvaluateSpec.folder`
        teachers = [(rm.plain(), False) for rm in rms]
        if cfg.train_on_ground_truth:
            teachers.append((cfg.ground_truth, True))
        arms: list[tuple[str | None, Any]] = [(None, None)]  # (rule, train prompts); None: today's uniform run
        if cfg.curation is not None:
            arms = [(None, pool)] + [(rule, None) for rule in cfg.curation.curated]
        for rule, _ in arms[1:]:
            curations += [CurationSpec(name, rm.name, is_gt, rule) for rm, is_gt in teachers]
        for rule, train_prompts in arms:  # the train block first: the evaluate block's forecast copies its settings
            for rm, is_gt in teachers:
                if rule is not None:
                    path = CurationSpec(name, rm.name, is_gt, rule).folder(out) / "prompts.jsonl"
                    train_prompts = {"path": str(path), **({"columns": dict(pool.columns)} if pool.columns else {})}
                for seed in cfg.seeds:
                    tcfg = _check("train", TrainConfig, train_dict(
                        cfg.train, policy=policy, reward_model=rm, ground_truth=cfg.ground_truth, prompts=cfg.prompts,
                        seed=seed, report=report, train_prompts=train_prompts))
                    runs.append(RunSpec(name, rm.name, seed, is_gt, tcfg, rule))
        evaluations.append(EvaluateSpec(name, _check("evaluate", EvaluateConfig, evaluate_dict(
            with_trainer_forecast(cfg.evaluate, cfg.train), policy=policy, reward_models=[rm.plain() for rm in rms],
            ground_truth=cfg.ground_truth, prompts=cfg.prompts, preferences=cfg.preferences))))
    return Grid(evaluations, runs, curations)


def with_trainer_forecast(evaluate_block: dict[str, Any], train_block: dict[str, Any]) -> dict[str, Any]:
    """The evaluate block with the forecast's trainer taken from the train block where the block leaves it unset.

    The forecast must follow the study's trainer: its advantage (`algorithm`, GRPO's scaling) and its
    optimization (`forecast.trainer`: optimizer, learning rate, clipping, KL, steps), train defaults included.

    >>> with_trainer_forecast({}, {"algorithm": "grpo", "optimizer": "sgd"})["forecast"]["trainer"]["optimizer"]
    'sgd'
    """
    forecast = dict(evaluate_block.get("forecast") or {})
    if "algorithm" not in forecast:
        forecast["algorithm"] = train_block.get("algorithm", TrainConfig.model_fields["algorithm"].default)
        forecast.setdefault("grpo_scale_rewards", train_block.get(
            "grpo_scale_rewards", TrainConfig.model_fields["grpo_scale_rewards"].default))
    if forecast.get("trainer") is None and not forecast.get("train_config"):
        forecast["trainer"] = {k: train_block.get(k, TrainConfig.model_fields[k].default) for k in TRAINER_KEYS}
    return {**evaluate_block, "forecast": forecast}


def evaluate_dict(block: dict[str, Any], *, policy: PolicyConfig, reward_models: list[RewardModelConfig],
                  ground_truth: RewardModelConfig, prompts: "StudyPrompts", preferences: Any) -> dict[str, Any]:
    """An EvaluateConfig as a dict: the block's keys plus the policy's RMs, ground truth and prompt sets."""
    d = copy.deepcopy(block)
    d.update(
        policy=to_plain(policy),
        reward_models=[to_plain(r) for r in reward_models],
        ground_truth=to_plain(ground_truth),
        prompts=to_plain(prompts.evaluate or prompts.train),
    )
    if preferences is not None:
        d["preferences"] = to_plain(preferences)
    return d


def train_dict(block: dict[str, Any], *, policy: PolicyConfig, reward_model: RewardModelConfig,
               ground_truth: RewardModelConfig, prompts: "StudyPrompts", seed: int, report: str,
               train_prompts: Any = None) -> dict[str, Any]:
    """One run's TrainConfig as a plain dict: the `train` block plus the keys the study fills in per run.

    `train_prompts` replaces `prompts.train` (a curation study's pool or curated set).

    The normalization is read by `rmteach train` from the policy's evaluate `report` (by RM name), so training
    uses the shift and scale measured on the initial policy's samples and does not sample it again.
    """
    d = copy.deepcopy(block)
    train = prompts.train if train_prompts is None else train_prompts
    d.update(
        policy=to_plain(policy),
        reward_model=to_plain(reward_model),
        ground_truth=to_plain(ground_truth),
        train_prompts=dict(train) if isinstance(train, dict) else to_plain(train),
        eval_prompts=to_plain(prompts.eval),
        seed=seed,
        normalization={"path": str(report)},
    )
    return d


def _check(block: str, model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate `data` into `model`; the first error becomes a `BlockError` naming the key inside the block."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise BlockError(block, format_error(e.errors()[0], model, "-").removeprefix("-: ")) from None
