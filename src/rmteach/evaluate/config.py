"""`EvaluateConfig`: one policy, several candidate RMs, an optional ground truth, how to sample and forecast."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..core.blocks import DataConfig, Device, Dtype, PolicyConfig, RewardModelConfig, SamplingConfig
from ..core.config import Strict, read_yaml


class TrainerAssumption(Strict):
    """The trainer the forecast assumes: the optimization settings of a `rmteach train` block (same names and
    defaults, `tests/test_trainer_assumption.py` checks they agree); `study` fills it from its train block."""

    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="adamw (TRL's default) or plain sgd")
    learning_rate: float = Field(1e-6, gt=0.0, description="peak learning rate")
    max_grad_norm: float = Field(1.0, ge=0.0, description="gradient clipping (0 disables)")
    kl_coef: float = Field(0.05, ge=0.0, description="KL coefficient to the initial policy")
    steps: int = Field(20, ge=1, description="optimizer steps (stated in the report; the rate does not depend on "
                       "them, and the lookahead keeps its own lookahead_steps)")
    rloo_normalize_advantages: bool = Field(False, description="RLOO: advantages divided by their batch std")

    @property
    def scale_free(self) -> bool:
        """Whether the step's size ignores the reward's scale: AdamW, clipping, or batch-normalized advantages.

        (With clipping this assumes it binds, as it does on most RLHF steps; plain SGD without it follows the
        reward's scale, the regime of the paper's theory.)"""
        return self.optimizer == "adamw" or self.max_grad_norm > 0 or self.rloo_normalize_advantages

    def describe(self) -> str:
        clip = f"clip {self.max_grad_norm:g}" if self.max_grad_norm > 0 else "no clipping"
        return (f"{self.optimizer}, lr {self.learning_rate:g}, {clip}, KL {self.kl_coef:g}, {self.steps} steps"
                + (", batch-normalized advantages" if self.rloo_normalize_advantages else ""))


TRAINER_KEYS = tuple(TrainerAssumption.model_fields)
ALGORITHM_KEYS = ("algorithm", "grpo_scale_rewards")


class ForecastConfig(Strict):
    """How each RM's teaching speed is forecast (needs a ground truth; see `evaluate.forecast`).

    The forecast follows the advantage the user's trainer computes: RLOO, and GRPO with `batch` or `none`
    scaling, learn from the RM's normalized reward; GRPO's default `group` scaling divides each prompt's
    advantages by that prompt's reward std, so its forecast uses the per-prompt standardized reward.
    """

    algorithm: Literal["rloo", "grpo"] = Field("rloo", description="the trainer the forecast is for")
    grpo_scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="GRPO's advantage scaling (as TRL's scale_rewards); ignored for RLOO")
    primary: Literal["gold_rate", "lookahead", "gradient_alignment"] = Field(
        "gold_rate", description="the forecast the ranking uses (gradient_alignment needs gradient: true)")
    lookahead_steps: int = Field(60, ge=1, description="T: exact ascent steps of the tabular lookahead")
    lookahead_step_size: float = Field(0.05, gt=0.0, description="eta: the lookahead's step size")
    gradient: bool = Field(False, description="also compute gradient_alignment: one backward pass per RM")
    gradient_parameters: list[str] | None = Field(
        None, description="fnmatch patterns of the policy parameters gradient_alignment uses (default: all), "
        "e.g. ['*.h.11.*', '*.h.10.*'] for the last two GPT-2 blocks")
    gradient_batch_size: int = Field(16, ge=1, description="sequences per backward pass of gradient_alignment")
    gradient_max_prompts: int | None = Field(
        None, ge=2, description="gradient_alignment on the first N prompts only (its cost is one backward pass per "
        "sample and RM; the other forecasts keep every prompt)")
    trainer: TrainerAssumption | None = Field(
        None, description="the optimizer, learning rate, clipping, KL and steps of your trainer (study: its train "
        "block); unset, the forecast assumes rmteach train's defaults and the report warns")
    train_config: str | None = Field(
        None, description="or a `rmteach train` YAML to take `trainer` (and algorithm, grpo_scale_rewards) from")
    max_prompts: int | None = Field(
        None, ge=2, description="score the ground truth on the first N prompts only (an expensive judge); the "
        "forecasts and on-policy accuracy use those prompts, and their CIs widen")

    @property
    def group(self) -> bool:
        """Whether advantages are standardized per prompt (GRPO with group scaling)."""
        return self.algorithm == "grpo" and self.grpo_scale_rewards == "group"

    @model_validator(mode="before")
    @classmethod
    def _from_train_config(cls, data: Any) -> Any:
        """`train_config: path`: its optimization keys become `trainer`, its algorithm keys fill unset ones."""
        if not isinstance(data, dict) or not data.get("train_config"):
            return data
        if data.get("trainer") is not None:
            raise ValueError("give forecast.trainer or forecast.train_config, not both")
        train = read_yaml(data["train_config"])
        if not isinstance(train, dict):
            raise ValueError(f"forecast.train_config {data['train_config']}: expected a mapping of train settings")
        out = {**data, "trainer": {k: train[k] for k in TRAINER_KEYS if k in train}}
        for k in ALGORITHM_KEYS:
            if k in train and k not in data:
                out[k] = train[k]
        return out

    @model_validator(mode="after")
    def _primary_available(self) -> "ForecastConfig":
        if self.primary == "gradient_alignment" and not self.gradient:
            raise ValueError("primary: gradient_alignment needs gradient: true")
        return self

    @property
    def assumed_trainer(self) -> TrainerAssumption:
        """The trainer the forecast follows: `trainer`, else rmteach train's defaults."""
        return self.trainer or TrainerAssumption()


class EvaluateConfig(Strict):
    """`rmteach evaluate`: one policy, several candidate RMs, an optional ground truth."""

    policy: PolicyConfig
    reward_models: list[RewardModelConfig] = Field(..., min_length=1)
    ground_truth: RewardModelConfig | None = None
    prompts: DataConfig
    preferences: DataConfig | None = None
    sampling: SamplingConfig = SamplingConfig()
    device: Device = "auto"
    dtype: Dtype = "float32"
    bootstrap_samples: int = Field(1000, ge=10, description="resamples for the 95% CIs (variance, forecasts)")
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    cache_dir: str | None = Field(
        None, description="sample cache; default $RMTEACH_CACHE_DIR or ~/.cache/rmteach"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> "EvaluateConfig":
        names = [rm.name for rm in self.all_reward_models()]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"reward model names must be unique; repeated: {', '.join(dup)}")
        return self

    def all_reward_models(self) -> list[RewardModelConfig]:
        """The candidate RMs followed by the ground truth (if any)."""
        return list(self.reward_models) + ([self.ground_truth] if self.ground_truth else [])
