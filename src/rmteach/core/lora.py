"""LoRA through peft for `rmteach train` and `rmteach rm train`: the policy's config block, the peft check,
peft's `LoraConfig`, and the save of a trained model (adapters merged).

peft is optional (`pip install 'rmteach[lora]'`) and imported only inside the functions that need it, so a
config without `lora` never touches it. (`rmteach rm train` keeps its own `LoraSettings`, with defaults for
reward models; `peft_config` and `save_trained` serve both.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from .config import Strict
from .errors import UserError
from .trl import quiet_third_party

PEFT_MISSING = "lora needs the peft package: pip install 'rmteach[lora]'"


class PolicyLora(Strict):
    """LoRA adapters on the policy: only they train; the reference for the KL is the policy with them off."""

    r: int = Field(8, ge=1, description="adapter rank")
    alpha: int = Field(16, ge=1, description="scaling numerator (the update is scaled by alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapters' input")
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        None, min_length=1, description="module names to adapt, e.g. [q_proj, v_proj] (None: peft's default for "
        "the architecture; all-linear: every linear layer but the output head)")


def require_peft() -> None:
    """Raise the one-line `UserError` unless peft imports."""
    import importlib

    try:
        importlib.import_module("peft")
    except ImportError:
        raise UserError(PEFT_MISSING) from None


def peft_config(lora: Any, task_type: str = "CAUSAL_LM") -> Any:
    """peft's `LoraConfig` for these settings (a `PolicyLora` or rm's `LoraSettings`: r, alpha, dropout,
    target_modules), or None without `lora`. peft unusable -> `UserError`."""
    if lora is None:
        return None
    require_peft()
    from peft import LoraConfig

    try:
        return LoraConfig(task_type=task_type, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=lora.target_modules)
    except ValueError as e:
        raise UserError(f"lora: {e}") from None


def trainable_parameters(model_path: str, lora: PolicyLora, *, trust_remote_code: bool = False) -> tuple[int, int]:
    """(trainable, total) parameters of the policy at `model_path` (a local folder) with these adapters.

    Built on torch's meta device from the folder's config.json: no weights are read or allocated.
    """
    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"), quiet_third_party():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
        wrapped = get_peft_model(model, peft_config(lora))
    return wrapped.get_nb_trainable_parameters()


def save_trained(trainer: Any, tok: Any, path: Path, *, merge: bool, is_main: bool) -> None:
    """Save a TRL trainer's model as a plain HF folder; with LoRA (`merge`) the adapters are merged into the
    weights first (no adapter files) and the main process writes it with the tokenizer."""
    if not merge:
        trainer.save_model(str(path))  # every process takes part (sharded weights); the main one writes
        return
    if is_main:
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        merged.save_pretrained(str(path))
        tok.save_pretrained(str(path))
