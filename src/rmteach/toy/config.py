"""The toy world's settings: typed, validated, and two presets (`default` for the demo, `tiny` for tests).

Every size and rate of the world lives here, so a build is a pure function of (`ToyConfig`, seed) and the
config is what `build.json` records to recognise an interrupted build of the same world.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..core.config import Strict, deep_merge, validate
from ..core.errors import UserError
from .task import Style


class StyleSpec(Strict):
    """How a writer answers (see `rmteach.toy.task.Style`)."""

    spanish: float = Field(..., ge=0.0, le=1.0, description="probability a response is in Spanish")
    keep: float = Field(..., ge=0.0, le=1.0, description="probability each prompt animal is named")
    shuffle: float = Field(..., ge=0.0, le=1.0, description="probability the named animals are shuffled")
    junk: float = Field(..., ge=0.0, le=8.0, description="mean number of junk words (Poisson)")
    wrong_item: float = Field(0.3, ge=0.0, le=1.0, description="share of junk that is an unasked animal")
    repeat: float = Field(0.0, ge=0.0, le=1.0, description="share of junk that repeats a named animal")
    mix: float = Field(0.0, ge=0.0, le=1.0, description="probability an animal is in the other language")

    @model_validator(mode="after")
    def _shares(self) -> "StyleSpec":
        if self.wrong_item + self.repeat > 1.0:
            raise ValueError("wrong_item + repeat must be <= 1 (the rest of the junk is fillers)")
        return self

    def style(self) -> Style:
        return Style(**self.model_dump())


class Optim(Strict):
    """Plain AdamW with linear decay (see `rmteach.toy.fit`)."""

    epochs: int = Field(..., ge=1, le=100)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0.0, le=1.0)


class PolicySpec(Strict):
    """One initial policy: a tiny causal LM trained from scratch on demonstrations written in `style`."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,31}$")
    description: str
    arch: Literal["gpt2", "llama"] = "llama"
    d: int = Field(64, ge=8, le=512)
    layers: int = Field(2, ge=1, le=8)
    heads: int = Field(4, ge=1, le=16)
    style: StyleSpec
    demos: int = Field(..., ge=16, description="number of demonstrations")
    optim: Optim

    @model_validator(mode="after")
    def _heads(self) -> "PolicySpec":
        if self.d % self.heads:
            raise ValueError(f"policy '{self.name}': d ({self.d}) must be a multiple of heads ({self.heads})")
        return self


class PromptSizes(Strict):
    """Prompt sets handed to the user: `train` for policy gradient, `eval` for measurement."""

    train: int = Field(..., ge=4)
    eval: int = Field(..., ge=4)


class ZooSpec(Strict):
    """The reward-model zoo: Bradley-Terry RMs started from the first policy, as the paper's start from SFT."""

    pairs: int = Field(..., ge=16, description="training pairs per RM (the same for every mix)")
    mixes: list[float] = Field([1.0, 0.75, 0.5, 0.25, 0.0], min_length=1, description="on-policy shares")
    optim: Optim
    test_pairs: int = Field(..., ge=8, description="held-out pairs in each of the off- and on-policy test sets")
    low_variance_fraction: float = Field(0.5, gt=0.0, le=1.0, description="share of prompts scaled")
    low_variance_factor: float = Field(0.001, gt=0.0, lt=1.0, description="scale of their rewards")

    @model_validator(mode="after")
    def _mixes(self) -> "ZooSpec":
        percents = [round(m * 100) for m in self.mixes]  # the RMs are named rm_on<percent>
        if any(not 0.0 <= m <= 1.0 for m in self.mixes) or len(set(percents)) != len(percents):
            raise ValueError("mixes must be distinct on-policy shares in [0, 1] (distinct whole percents)")
        return self


class SamplingSpec(Strict):
    """Sampling settings written into the generated evaluate configs (and used for on-policy pairs)."""

    samples_per_prompt: int = Field(8, ge=2)
    max_new_tokens: int = Field(16, ge=4, le=64)
    temperature: float = Field(1.0, gt=0.0)
    batch_size: int = Field(64, ge=1)


