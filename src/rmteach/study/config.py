"""`StudyConfig`: what a study runs (policies, RMs, seeds) and the evaluate / train settings they share.

Validation only: the grid itself is expanded by `study.grid.expand`. The `evaluate` and `train` blocks are
mappings of `EvaluateConfig` / `TrainConfig` keys that apply to every run; the study fills in the keys that
change per run (policy, RMs, prompts, seed, normalization). The grid is expanded once at load time, so a
wrong key in a block fails before any model loads. A YAML example is in `configs/study_toy.yaml`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..core.blocks import DataConfig, PolicyConfig, RewardModelConfig
from ..core.config import Strict
from .outcomes import outcome_names

# Keys of EvaluateConfig that the study fills in per policy (the `evaluate` block sets the others).
EVALUATE_RUN_KEYS = ("policy", "reward_models", "ground_truth", "prompts", "preferences")
# Keys of TrainConfig that the study fills in per run (the `train` block sets the others).
TRAIN_RUN_KEYS = ("policy", "reward_model", "ground_truth", "train_prompts", "eval_prompts", "seed", "normalization")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
Role = Literal["perfect_low_variance"]


class StudyRewardModel(RewardModelConfig):
    """A candidate RM of the study: a `RewardModelConfig` plus where and how the study uses it."""

    role: Role | None = Field(
        None, description="'perfect_low_variance' marks the RM claim (a) is about; without it, the study "
        "picks an RM with a transform and on-policy accuracy 1"
    )
    policies: list[str] | None = Field(None, description="evaluate and train this RM only with these policies")

    def plain(self) -> RewardModelConfig:
        """The RM as the evaluate and train configs take it (without the study's own keys)."""
        return RewardModelConfig(**self.model_dump(exclude={"role", "policies"}))


class StudyPrompts(Strict):
    """The prompt sets of a study."""

    train: DataConfig = Field(..., description="prompts policy gradient trains on")
    eval: DataConfig = Field(..., description="held-out prompts of the eval_* curves measured during training")
    evaluate: DataConfig | None = Field(
        None, description="prompts `evaluate` measures variance and accuracy on (default: the train prompts, "
        "as in the paper: the predictors are about the prompts the policy will be trained on)"
    )


CurationRule = Literal["none", "variance", "forecast", "zero_std"]


class CurationConfig(Strict):
    """Curation as a grid dimension: each (policy, RM, seed) also trains on the prompts a rule keeps for that RM.

    The rules select from the policy's evaluate (its prompts.parquet, with `core.selection`), so the pool is the
    evaluate's prompts (`prompts.evaluate`, default the train prompts); the uniform arm `none` trains on that pool,
    every curated arm on its subset, all at the train block's steps, all measured on `prompts.eval`.
    """

    rules: list[CurationRule] = Field(
        ["none", "variance", "forecast"], min_length=1,
        description="'none' (the uniform arm: the whole pool, what the speed-ups are measured against), 'variance', "
        "'forecast', 'zero_std' (see `rmteach curate`)",
    )
    keep: int | float | None = Field(
        None, description="variance and forecast: a fraction of the eligible prompts in (0, 1] (0.5; rounded up) or "
        "a count (100); zero_std keeps every prompt whose rewards are not all equal, whatever keep says")
    seed: int = Field(0, ge=0, description="orders prompts of equal score (which tied prompts at the cut are kept)")

    @field_validator("rules")
    @classmethod
    def _rules_ok(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"rules must be distinct (got {v})")
        if "none" not in v:
            raise ValueError("needs 'none', the uniform arm every curated arm is measured against (e.g. [none, variance])")
        return ["none"] + [r for r in v if r != "none"]  # the uniform arm first

    @field_validator("keep")
    @classmethod
    def _keep_ok(cls, v: int | float | None) -> int | float | None:
        from ..core.errors import UserError
        from ..core.selection import parse_keep

        if v is None:
            return v
        try:
            return parse_keep(v)
        except UserError as e:
            raise ValueError(str(e).replace("--keep", "keep")) from None

    @model_validator(mode="after")
    def _keep_given(self) -> "CurationConfig":
        counted = [r for r in self.rules if r in ("variance", "forecast")]
        if counted and self.keep is None:
            raise ValueError(f"rule '{counted[0]}' needs keep: a fraction of the eligible prompts such as 0.5, or a count")
        return self

    @property
    def curated(self) -> list[str]:
        """The rules other than the uniform arm."""
        return [r for r in self.rules if r != "none"]


class RunFilter(Strict):
    """Restrict the grid, e.g. `--set only.policies=[peaked]` to rerun part of a study."""

    policies: list[str] | None = None
    reward_models: list[str] | None = None


class AnalysisConfig(Strict):
    """How outcomes, correlations and claims are computed."""

    budgets: list[float] = Field(
        [0.25, 0.5, 1.0], min_length=1,
        description="fractions of the steps after which the gold and proxy reward increase are read",
    )
    primary_outcome: str = Field(
        "gold_increase@1", description="the outcome rankings, scatter plots and claims use: gold_increase@B "
        "for a budget B, or gold_auc (area under the gold increase curve / steps)"
    )
    include_ground_truth: bool = Field(
        False, description="count the ground truth's own run as one of the RMs in correlations (the paper's "
        "Section 4.1 correlations are across its table's RMs, the ground truth among them)"
    )
    exclude_from_correlations: list[str] = Field(
        [], description="candidate RMs trained and ranked but left out of the correlations, e.g. an RM from "
        "another experiment (the paper correlates its Section 4.1 RMs only; Section 4.2's RMs are ranked)"
    )
    bootstrap_samples: int = Field(1000, ge=0, description="resamples for the 95% CIs of the correlations and "
                                   "the seed bootstrap of claim (d)")
    forecast: Literal["gold_rate", "lookahead", "gradient_alignment"] = Field(
        "gold_rate", description="the primary forecast claim (d) judges (gradient_alignment needs the evaluate "
        "block's forecast.gradient: true)")
    seed: int = Field(0, ge=0, description="seed of the bootstrap")

    @field_validator("budgets")
    @classmethod
    def _budgets_ok(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < b <= 1.0 for b in v):
            raise ValueError(f"budgets are fractions of the steps in (0, 1] (got {v})")
        return sorted(set(v))

    @model_validator(mode="after")
    def _primary_known(self) -> "AnalysisConfig":
        allowed = [n for n in outcome_names(self.budgets) if n.startswith("gold")]
        if self.primary_outcome not in allowed:
            raise ValueError(f"primary_outcome '{self.primary_outcome}' is not one of: {', '.join(allowed)}")
        return self


class SubmititConfig(Strict):
    """Where and how `executor: submitit` runs each train run as one cluster job (submitit's parameters)."""

    cluster: Literal["slurm", "local", "debug"] = Field(
        "slurm", description="slurm: one SLURM job array; local: submitit's local processes, all at once (tests); "
        "debug: one by one in this process, into pdb on a crash"
    )
    folder: str | None = Field(None, description="submitit's job scripts, pickles and logs (default OUT/submitit)")
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_node: int | None = Field(None, ge=0, description="GPUs of each run's job (the cluster's default if unset)")
    cpus_per_task: int | None = Field(None, ge=1, description="CPUs of each run's job; also its torch threads")
    mem_gb: float | None = Field(None, gt=0)
    timeout_min: int = Field(240, ge=1, description="wall-time limit of each run's job, in minutes")
    max_parallel: int | None = Field(None, ge=1, description="jobs of the array running at once (SLURM's %N)")
    setup: list[str] = Field([], description="shell lines run before each job (module load ..., source venv)")
    slurm_additional_parameters: dict[str, Any] = Field(
        default_factory=dict, description="more #SBATCH options, passed as they are (e.g. {gres: 'gpu:a100:1'})"
    )


class StudyConfig(Strict):
    """`rmteach study`: evaluate every RM per policy, train each (policy, RM, seed), correlate, report."""

    name: str = Field("study", description="title of the report")
    policies: list[PolicyConfig] = Field(..., min_length=1)
    reward_models: list[StudyRewardModel] = Field(..., description="the candidate RMs")
    ground_truth: RewardModelConfig = Field(..., description="the reward the study measures teaching by")
    prompts: StudyPrompts
    preferences: DataConfig | None = Field(None, description="off-policy preference pairs (for off-policy accuracy)")
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="one train run per seed for each (policy, RM)")
    train_on_ground_truth: bool = Field(
        True, description="also train on the ground truth itself: a reference curve in the report"
    )
    jobs: int = Field(1, ge=1, le=1024,
                      description="train runs at once, each in its own process (CPU threads are split; "
                      "executor local)")
    executor: Literal["local", "submitit"] = Field(
        "local", description="local: train runs on this machine (`jobs` at once); submitit: one cluster job each"
    )
    submitit: SubmititConfig | None = Field(None, description="the cluster jobs' settings (executor submitit)")
    curation: CurationConfig | None = Field(
        None, description="also train each (policy, RM, seed) on curated prompt sets (default: no curation, the "
        "uniform runs only)")
    only: RunFilter | None = None
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    evaluate: dict[str, Any] = Field(
        default_factory=dict, description="EvaluateConfig keys for every policy's evaluate (sampling, device, ...)"
    )
    train: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig keys for every run (algorithm, learning rate, steps, ...)"
    )

    @field_validator("reward_models")
    @classmethod
    def _some_rms(cls, v: list[StudyRewardModel]) -> list[StudyRewardModel]:
        if not v:
            raise ValueError("is empty: a study needs at least one reward model (3 or more for correlations)")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds_ok(cls, v: list[int]) -> list[int]:
        if any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct integers >= 0 (got {v})")
        return v

    @field_validator("evaluate", "train")
    @classmethod
    def _no_run_keys(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        keys, per = (EVALUATE_RUN_KEYS, "policy") if info.field_name == "evaluate" else (TRAIN_RUN_KEYS, "run")
        taken = [k for k in keys if k in v]
        if taken:
            raise ValueError(f"'{taken[0]}' is filled in by the study for each {per}; remove it from this block")
        return v

    @model_validator(mode="after")
    def _names_ok(self) -> "StudyConfig":
        if self.submitit is not None and self.executor != "submitit":
            raise ValueError("a submitit block needs 'executor: submitit' (the executor is local)")
        pol = [p.display_name for p in self.policies]
        rms = [rm.name for rm in self.reward_models] + [self.ground_truth.name]
        for kind, names in (("policy", pol), ("reward model", rms)):
            for n in names:
                if not _SAFE_NAME.match(n):
                    raise ValueError(f"{kind} name '{n}' is used as a folder name: use letters, digits, '.', '_', '-'")
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{kind} names must be unique (the ground truth's too); repeated: {', '.join(dup)}")
        for rm in self.reward_models:
            for p in rm.policies or []:
                if p not in pol:
                    raise ValueError(f"reward model '{rm.name}': unknown policy '{p}' in its policies (policies: {', '.join(pol)})")
        if self.only is not None:
            for p in self.only.policies or []:
                if p not in pol:
                    raise ValueError(f"only.policies: unknown policy '{p}' (policies: {', '.join(pol)})")
            for r in self.only.reward_models or []:
                if r not in rms:
                    raise ValueError(f"only.reward_models: unknown reward model '{r}' (reward models: {', '.join(rms)})")
        candidates = [rm.name for rm in self.reward_models]
        for r in self.analysis.exclude_from_correlations:
            if r not in candidates:
                raise ValueError(f"analysis.exclude_from_correlations: unknown reward model '{r}' "
                                 f"(candidate reward models: {', '.join(candidates)})")
        from .grid import expand  # the grid the run will expand: every evaluate and train config validated now

        if not expand(self, Path("OUT")).evaluations:
            raise ValueError("no (policy, reward model) pair is left to run: check 'only' and the RMs' 'policies'")
        return self
