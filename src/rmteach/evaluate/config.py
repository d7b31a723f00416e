"""`EvaluateConfig`: one policy, several candidate RMs, an optional ground truth, how to sample and forecast."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..core.blocks import DataConfig, Device, Dtype, PolicyConfig, RewardModelConfig, SamplingConfig
from ..core.config import Strict


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
    max_prompts: int | None = Field(
        None, ge=2, description="score the ground truth on the first N prompts only (an expensive judge); the "
        "forecasts and on-policy accuracy use those prompts, and their CIs widen")

    @property
    def group(self) -> bool:
        """Whether advantages are standardized per prompt (GRPO with group scaling)."""
        return self.algorithm == "grpo" and self.grpo_scale_rewards == "group"

    @model_validator(mode="after")
    def _primary_available(self) -> "ForecastConfig":
        if self.primary == "gradient_alignment" and not self.gradient:
            raise ValueError("primary: gradient_alignment needs gradient: true")
        return self


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