class ToyConfig(Strict):
    """Everything a toy world is built from, besides the seed."""

    preset: str
    prompts: PromptSizes
    policies: list[PolicySpec] = Field(..., min_length=2)
    off_policy: StyleSpec = Field(..., description="the off-policy writer (covers the second policy's region)")
    zoo: ZooSpec
    sampling: SamplingSpec = SamplingSpec()

    @model_validator(mode="after")
    def _names(self) -> "ToyConfig":
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise ValueError(f"policy names must be unique (got {', '.join(names)})")
        needed = self.prompts.train + self.prompts.eval + rm_prompt_count(self.zoo.pairs)
        if needed > MAX_DISTINCT_PROMPTS:
            raise ValueError(
                f"prompts.train + prompts.eval + 1.5 * zoo.pairs must be at most {MAX_DISTINCT_PROMPTS} "
                f"distinct prompts (got {needed}); the task has about 13,000"
            )
        return self


# The task has 12*11 + 12*11*10 + 12*11*10*9 = 13,332 distinct prompts; drawing most of them by rejection
# gets slow, so a world uses at most this many.
MAX_DISTINCT_PROMPTS = 8000


def rm_prompt_count(pairs: int) -> int:
    """Distinct RM-training prompts: 1.5 per pair, as two samples of a policy tie now and then."""
    return int(1.5 * pairs) + 1


# ----------------------------------------------------------------------------------------------------------
# Presets

_EN = dict(spanish=0.0, keep=0.8, shuffle=0.25, junk=0.6, wrong_item=0.6, repeat=0.4)
_ES = dict(spanish=1.0, keep=0.75, shuffle=0.3, junk=1.0, wrong_item=0.2, repeat=0.2)
_OFF = dict(spanish=0.95, keep=0.7, shuffle=0.4, junk=1.5, wrong_item=0.35, repeat=0.35)

PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "preset": "default",
        "prompts": {"train": 512, "eval": 256},
        "policies": [
            {
                "name": "english", "arch": "llama", "style": _EN, "demos": 8000,
                "optim": {"epochs": 6, "batch_size": 64, "lr": 3e-3},
                "description": "answers in English; its mistakes are unasked or repeated animals",
            },
            {
                "name": "spanish", "arch": "llama", "style": _ES, "demos": 8000,
                "optim": {"epochs": 6, "batch_size": 64, "lr": 3e-3},
                "description": "answers in Spanish; its mistakes are mostly filler words",
            },
        ],
        "off_policy": _OFF,
        "zoo": {"pairs": 3000, "test_pairs": 500, "optim": {"epochs": 10, "batch_size": 64, "lr": 1e-3}},
        "sampling": {"samples_per_prompt": 8, "max_new_tokens": 16},
    },
    "tiny": {
        "preset": "tiny",
        "prompts": {"train": 64, "eval": 64},
        "policies": [
            {
                "name": "english", "arch": "llama", "d": 32, "heads": 2, "style": _EN, "demos": 1500,
                "optim": {"epochs": 4, "batch_size": 64, "lr": 5e-3},
                "description": "answers in English; its mistakes are unasked or repeated animals",
            },
            {
                "name": "spanish", "arch": "gpt2", "d": 32, "heads": 2, "style": _ES, "demos": 1500,
                "optim": {"epochs": 4, "batch_size": 64, "lr": 5e-3},
                "description": "answers in Spanish; its mistakes are mostly filler words",
            },
        ],
        "off_policy": _OFF,
        "zoo": {"pairs": 400, "test_pairs": 200, "optim": {"epochs": 4, "batch_size": 64, "lr": 5e-3}},
        "sampling": {"samples_per_prompt": 4, "max_new_tokens": 16},
    },
}


def resolve_config(preset: str, overrides: dict[str, Any] | None = None) -> ToyConfig:
    """The validated config of a preset, with optional nested overrides (e.g. `{"zoo": {"pairs": 100}}`).

    Raises:
        UserError: for an unknown preset (naming the allowed ones) or an invalid size or rate.
    """
    if preset not in PRESETS:
        raise UserError(f"unknown --preset '{preset}' (allowed: {', '.join(PRESETS)})")
    data = deep_merge(PRESETS[preset], overrides or {})
    return validate(ToyConfig, data, source=f"toy preset '{preset}'")
