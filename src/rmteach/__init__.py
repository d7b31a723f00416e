"""rmteach: is this reward model a good teacher for my policy?

The public Python API; everything here is re-exported from the modules that define it.
"""

from .config import EvaluateConfig, RewardModelConfig, ScaleTransform, load_config
from .errors import UserError
from .evaluate import evaluate, run_evaluate
from .metrics import (
    fit_normalization,
    offpolicy_accuracy,
    onpolicy_accuracy,
    per_prompt_variance,
    variance_summary,
)
from .rewards import load_reward_model

__version__ = "0.1.0"

__all__ = [
    "EvaluateConfig",
    "RewardModelConfig",
    "ScaleTransform",
    "UserError",
    "evaluate",
    "fit_normalization",
    "load_config",
    "load_reward_model",
    "offpolicy_accuracy",
    "onpolicy_accuracy",
    "per_prompt_variance",
    "run_evaluate",
    "variance_summary",
]
