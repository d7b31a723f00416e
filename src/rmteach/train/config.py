"""`TrainConfig`: the typed config of `rmteach train` (policy gradient on TRL with tracked rewards).

Fields are documented once, here, grouped by purpose. Everything is validated at load time, before any
model loads; settings that depend on the launch (the number of processes) are checked by `rmteach.train.trainer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..core.blocks import MAX_SEED, DataConfig, Device, Dtype, PolicyConfig, RewardModelConfig, SamplingConfig
from ..core.config import Strict
from ..core.errors import UserError
from ..core.lora import PolicyLora


@dataclass(frozen=True)
class Layout:
    """How one optimizer step's completions are spread over processes and accumulation passes."""

    world: int  # processes
    per_device: int  # completions per forward/backward pass on one process
    accumulation: int  # passes per optimizer step


class NormalizationConfig(Strict):
    """Where the proxy RM's shift and scale come from.

    The paper normalizes every RM by the mean and std of its rewards over the initial policy's samples, both
    during training and evaluation. With `path`, the `normalization` block of that RM (matched by name) is
    read from an `rmteach evaluate` report.json; without it, `samples_per_prompt` responses per train prompt
    are sampled from the initial policy at start and scored, and the same `rmteach.core.metrics.fit_normalization`
    is applied. Either way the RM's transform (if any) is applied before the statistics are taken.
    """

    path: str | None = Field(None, description="an `rmteach evaluate` report.json holding this RM's normalization")
    samples_per_prompt: int = Field(4, ge=2, description="responses per train prompt when computed at start")
    max_prompts: int | None = Field(None, ge=1, description="use the first N train prompts when computed at start")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="sampling seed when computed at start")


