"""Preference pairs for the toy world, labeled by the ground truth.

Labels are the argmax of r_G: the response with the higher ground-truth reward is `chosen`; pairs whose two
responses tie under r_G (identical answers, or equally good ones) are dropped, so every kept pair carries a
strict preference. Off-policy pairs are two answers of the off-policy writer (`task.write_response`);
on-policy pairs are two samples of a policy, drawn through `rmteach.backends.sampler.sample_responses`, the same code
`rmteach evaluate` samples with.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..core.blocks import PolicyConfig, SamplingConfig
from ..core.errors import UserError
from .task import Style, score, write_response

Row = dict[str, Any]


def label(prompt: str, a: str, b: str) -> Row | None:
    """A labeled pair from two responses, or None when r_G ties.

    >>> label("list cat dog", "cat", "cat dog")["chosen"]
    'cat dog'
    >>> label("list cat dog", "cat dog", "cat dog") is None
    True
    """
    ra, rb = score(prompt, a), score(prompt, b)
    if ra == rb:
        return None
    (chosen, rc), (rejected, rr) = ((a, ra), (b, rb)) if ra > rb else ((b, rb), (a, ra))
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "chosen_reward": rc, "rejected_reward": rr}


def _with_ids(rows: list[Row], prefix: str, source: str) -> list[Row]:
    width = len(str(max(len(rows) - 1, 0)))
    return [{"id": f"{prefix}-{i:0{width}d}", "source": source, **r} for i, r in enumerate(rows)]


def writer_pairs(
    prompts: Sequence[str], style: Style, n: int, rng: np.random.Generator, *, prefix: str,
    keep: Callable[[Row], bool] | None = None, max_rounds: int = 50,
) -> list[Row]:
    """`n` labeled pairs of two writer answers each, cycling through `prompts` until enough are kept.

    Arguments:
        prompts: the prompts to answer, in order (cycled).
        style: the writer.
        n: pairs wanted.
        rng: the writer's randomness.
        prefix: id prefix of the rows.
        keep: an optional filter on labeled rows (a narrower slice of the data).
        max_rounds: give up after this many passes over `prompts`.

    Returns:
        Rows with id, source, prompt, chosen, rejected, chosen_reward, rejected_reward.
    """
    rows: list[Row] = []
    for _ in range(max_rounds):
        for p in prompts:
            row = label(p, write_response(p, style, rng), write_response(p, style, rng))
            if row is not None and (keep is None or keep(row)):
                rows.append(row)
                if len(rows) == n:
                    return _with_ids(rows, prefix, "off_policy")
    raise UserError(f"could only write {len(rows)} of {n} '{prefix}' pairs; use fewer pairs or more prompts")


def sampled_pairs(
    policy_path: str | Path, prompts: Sequence[str], n: int, *, seed: int, prefix: str, max_new_tokens: int,
    batch_size: int = 64, progress: Callable[[int], None] | None = None,
) -> list[Row]:
    """`n` labeled pairs of two samples of the policy each (temperature 1), spread over `prompts`.

    Each prompt gets 2 * r samples, paired (0, 1), (2, 3), ...; pairs are taken round by round over the
    prompts, so a small prompt set still yields many pairs. r is 1.5x what `n` needs if nothing tied.
    """
    rounds = max(1, math.ceil(1.5 * n / len(prompts)))
    sampling = SamplingConfig(
        samples_per_prompt=2 * rounds, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens,
        batch_size=max(1, batch_size // (2 * rounds)), seed=seed,
    )
    from ..backends.sampler import sample_responses

    responses = sample_responses(
        PolicyConfig(path=str(policy_path)), list(prompts), sampling,
        device="cpu", dtype="float32", progress=progress,
    )  # (n_prompts, 2 * rounds)
    rows: list[Row] = []
    for j in range(rounds):
        for p, resp in zip(prompts, responses):
            row = label(p, resp[2 * j], resp[2 * j + 1])
            if row is not None:
                rows.append(row)
                if len(rows) == n:
                    return _with_ids(rows, prefix, "on_policy")
    raise UserError(
        f"the policy gave only {len(rows)} of {n} untied '{prefix}' pairs; use fewer pairs or more prompts"
    )


def mix(on_policy: list[Row], off_policy: list[Row], share: float, n: int) -> list[Row]:
    """`n` training pairs of which round(share * n) are on-policy (the first ones of each pool).

    >>> [r["id"] for r in mix([{"id": "a"}, {"id": "b"}], [{"id": "x"}, {"id": "y"}], 0.5, 2)]
    ['a', 'x']
    """
    n_on = int(round(share * n))
    if n_on > len(on_policy) or n - n_on > len(off_policy):
        raise ValueError(f"pools too small for {n} pairs at on-policy share {share}")
    return on_policy[:n_on] + off_policy[: n - n_on]
