"""The held-out evaluation of `rmteach train`: sample the current policy off the training RNG and score it.

`Evaluator` samples M responses per eval prompt (its own seeded RNG, so evaluating never changes the
training samples), scores them with the proxy and the ground truth, and returns the `eval_*` fields of
metrics.jsonl. `sample_aside` and `shard` are shared with the normalization fitted at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..backends.rewards import flatten_grid
from ..core.blocks import SamplingConfig
from ..core.data import Prompt, extras_of
from .rewards import TRLReward


def sample_aside(model: Any, tok: Any, prompts: list[Any], sampling: SamplingConfig) -> list[list[str]]:
    """`generate_responses` in eval mode on its own RNG stream: the training samples never depend on it.

    `prompts` are `Prompt.input`s: texts, or conversations."""
    import torch

    from ..backends.sampler import generate_responses

    if not prompts:
        return []
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return generate_responses(model, tok, prompts, sampling)  # (n_prompts, K)
    finally:
        model.train(was_training)


def shard(n: int, rank: int, world: int) -> tuple[list[int], int]:
    """This process's share of n prompts: every world-th index, padded with index 0 to the same count everywhere.

    Generation under FSDP is collective, so every process must make the same number of `generate` calls; the
    padding is sampled and dropped. Returns (indices to sample, how many of them are real).

    >>> shard(5, 1, 2)
    ([1, 3, 0], 2)
    """
    mine = list(range(rank, n, world))
    return mine + [0] * (-(-n // world) - len(mine)), len(mine)


def flatten(prompts: list[Prompt], responses: list[list[str]]) -> tuple[list[Any], list[str], list[str], dict]:
    """The (prompt, response) pairs of K responses per prompt, prompt by prompt: (inputs, responses, ids, extras),
    each of length n * K (extras: {column: values}), as `TRLReward.score` takes them."""
    return flatten_grid([p.input for p in prompts], responses, [p.id for p in prompts], extras_of(prompts))


@dataclass
class Evaluator:
    """Sample M responses per eval prompt and score them: the policy's proxy and gold reward off the train set.

    Every evaluation samples with the same seed (common random numbers), so two evaluations of similar
    policies differ by the policy change more than by sampling noise. With several processes each one takes
    every world-th prompt (`shard`) and the per-prompt results are gathered.
    """

    prompts: list[Prompt]  # their extra columns reach the reward functions, as in training
    proxy: TRLReward
    gold: TRLReward | None
    sampling: SamplingConfig

    def __call__(
        self, model: Any, tok: Any, step: int, *, rank: int = 0, world: int = 1,
        gather: Callable[[list], list] | None = None,
    ) -> dict[str, float | None]:
        """Evaluate `model` (already unwrapped for generation); returns the three `eval_*` fields."""
        idx, real = shard(len(self.prompts), rank, world)
        mine = idx[:real]
        rows: list[tuple[int, float, float, float | None]] = []  # (prompt index, proxy mean, proxy var, gold mean)
        responses = sample_aside(model, tok, [self.prompts[i].input for i in idx], self.sampling)[:real]  # (n_mine, M)
        if mine:
            m = self.sampling.samples_per_prompt
            flat_p, flat_r, ids, extras = flatten([self.prompts[i] for i in mine], responses)  # (n_mine * M,) each
            z = self.proxy.score(flat_p, flat_r, step=step, ids=ids, extras=extras).reshape(len(mine), m)  # (n_mine, M)
            g = (self.gold.score(flat_p, flat_r, step=step, ids=ids, extras=extras).reshape(len(mine), m)
                 if self.gold else None)
            for j, i in enumerate(mine):
                gold_mean = float(g[j].mean()) if g is not None else None
                rows.append((i, float(z[j].mean()), float(np.var(z[j], ddof=1)), gold_mean))
        if gather is not None:
            rows = gather(rows)
        rows.sort()
        return {
            "eval_proxy_reward": float(np.mean([r[1] for r in rows])),
            "eval_reward_variance": float(np.mean([r[2] for r in rows])),
            "eval_gold_reward": float(np.mean([r[3] for r in rows])) if self.gold else None,
        }
