"""A scored reward model as a TRL reward function: `(prompts, completions, **kwargs) -> list[float]`.

The proxy RM (normalized by the run's shift and scale, and reporting each prompt group's reward variance
through TRL's `log_metric`) and the ground truth (raw, weight 0 in TRL's `reward_weights`: logged, never
trained on) are the same adapter with different settings.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..backends.rewards import check_finite
from ..core.chat import prompt_text
from ..core.errors import ItemError, UserError
from ..core.metrics import Normalization

# TRL logs each reward function's batch mean as `rewards/<__name__>/mean`.
PROXY_NAME, GOLD_NAME = "proxy", "gold"
PROXY_KEY, GOLD_KEY = f"rewards/{PROXY_NAME}/mean", f"rewards/{GOLD_NAME}/mean"
VARIANCE_KEY = "rmteach/reward_variance"  # logged through TRL's `log_metric`, one value per prompt group


class TrainingStopped(UserError):
    """The run stopped on a non-finite reward, loss or gradient; the message names the step."""


def completion_texts(completions: Sequence[Any]) -> list[str]:
    """TRL completions as plain text: conversational ones are `[{"role": "assistant", "content": ...}]`."""
    return [c[-1]["content"] if isinstance(c, list) else c for c in completions]


def group_variances(rewards: np.ndarray, prompts: Sequence[str]) -> list[float]:
    """Within-prompt variance (ddof=1) of each run of consecutive equal prompts with at least 2 samples.

    TRL lays a batch out prompt by prompt (`num_generations` copies in a row), so the runs are its groups; runs
    of one length (TRL's layout) take one vectorized call, which gives the same numbers as one call per run.

    >>> group_variances(np.array([1.0, 3.0, 0.0, 0.0]), ["a", "a", "b", "b"])
    [2.0, 0.0]
    """
    n, runs, start = len(prompts), [], 0
    for i in range(1, n + 1):
        if i == n or prompts[i] != prompts[start]:
            runs.append((start, i))
            start = i
    sizes = {b - a for a, b in runs}
    if len(sizes) == 1 and (m := sizes.pop()) >= 2:
        return np.var(np.asarray(rewards[:n]).reshape(-1, m), axis=1, ddof=1).tolist()  # (n // m,)
    return [float(np.var(rewards[a:b], ddof=1)) for a, b in runs if b - a >= 2]


# The train set's columns that carry rmteach's own view of a prompt (`trainer.train_dataset`); TRL passes every
# column to reward functions, and these are not handed on to the RM as extras.
TEXT_COLUMN, CHAT_COLUMN, ID_COLUMN = "rmteach_text", "rmteach_chat", "rmteach_id"
TRL_KWARGS = ("completion_ids", "log_extra", "environments")  # what TRL passes besides the data set's columns


class TRLReward:
    """A loaded reward model as a TRL reward function, on rmteach's prompts (so transforms pick prompts by text).

    Arguments:
        rm: a loaded reward model (`rmteach.backends.rewards.load_reward_model`, transform included).
        name: the function's name in TRL's logs (`proxy` or `gold`).
        norm: the run's normalization (the proxy), or None for raw rewards (the ground truth).
        log_variance: report each prompt group's variance of the returned rewards through `log_metric`.
    """

    def __init__(self, rm: Any, name: str, norm: Normalization | None = None, log_variance: bool = False) -> None:
        self.__name__ = name  # TRL names the reward function's logs after it
        self.rm, self.norm, self.log_variance = rm, norm, log_variance

    def score(self, prompts: Sequence[Any], responses: Sequence[str], *, step: int | None = None,
              ids: Sequence[str] | None = None, extras: Mapping[str, Sequence[Any]] | None = None) -> np.ndarray:
        """Rewards (n,) of prompt/response pairs (a prompt: `rmteach.core.data.Prompt.input`); `extras` are the
        set's other columns, one value per pair. A non-finite reward, or a reward function that raises or returns
        something else than numbers, stops the run naming the step (and the prompt id, given `ids`)."""
        where = f"step {step}: " if step is not None else ""
        try:
            kw = {"extras": dict(extras)} if extras else {}
            raw = self.rm.score(list(prompts), list(responses), **kw)
        except ItemError as e:
            err = e.named(list(ids)) if ids is not None else e
            raise TrainingStopped(f"{where}{err}") from e.__cause__
        except UserError as e:
            raise TrainingStopped(f"{where}{e}") from e.__cause__
        try:
            check_finite(self.rm.name, raw, prompts, ids)
        except UserError as e:
            raise TrainingStopped(f"{where}{e}") from None
        return self.norm.apply(raw) if self.norm is not None else raw

    def __call__(self, prompts: list[Any], completions: list[Any], trainer_state: Any = None,
                 log_metric: Any = None, **kwargs: Any) -> list[float]:
        """TRL's call: `prompts` and `completions` of the local batch, then every column of the train set as a
        list (rmteach's `rmteach_*` ones, the prompt set's extras) and TRL's own keyword arguments. The RM gets
        each prompt as rmteach loaded it (text or conversation) and the extra columns as `extras`; without
        rmteach's columns (a set built elsewhere) it gets TRL's prompts."""
        step = trainer_state.global_step + 1 if trainer_state is not None else None
        texts, chats, ids = kwargs.pop(TEXT_COLUMN, None), kwargs.pop(CHAT_COLUMN, None), kwargs.pop(ID_COLUMN, None)
        if texts is None:
            inputs, texts = list(prompts), [prompt_text(p) for p in prompts]
        else:
            inputs = [c if c else t for t, c in zip(texts, chats or [None] * len(texts))]
        extras = {k: v for k, v in kwargs.items() if k not in TRL_KWARGS}
        r = self.score(inputs, completion_texts(completions), step=step, ids=ids, extras=extras)  # (local batch,)
        if self.log_variance and log_metric is not None:
            for v in group_variances(r, texts):
                log_metric(VARIANCE_KEY, v)
        return r.tolist()


def proxy_reward(rm: Any, norm: Normalization) -> TRLReward:
    """The proxy RM: normalized, its prompt-group variances logged."""
    return TRLReward(rm, PROXY_NAME, norm, log_variance=True)


def gold_reward(rm: Any) -> TRLReward:
    """The ground truth: raw rewards, only logged (weight 0)."""
    return TRLReward(rm, GOLD_NAME)
