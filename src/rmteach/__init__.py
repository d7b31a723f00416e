"""rmteach: is this reward model a good teacher for my policy?

The public Python API: names re-exported from the modules that define them. They are imported on first
use, so `rmteach --help` or `rmteach theory` do not pay for importing TRL and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "EvaluateConfig": "config",
    "RewardModelConfig": "config",
    "ScaleTransform": "config",
    "load_config": "config",
    "UserError": "errors",
    "run_evaluate": "evaluate",
    "fit_normalization": "metrics",
    "offpolicy_accuracy": "metrics",
    "onpolicy_accuracy": "metrics",
    "per_prompt_variance": "metrics",
    "variance_summary": "metrics",
    "correlation_with_ci": "metrics",
    "load_reward_model": "rewards",
    "TrainConfig": "train_config",
    "run_train": "train",
    "StudyConfig": "study_config",
    "run_study": "study",
    "run_demo": "demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'rmteach' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
