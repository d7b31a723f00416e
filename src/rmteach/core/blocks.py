"""Config blocks shared by the commands: the policy, a reward model, a data set, sampling settings.

The command configs (`evaluate.config`, `train.config`, `study.config`) are built from these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from .config import Strict, check_device
from .remote import RemoteRMConfig

MAX_SEED = 2**32 - 1  # numpy's and TRL's limit: a larger seed fails deep inside a run



class ScaleTransform(Strict):
    """Multiply an RM's rewards by `factor` on a seeded random `fraction` of prompts.

    With `factor=0.001, fraction=0.5` on the ground truth this is the paper's perfectly accurate but
    low-variance RM: the ranking within every prompt is kept (accuracy 1), the variance collapses on half
    the prompts. Prompts are chosen by a seeded hash of their text, so the same prompt is chosen in
    `evaluate` and in `train` whatever set it comes in.
    """

    kind: Literal["scale_fraction"] = "scale_fraction"
    fraction: float = Field(0.5, ge=0.0, le=1.0, description="share of prompts whose rewards are scaled")
    factor: float = Field(0.001, gt=0.0, description="multiplier applied on the chosen prompts")
    seed: int = Field(0, ge=0, description="seed of the prompt choice")


class RewardModelConfig(Strict):
    """One reward model: a Hugging Face sequence classifier (`path`), a Python callable (`callable`), or a model
    served over HTTP (`http`: OpenRLHF's remote-RM or vLLM's score protocol; `rmteach serve-rm` serves one)."""

    name: str = Field(..., min_length=1, description="unique name used in reports")
    path: str | None = Field(None, description="local directory or hub id of an AutoModelForSequenceClassification")
    callable: str | None = Field(
        None, description="'module:attribute' of a function (prompts, completions, **kwargs) -> list[float]"
    )
    http: RemoteRMConfig | None = Field(None, description="a reward model served over HTTP: url, protocol, ...")
    transform: ScaleTransform | None = Field(None, description="optional reward transform")
    batch_size: int = Field(16, ge=1, description="sequences per forward pass when scoring")
    max_length: int = Field(2048, ge=8, description="truncate (prompt + response) to this many RM tokens")
    trust_remote_code: bool = False
    allow_new_head: bool = Field(
        False, description="score with a freshly initialised (seeded) head when the checkpoint has none, e.g. a "
        "causal LM's folder; by default such a checkpoint is refused, since its rewards would be random")

    @model_validator(mode="after")
    def _one_source(self) -> "RewardModelConfig":
        if sum(v is not None for v in (self.path, self.callable, self.http)) != 1:
            raise ValueError(f"reward model '{self.name}' needs exactly one of 'path' or 'callable' or 'http'")
        if self.callable is not None and ":" not in self.callable:
            raise ValueError(f"reward model '{self.name}': callable must look like 'module:attribute'")
        return self


class PolicyConfig(Strict):
    """The policy: a Hugging Face causal LM (local directory or hub id)."""

    path: str = Field(..., min_length=1, description="local directory or hub id of an AutoModelForCausalLM")
    name: str | None = Field(None, description="name used in reports; defaults to the path's last part")
    trust_remote_code: bool = False

    @property
    def display_name(self) -> str:
        return self.name or Path(self.path.rstrip("/")).name


class DataConfig(Strict):
    """A prompt or preference set: a JSONL file or a `datasets` dataset saved with `save_to_disk`."""

    path: str = Field(..., min_length=1)
    split: str | None = Field(None, description="split to use when the path holds a DatasetDict")
    limit: int | None = Field(None, ge=1, description="use only the first `limit` rows")


class SamplingConfig(Strict):
    """How responses are sampled from the policy."""

    samples_per_prompt: int = Field(8, ge=2, description="K responses per prompt (pairs need K >= 2)")
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(16, ge=1, description="prompts per generate call (each yields K sequences)")
    seed: int = Field(0, ge=0, le=MAX_SEED)


# "auto", "cpu", "cuda", "cuda:1", "mps": checked wherever a config has a device field.
Device = Annotated[str, AfterValidator(check_device)]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
