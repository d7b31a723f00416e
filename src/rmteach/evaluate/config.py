"""`EvaluateConfig`: one policy, several candidate RMs, an optional ground truth, and how to sample."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ..core.blocks import DataConfig, Device, Dtype, PolicyConfig, RewardModelConfig, SamplingConfig
from ..core.config import Strict, check_device


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
    bootstrap_samples: int = Field(1000, ge=10, description="resamples for the 95% CI of mean variance")
    cache_dir: str | None = Field(
        None, description="sample cache; default $RMTEACH_CACHE_DIR or ~/.cache/rmteach"
    )

    @field_validator("device")
    @classmethod
    def _device_ok(cls, v: str) -> str:
        return check_device(v)

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
