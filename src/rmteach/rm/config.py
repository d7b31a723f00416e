"""Configs of `rmteach rm`: `PairsConfig` (preference pairs from a policy) and `RMTrainConfig` (Bradley-Terry RMs).

Fields are documented once, here, grouped by purpose, and validated at load time: a wrong key, a mix whose
fractions do not sum to 1, or two mix entries with the same name fail before any model loads. `load` reads a
YAML file as `rmteach.core.config.load_config` does, keeping a hub id in `base_model.path` a hub id.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, model_validator

from ..core.blocks import MAX_SEED, DataConfig, Device, Dtype, PolicyConfig, RewardModelConfig, SamplingConfig
from ..core.config import (Strict, deep_merge, parse_overrides, read_yaml, resolve_path, resolve_paths,
                           validate)

FRACTION_TOLERANCE = 1e-6  # fractions summing to 1 within this count as 1 (0.1 + 0.2 + 0.7 in floats)


# ----------------------------------------------------------------------------------------------------------
# rm pairs


class PairsConfig(Strict):
    """`rmteach rm pairs`: sample K responses per prompt from a policy, label pairs of them by a ground truth.

    Which pairs of the K samples become candidates (`pairing`):
      - `disjoint`: (0, 1), (2, 3), ...: K // 2 independent pairs per prompt (the default);
      - `all`: all K (K - 1) / 2 pairs (the pairs on-policy accuracy is measured on; they share responses);
      - `best_worst`: one pair per prompt, the ground truth's best and worst sample.
    Two samples with the same text are never a pair. How a candidate is labelled (`labels`):
      - `hard`: chosen = the higher ground truth; ties (gap 0) are dropped;
      - `bradley_terry`: chosen is drawn with P(a over b) = sigmoid((r_a - r_b) / temperature), seeded by
        `label_seed`, so small gaps give noisy labels, as human raters do.
    Either way a candidate whose ground-truth gap |r_a - r_b| is below `min_gap` is dropped.
    """

    # -- What is sampled and who labels it ---------------------------------------------------------------
    policy: PolicyConfig = Field(..., description="the policy whose samples become pairs (on-policy data)")
    ground_truth: RewardModelConfig = Field(..., description="the reward that labels the pairs (any backend)")
    prompts: DataConfig = Field(..., description="prompt set (JSONL or save_to_disk folder): prompt[, id]")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="K, temperature, seed, backend, ...")

    # -- Which pairs, labelled how -------------------------------------------------------------------------
    pairing: Literal["disjoint", "all", "best_worst"] = "disjoint"
    labels: Literal["hard", "bradley_terry"] = "hard"
    min_gap: float = Field(0.0, ge=0.0, description="drop pairs whose ground-truth gap is below this")
    temperature: float = Field(1.0, gt=0.0, description="bradley_terry: the scale of the gap in the sigmoid")
    label_seed: int = Field(0, ge=0, le=MAX_SEED, description="bradley_terry: seed of the label draws")

    # -- Where and what is written --------------------------------------------------------------------------
    parquet: bool = Field(False, description="also write pairs.parquet (pairs.jsonl is always written)")
    device: Device = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    dtype: Dtype = Field("float32", description="weights dtype of the policy and HF ground truths")


# ----------------------------------------------------------------------------------------------------------
# rm train


class MixEntry(DataConfig):
    """One preference set of the training mix and the share of the `total` pairs drawn from it."""

    fraction: float = Field(..., ge=0.0, le=1.0, description="share of `total` drawn from this set")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                             description="label in ids and run.json (default: the file's name without suffix)")

    @property
    def label(self) -> str:
        return self.name or Path((self.path or self.hub or "data").rstrip("/")).stem


class BaseModelConfig(Strict):
    """The model the RM starts from: the policy's SFT weights (a causal LM) or a 1-output classifier."""

    path: str = Field(..., min_length=1, description="local folder or hub id")
    num_labels: Literal[1] | None = Field(
        None, description="1: give a checkpoint that is not a 1-output classifier (a causal LM, a base model, a "
        "classifier with other outputs) a fresh scalar head; unset, such a checkpoint is refused")
    trust_remote_code: bool = False


