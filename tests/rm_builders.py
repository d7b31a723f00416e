"""Builders of custom reward models, named in configs as `rm_builders:NAME` (`custom.builder`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

BUILT: list[dict[str, Any]] = []  # the arguments of every build, for the tests to check
CALLS: list[int] = []  # the batch size of every scorer call


def heads(prompts, completions) -> np.ndarray:
    """The 3 heads of `multi_head`'s scorer, (n, 3): count of 'w1', words in the response, words in the prompt."""
    text = [p if isinstance(p, str) else " ".join(m["content"] for m in p) for p in prompts]
    return np.array([[c.split().count("w1"), len(c.split()), len(t.split())] for t, c in zip(text, completions)],
                    dtype=np.float64)


@dataclass
class HeadsOutput:
    """An ArmoRM-like output: a combined `score` column (n, 1) and the per-objective `rewards` (n, 3)."""

    score: torch.Tensor
    rewards: torch.Tensor


def multi_head(*, path, device, dtype, form="object", oom_above=None, **kwargs):
    """A scorer with 3 heads (see `heads`), returned as `form`: object (`HeadsOutput`), dict (of lists), array
    (n, 3), tensor (n, 3), rows (a list of lists), short (an array one row short), or none. With `oom_above`, a
    call on more pairs raises CUDA's out-of-memory error."""
    BUILT.append({"path": path, "device": device, "dtype": dtype, "form": form, **kwargs})

    def scorer(prompts, completions, **extras):
        if oom_above is not None and len(prompts) > oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        CALLS.append(len(prompts))
        h = heads(prompts, completions)  # (n, 3)
        if form == "object":
            t = torch.tensor(h, dtype=getattr(torch, dtype))
            return HeadsOutput(score=(t[:, :1] - 0.5 * t[:, 1:2]), rewards=t)
        if form == "dict":
            return {"score": (h[:, 0] - 0.5 * h[:, 1]).tolist(), "rewards": h.tolist()}
        if form == "tensor":
            return torch.tensor(h)
        if form == "rows":
            return h.tolist()
        if form == "short":
            return h[:-1]
        if form == "none":
            return None
        return h

    return scorer


class ClosingScorer:
    """A scorer object with a `close()` method: the RM's close must call it."""

    closed = 0

    def __call__(self, prompts, completions, **extras):
        return [float(len(c)) for c in completions]

    def close(self):
        ClosingScorer.closed += 1


def closing(*, path, device, dtype):
    return ClosingScorer()


def with_extras(*, path, device, dtype):
    """A scorer whose reward is the data set's `bonus` column (extras)."""
    return lambda prompts, completions, bonus, **extras: [float(b) for b in bonus]


def raises(*, path, device, dtype):
    raise FileNotFoundError(f"no model at {path}")


def not_a_scorer(*, path, device, dtype):
    return 42
