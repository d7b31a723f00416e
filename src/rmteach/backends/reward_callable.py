"""The callable reward backend: any function with TRL's reward signature, named as `module:attribute`.

`(prompts, completions, **kwargs) -> list[float]`, the signature TRL's trainers call reward functions with.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Callable, Sequence

import numpy as np

from ..core.blocks import RewardModelConfig
from ..core.errors import UserError


def import_callable(spec: str, what: str) -> Callable[..., Any]:
    """Import `module:attribute` (attribute may be dotted), with a one-line error when it fails."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"{what}: cannot import module '{module_name}' ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{what}: module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(f"{what}: '{spec}' is not callable")
    return obj


class CallableRewardModel:
    """A Python function with TRL's reward-function signature, scored in chunks of `batch_size`."""

    def __init__(self, cfg: RewardModelConfig) -> None:
        assert cfg.callable is not None
        self.name, self.cfg = cfg.name, cfg
        self.fn = import_callable(cfg.callable, f"reward model '{cfg.name}'")

    def score(
        self, prompts: Sequence[str], completions: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        out = []
        bs = max(self.cfg.batch_size, 256)  # no padding cost: larger chunks are cheaper
        for start in range(0, len(prompts), bs):
            p, c = list(prompts[start : start + bs]), list(completions[start : start + bs])
            got = self.fn(prompts=p, completions=c)
            if len(got) != len(p):
                raise UserError(f"reward model '{self.name}' returned {len(got)} rewards for {len(p)} completions")
            out.extend(float(x) if x is not None else math.nan for x in got)
            if progress:
                progress(len(p))
        return np.asarray(out, dtype=np.float64)

    def close(self) -> None:
        pass
