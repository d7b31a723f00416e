"""`StudyConfig`: the grid of a study (policies x RMs x seeds) and the evaluate / train settings they share.

The `evaluate` and `train` blocks are mappings of `EvaluateConfig` / `TrainConfig` keys that apply to every
run; the study fills in the keys that change per run (policy, RMs, prompts, seed, normalization) and checks
the result against those configs at load time, so a wrong key fails before any model loads. A YAML example
is in `configs/study_toy.yaml`.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .analysis import outcome_names
from .config import DataConfig, EvaluateConfig, PolicyConfig, RewardModelConfig, Strict, _format_error, to_plain
from .train_config import TrainConfig

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
    bootstrap_samples: int = Field(1000, ge=0, description="resamples for the 95% CIs of the correlations")
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
    jobs: int = Field(1, ge=1, description="train runs at once, each in its own process (CPU threads are split)")
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

    @field_validator("evaluate")
    @classmethod
    def _evaluate_ok(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        taken = [k for k in EVALUATE_RUN_KEYS if k in v]
        if taken:
            raise ValueError(f"'{taken[0]}' is filled in by the study for each policy; remove it from this block")
        needed = ("policies", "reward_models", "ground_truth", "prompts")
        if all(k in info.data for k in needed):  # earlier errors are reported on their own
            _check(EvaluateConfig, _evaluate_dict(v, info.data, info.data["policies"][0]))
        return v

    @field_validator("train")
    @classmethod
    def _train_ok(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        taken = [k for k in TRAIN_RUN_KEYS if k in v]
        if taken:
            raise ValueError(f"'{taken[0]}' is filled in by the study for each run; remove it from this block")
        needed = ("policies", "reward_models", "ground_truth", "prompts", "seeds")
        if all(k in info.data for k in needed):  # earlier errors are reported on their own
            d = info.data
            probe = train_dict(v, policy=d["policies"][0], reward_model=d["reward_models"][0].plain(),
                               ground_truth=d["ground_truth"], prompts=d["prompts"], seed=d["seeds"][0],
                               report="report.json")
            _check(TrainConfig, probe)
        return v

    @model_validator(mode="after")
    def _names_ok(self) -> "StudyConfig":
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
        if not any(self.reward_models_for(p) for p in self.selected_policies()):
            raise ValueError("no (policy, reward model) pair is left to run: check 'only' and the RMs' 'policies'")
        return self

    # ------------------------------------------------------------------------------------------------------
    # The grid

    def selected_policies(self) -> list[PolicyConfig]:
        """The policies this study runs (after `only`)."""
        keep = self.only.policies if self.only and self.only.policies is not None else None
        return [p for p in self.policies if keep is None or p.display_name in keep]

    def reward_models_for(self, policy: PolicyConfig) -> list[StudyRewardModel]:
        """The candidate RMs evaluated and trained with `policy` (after `only` and each RM's `policies`)."""
        keep = self.only.reward_models if self.only and self.only.reward_models is not None else None
        return [
            rm for rm in self.reward_models
            if (rm.policies is None or policy.display_name in rm.policies) and (keep is None or rm.name in keep)
        ]

    def evaluate_config(self, policy: PolicyConfig) -> EvaluateConfig:
        """The `evaluate` of one policy: its candidate RMs and the ground truth on the evaluate prompts."""
        data = {"policies": self.policies, "reward_models": self.reward_models_for(policy),
                "ground_truth": self.ground_truth, "prompts": self.prompts, "preferences": self.preferences}
        return EvaluateConfig.model_validate(_evaluate_dict(self.evaluate, data, policy))

    def train_config(self, policy: PolicyConfig, reward_model: RewardModelConfig, seed: int, report: str) -> TrainConfig:
        """The TrainConfig of one run; `report` is the policy's evaluate report.json (the RM's normalization)."""
        d = train_dict(self.train, policy=policy, reward_model=reward_model, ground_truth=self.ground_truth,
                       prompts=self.prompts, seed=seed, report=report)
        return _check(TrainConfig, d)


def _evaluate_dict(block: dict[str, Any], data: dict[str, Any], policy: PolicyConfig) -> dict[str, Any]:
    """An EvaluateConfig as a dict: the block's keys plus the policy's RMs, ground truth and prompt sets."""
    d = copy.deepcopy(block)
    prompts: StudyPrompts = data["prompts"]
    d.update(
        policy=to_plain(policy),
        reward_models=[to_plain(r.plain()) for r in data["reward_models"]],
        ground_truth=to_plain(data["ground_truth"]),
        prompts=to_plain(prompts.evaluate or prompts.train),
    )
    if data.get("preferences") is not None:
        d["preferences"] = to_plain(data["preferences"])
    return d


def train_dict(block: dict[str, Any], *, policy: PolicyConfig, reward_model: RewardModelConfig,
               ground_truth: RewardModelConfig, prompts: StudyPrompts, seed: int, report: str) -> dict[str, Any]:
    """One run's TrainConfig as a plain dict: the `train` block plus the keys in `TRAIN_RUN_KEYS`.

    The normalization is read by `rmteach train` from the policy's evaluate `report` (by RM name), so training
    uses the shift and scale measured on the initial policy's samples and does not sample it again.
    """
    d = copy.deepcopy(block)
    d.update(
        policy=to_plain(policy),
        reward_model=to_plain(reward_model),
        ground_truth=to_plain(ground_truth),
        train_prompts=to_plain(prompts.train),
        eval_prompts=to_plain(prompts.eval),
        seed=seed,
        normalization={"path": str(report)},
    )
    return d


def _check(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate `data` into `model`; the first error becomes a ValueError naming the key inside the block."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValueError(_format_error(e.errors()[0], model, "-").removeprefix("-: ")) from None
