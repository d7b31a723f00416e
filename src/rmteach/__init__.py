"""rmteach: is this reward model a good teacher for my policy?

The public Python API: names re-exported from the modules that define them. They are imported on first
use, so `rmteach --help` or `rmteach theory` do not pay for importing TRL and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "EvaluateConfig": "evaluate.config",
    "RewardModelConfig": "core.blocks",
    "ScaleTransform": "core.blocks",
    "load_config": "core.config",
    "UserError": "core.errors",
    "run_evaluate": "evaluate.run",
    "fit_normalization": "core.metrics",
    "offpolicy_accuracy": "core.metrics",
    "onpolicy_accuracy": "core.metrics",
    "per_prompt_variance": "core.metrics",
    "variance_summary": "core.metrics",
    "correlation_with_ci": "core.metrics",
    "load_reward_model": "backends.rewards",
    "TrainConfig": "train.config",
    "run_train": "train.run",
    "StudyConfig": "study.config",
    "run_study": "study.run",
    "run_demo": "demo",
    "run_curate": "curate.run",
    "PairsConfig": "rm.config",
    "RMTrainConfig": "rm.config",
    "run_pairs": "rm.pairs",
    "run_rm_train": "rm.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'rmteach' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