class LoraSettings(Strict):
    """LoRA adapters (peft, `pip install rmteach[lora]`); the head is trained in full and the result merged."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field("all-linear", description="module names to adapt")


class RMTrainConfig(Strict):
    """`rmteach rm train`: a Bradley-Terry RM on TRL's RewardTrainer from a base model and a mix of sets.

    The mix: `total` pairs, `round(fraction * total)` of them drawn (seeded, without replacement) from each
    set; the fractions must sum to 1. Without a `held_out` set, `held_out_fraction` of the drawn pairs is
    split off for the held-out accuracy, and the rest train.
    """

    # -- Model and data --------------------------------------------------------------------------------------
    base_model: BaseModelConfig
    mix: list[MixEntry] = Field(..., min_length=1, description="[{path, fraction[, name, split, limit]}]")
    total: int = Field(..., ge=2, description="pairs drawn from the mix (held-out split included)")
    held_out: DataConfig | None = Field(None, description="held-out preference set (default: split off the mix)")
    held_out_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of the mix held out (no held_out)")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds the draw, the split, the head and the data order")

    # -- Optimisation -----------------------------------------------------------------------------------------
    epochs: float = Field(1.0, gt=0.0, description="passes over the training pairs")
    batch_size: int = Field(8, ge=1, description="pairs per process per forward pass")
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(1e-5, gt=0.0, description="peak learning rate (tiny CPU models need ~1e-3)")
    lr_scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, ge=0.0, description="gradient clipping (0 disables)")
    max_length: int = Field(1024, ge=8, description="pairs longer than this many tokens (either side) are dropped")
    lora: LoraSettings | None = Field(None, description="train LoRA adapters instead of every weight")

    # -- Tracking and checkpoints -------------------------------------------------------------------------------
    log_every: int = Field(1, ge=1, description="steps between metrics.jsonl lines")
    eval_every: int | None = Field(None, ge=1, description="held-out loss/accuracy every N steps (and at the end)")
    checkpoint_every: int | None = Field(None, ge=1, description="save a resumable checkpoint every N steps")
    keep_checkpoints: int | None = Field(None, ge=1, description="keep only the newest N checkpoints")

    # -- Hardware -------------------------------------------------------------------------------------------
    device: Device = Field("auto", description="auto, cpu, cuda; under `accelerate launch` accelerate decides")
    bf16: bool = Field(False, description="bfloat16 mixed precision (GPU)")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory (large models)")
    cpu_threads: int | None = Field(None, ge=1, description="torch threads on CPU (None: torch's default)")
    report_to: list[str] = Field([], description="TRL/transformers loggers, e.g. [tensorboard]")
    trl_args: dict[str, Any] = Field({}, description="extra RewardConfig fields, applied last")

    @model_validator(mode="after")
    def _mix_ok(self) -> "RMTrainConfig":
        check_fractions([m.fraction for m in self.mix])
        labels = [m.label for m in self.mix]
        dup = sorted({n for n in labels if labels.count(n) > 1})
        if dup:
            raise ValueError(f"mix entries need distinct names (set 'name'); repeated: {', '.join(dup)}")
        if self.held_out is None and self.held_out_fraction > 0 and round(self.total * self.held_out_fraction) < 1:
            raise ValueError(f"held_out_fraction {self.held_out_fraction} of total {self.total} holds out no pair")
        return self

    def steps(self, n_train: int, world: int = 1) -> int:
        """Optimizer steps for `n_train` pairs on `world` processes (as the Trainer counts an epoch).

        >>> RMTrainConfig(base_model={"path": "m"}, mix=[{"path": "a", "fraction": 1}], total=400,
        ...               batch_size=64, epochs=4).steps(400)
        28
        """
        batches = math.ceil(n_train / (self.batch_size * world))  # per process per epoch
        return max(1, math.ceil(self.epochs * math.ceil(batches / self.gradient_accumulation_steps)))


def check_fractions(fractions: list[float]) -> None:
    """Raise `ValueError` unless every fraction is in [0, 1] and they sum to 1.

    >>> check_fractions([0.25, 0.75])
    >>> check_fractions([0.5, 0.6])
    Traceback (most recent call last):
    ValueError: mix fractions must sum to 1 (got 0.5 + 0.6 = 1.1)
    """
    if any(not 0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f"mix fractions must be in [0, 1] (got {fractions})")
    if abs(sum(fractions) - 1.0) > FRACTION_TOLERANCE:
        raise ValueError(f"mix fractions must sum to 1 (got {' + '.join(f'{f:g}' for f in fractions)} = "
                         f"{sum(fractions):g})")


C = TypeVar("C", PairsConfig, RMTrainConfig)


def load(model_cls: type[C], path: str | os.PathLike, overrides: list[str] | None = None) -> C:
    """Load a YAML config as `rmteach.core.config.load_config` does; `base_model.path` may be a hub id.

    Raises `UserError` naming the key for any unknown key or wrong value.
    """
    data = deep_merge(read_yaml(path), parse_overrides(overrides or []))
    base = Path(path).resolve().parent
    model = data.pop("base_model", None)  # resolved as a model reference: a hub id stays a hub id
    data = resolve_paths(data, base)
    if isinstance(model, dict) and isinstance(model.get("path"), str):
        model = {**model, "path": resolve_path(model["path"], base, model=True)}
    if model is not None:
        data["base_model"] = model
    return validate(model_cls, data, source=str(path))