class TrainConfig(Strict):
    """`rmteach train`: one policy trained by one proxy RM, the ground truth tracked alongside.

    Batch layout: every optimizer step samples `samples_per_prompt` responses for each of `prompts_per_step`
    prompts (all processes together), so one step sees `prompts_per_step * samples_per_prompt` completions.

    Advantage scaling decides whether the paper's variance effect reaches the gradient:
    - RLOO (default): advantage = reward - mean of the other samples of the same prompt. A prompt whose
      rewards are scaled by c contributes c times the gradient: low reward variance means slow learning, as in
      the paper. `rloo_normalize_advantages` (off by default) divides by the batch std, a global rescale that
      keeps the per-prompt proportions.
    - GRPO: `grpo_scale_rewards` = "group" (GRPO's definition and TRL's default) divides each prompt's
      advantages by that prompt's reward std, which exactly undoes a per-prompt rescaling of rewards (the
      paper's perfectly accurate low-variance RM then teaches as fast as the ground truth); "batch" divides by
      one std over the whole batch (per-prompt proportions kept); "none" keeps raw centred rewards (Dr. GRPO).
    """

    # -- What is trained, and by what ------------------------------------------------------------------
    policy: PolicyConfig
    algorithm: Literal["rloo", "grpo"] = Field("rloo", description="TRL's RLOOTrainer or GRPOTrainer")
    reward_model: RewardModelConfig = Field(..., description="the proxy RM: its normalized reward trains the policy")
    ground_truth: RewardModelConfig | None = Field(
        None, description="logged at every step and evaluation (raw, unnormalized), never trained on"
    )
    normalization: NormalizationConfig = NormalizationConfig()
    lora: PolicyLora | None = Field(
        None, description="train LoRA adapters on the policy, not every weight: {r, alpha, dropout, target_modules}"
    )

    # -- Data ------------------------------------------------------------------------------------------
    train_prompts: DataConfig
    eval_prompts: DataConfig

    # -- Optimization ----------------------------------------------------------------------------------
    learning_rate: float = Field(1e-6, gt=0.0, description="peak learning rate (tiny CPU models need ~1e-3..1e-2)")
    kl_coef: float = Field(0.05, ge=0.0, description="KL coefficient to the initial policy (0: no reference model)")
    steps: int = Field(20, ge=1, description="optimizer steps (ignored when `epochs` is set)")
    epochs: float | None = Field(None, gt=0.0, description="passes over the train prompts; replaces `steps`")
    prompts_per_step: int = Field(8, ge=1, description="prompts per optimizer step, all processes together")
    samples_per_prompt: int = Field(4, ge=2, description="K responses per prompt (the RLOO/GRPO group)")
    gradient_accumulation_steps: int = Field(1, ge=1, description="split each step's batch into this many passes")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="adamw (TRL's default) or plain sgd")
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, ge=0.0, description="gradient clipping (0 disables)")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds sampling, data order and initialization of every run")

    # -- Sampling during training ----------------------------------------------------------------------
    max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)

    # -- Advantage scaling (see the class docstring) ---------------------------------------------------
    rloo_normalize_advantages: bool = Field(False, description="RLOO: divide advantages by their batch std")
    grpo_scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="GRPO: divide advantages by the per-prompt std, the batch std, or nothing"
    )

    # -- Held-out evaluation and checkpoints -----------------------------------------------------------
    eval_every: int | None = Field(
        10, ge=1, description="evaluate every N steps; always at step 0 and at the last step (None: only those)"
    )
    eval_samples_per_prompt: int = Field(4, ge=2, description="M responses per eval prompt")
    eval_batch_size: int = Field(16, ge=1, description="eval prompts per generate call")
    checkpoint_every: int | None = Field(None, ge=1, description="save a resumable checkpoint every N steps")
    keep_checkpoints: int | None = Field(None, ge=1, description="keep only the newest N checkpoints")

    # -- Hardware and logging --------------------------------------------------------------------------
    device: Device = Field("auto", description="auto, cpu, cuda; under `accelerate launch` accelerate decides")
    dtype: Dtype = Field("float32", description="weights dtype of the policy and HF reward models")
    bf16: bool = Field(False, description="bfloat16 mixed precision (autocast) for the policy")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory (large policies)")
    cpu_threads: int | None = Field(
        1, ge=1, description="torch CPU threads while training, restored after (1 is fastest for tiny models)"
    )
    report_to: list[str] = Field(["tensorboard"], description="TRL/transformers loggers; [] for none")
    use_vllm: bool = Field(False, description="generate training samples with TRL's vLLM backend (GPU, if installed)")
    vllm_mode: Literal["colocate", "server"] = "colocate"
    trl_args: dict[str, Any] = Field(
        {}, description="extra RLOOConfig/GRPOConfig fields (e.g. deepspeed, vllm_gpu_memory_utilization); last word"
    )

    @field_validator("report_to")
    @classmethod
    def _report_to_ok(cls, v: list[str]) -> list[str]:
        return [] if v == ["none"] else v

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.prompts_per_step * self.samples_per_prompt % self.gradient_accumulation_steps:
            raise ValueError(
                f"prompts_per_step * samples_per_prompt ({self.prompts_per_step * self.samples_per_prompt}) must be "
                f"divisible by gradient_accumulation_steps ({self.gradient_accumulation_steps})"
            )
        if self.use_vllm and self.device == "cpu":
            raise ValueError("use_vllm needs a GPU: set device to auto or cuda, or use_vllm: false")
        return self

    def total_steps(self, num_train_prompts: int) -> int:
        """Optimizer steps of the run: `steps`, or `epochs` full passes over the train prompts."""
        if self.epochs is None:
            return self.steps
        per_epoch = num_train_prompts // self.prompts_per_step
        return max(1, math.ceil(self.epochs * per_epoch))

    def layout(self, world: int) -> Layout:
        """Split each step's `prompts_per_step * samples_per_prompt` completions over `world` processes.

        Each process must hold whole prompt groups (its share of the prompts, K samples each), so per-prompt
        statistics (RLOO baselines, reward variance) never straddle processes.
        """
        if self.prompts_per_step % world:
            raise UserError(
                f"prompts_per_step ({self.prompts_per_step}) must be divisible by the number of processes ({world})"
            )
        completions = self.prompts_per_step * self.samples_per_prompt
        if completions % (world * self.gradient_accumulation_steps):
            raise UserError(
                f"prompts_per_step * samples_per_prompt ({completions}) must be divisible by processes x "
                f"gradient_accumulation_steps ({world} x {self.gradient_accumulation_steps})"
            )
        accumulation = self.gradient_accumulation_steps
        return Layout(world, completions // (world * accumulation), accumulation)

    def sampling(self, k: int, seed: int) -> SamplingConfig:
        """Settings for sampling outside TRL (normalization, evaluation): the training ones, `k` samples, `seed`."""
        return SamplingConfig(samples_per_prompt=k, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, batch_size=self.eval_batch_size, seed=seed)
