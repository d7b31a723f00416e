"""A token prefix that every row shares, run through a causal LM once: the judge's few-shot examples.

An LLM judge reads the same few-shot examples before every (prompt, response) pair; with four short examples
they are about three quarters of each text (SmolLM2's judge in the real world: ~300 of ~400 tokens). The
prefix's keys and values are computed once (`PrefixCache`), and each batch runs only its rows' suffixes on top
of a copy of them. The arithmetic is the full pass's: the suffix tokens attend to the same prefix keys at the
same positions; only float rounding differs (the matrix shapes do).

Which rows are covered is decided on their token ids, not their text: a row is scored this way only if its
first tokens are exactly the prefix's (a row cut on the left to the judge's `max_length`, or tokenized
differently at the seam, is not, and takes the full pass). Left padding of the suffixes sits between the
prefix and the suffix, masked out, and position ids count real tokens only, as in the full pass.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Sequence

from .reward_hf import pad_rows


def common_prefix(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """The longest common prefix of two token-id rows.

    >>> common_prefix([1, 2, 3, 4], [1, 2, 5]), common_prefix([1], [2])
    ([1, 2], [])
    """
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return list(a[:n])


def cache_name(model: Any) -> str:
    """The forward argument (and output field) of a model's key-value cache: `cache` from transformers 5.x on,
    `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def keeps_last_logits(model: Any) -> dict[str, int]:
    """`{"logits_to_keep": 1}` when the model's forward takes it (the LM head then runs on the last position
    only), else nothing."""
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


class PrefixCache:
    """The keys and values of `prefix` under `model`, and the next-token logits of rows that start with it."""

    def __init__(self, model: Any, prefix: Sequence[int], pad_id: int) -> None:
        import torch

        self.model, self.prefix, self.pad_id = model, list(prefix), pad_id
        self.device = next(model.parameters()).device
        self.keep, self.cache_arg = keeps_last_logits(model), cache_name(model)
        with torch.inference_mode():
            ids = torch.tensor([self.prefix], dtype=torch.int64, device=self.device)  # (1, P)
            self.past = getattr(model(input_ids=ids, use_cache=True, **self.keep), self.cache_arg)

    def covers(self, row: Sequence[int]) -> bool:
        """Whether `row` starts with the prefix and has at least one token after it."""
        p = len(self.prefix)
        return len(row) > p and list(row[:p]) == self.prefix

    def last_logits(self, rows: list[list[int]]) -> Any:
        """(B, V) next-token logits after each row (every row `covers`), from its suffix over the cached prefix."""
        import torch

        p = len(self.prefix)
        batch, mask = pad_rows([r[p:] for r in rows], self.pad_id, left=True)  # (B, S) suffixes, left padded
        pos = p + (mask.cumsum(-1) - 1).clamp(min=0)  # (B, S): the suffix's real tokens continue the prefix
        full = torch.cat([torch.ones(len(rows), p, dtype=mask.dtype), mask], dim=1)  # (B, P + S)
        past = copy.deepcopy(self.past)
        past.batch_repeat_interleave(len(rows))
        out = self.model(input_ids=batch.to(self.device), attention_mask=full.to(self.device),
                         position_ids=pos.to(self.device), use_cache=True, **{self.cache_arg: past}, **self.keep)
        return out.logits[:, -1, :]
