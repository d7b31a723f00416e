"""Reward models: one protocol, the backends' registry, transforms, and scoring on the (prompt, sample) grid.

A backend scores (prompt, completion) text pairs and returns one float each. Backends, one file each:
`reward_hf` (a Hugging Face sequence classifier), `reward_callable` (a Python function with TRL's reward
signature), `reward_http` (a served RM), `reward_custom` (a scorer your builder makes) and `reward_judge` (an
LLM judge: a causal LM's log-probabilities of answer labels). A new backend is one file plus one line in
`BACKENDS`. `TransformedRewardModel` wraps any of them with the paper's low-variance
transform. `score_grid` is how every command scores samples: K responses per prompt in, an (n, K) array of
finite rewards out.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from ..core.blocks import RewardModelConfig, ScaleTransform
from ..core.chat import prompt_text
from ..core.errors import ItemError, UserError

Progress = Callable[[int], None]
Share = tuple[int, int]  # (this process's rank, number of processes)


class RewardModel(Protocol):
    """What every backend offers."""

    name: str

    def score(
        self, prompts: Sequence[Any], completions: Sequence[str], progress: Callable[[int], None] | None = None,
        *, extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> np.ndarray:
        """Rewards of shape (n,) as float64 for n (prompt, completion) pairs.

        A prompt is a string, or a conversation (a list of `{role, content}` messages before the response).
        `extras` holds the data set's other columns, one list of n values per column (TRL passes them to
        reward functions as keyword arguments); a backend that has no use for them ignores them.
        """
        ...

    def close(self) -> None:
        """Free the weights (GPU memory must not grow with the number of RMs scored)."""
        ...


def _hf(cfg: RewardModelConfig, device: str, dtype: str) -> RewardModel:
    from .reward_hf import HFRewardModel

    return HFRewardModel(cfg, device=device, dtype=dtype)


def _callable(cfg: RewardModelConfig, device: str, dtype: str) -> RewardModel:
    from .reward_callable import CallableRewardModel

    return CallableRewardModel(cfg)


def _http(cfg: RewardModelConfig, device: str, dtype: str) -> RewardModel:
    from .reward_http import HTTPRewardModel

    return HTTPRewardModel(cfg.name, cfg.http)


def _custom(cfg: RewardModelConfig, device: str, dtype: str) -> RewardModel:
    from .reward_custom import CustomRewardModel

    return CustomRewardModel(cfg, device=device, dtype=dtype)


def _judge(cfg: RewardModelConfig, device: str, dtype: str) -> RewardModel:
    from .reward_judge import load_judge

    return load_judge(cfg, device=device, dtype=dtype)


# Which backend a config names: the first whose key is set (`path` -> hf, `callable` -> callable, ...).
BACKENDS: dict[str, Callable[[RewardModelConfig, str, str], RewardModel]] = {
    "path": _hf, "callable": _callable, "http": _http, "custom": _custom, "judge": _judge}


def load_reward_model(cfg: RewardModelConfig, *, device: str = "cpu", dtype: str = "float32") -> RewardModel:
    """Build the backend a config names, wrapped in its transform if it has one."""
    key = next(k for k in BACKENDS if getattr(cfg, k) is not None)
    rm = BACKENDS[key](cfg, device, dtype)
    return TransformedRewardModel(rm, cfg.transform) if cfg.transform is not None else rm


def check_reward_source(cfg: RewardModelConfig, what: str) -> None:
    """Fail before any weights load: a local model or tokenizer folder that does not exist, 8/4-bit loading without
    bitsandbytes or a GPU, a callable or custom builder that does not import."""
    from ..core.hf import check_model_ref, check_tokenizer_ref
    from .reward_callable import import_callable

    if cfg.path is not None:
        from .reward_hf import check_quantization

        check_model_ref(cfg.path, what)
        if cfg.tokenizer is not None:
            check_tokenizer_ref(cfg.tokenizer, f"{what} tokenizer")
        check_quantization(cfg, what)
    elif cfg.custom is not None:
        import_callable(cfg.custom.builder, f"{what} builder")
    elif cfg.callable is not None:
        import_callable(cfg.callable, what)
    elif cfg.judge is not None:
        from .reward_judge import check_judge

        check_judge(cfg, what)
    elif cfg.http is not None:
        from .reward_http import expand_headers

        expand_headers(cfg.http.headers, what)


def scaled_prompt_mask(prompts: Sequence[Any], t: ScaleTransform) -> np.ndarray:
    """Which prompts a `ScaleTransform` scales: a seeded hash of the prompt text mapped to [0, 1) < fraction.

    The choice depends only on (seed, prompt text), so it agrees across evaluation and training sets. A
    conversation's text is `rmteach.core.chat.prompt_text`: a one-user-turn conversation is chosen exactly
    as its text is.

    >>> scaled_prompt_mask(["a", "b"], ScaleTransform(fraction=1.0)).tolist()
    [True, True]
    >>> t = ScaleTransform(fraction=0.5, seed=3)
    >>> bool(scaled_prompt_mask(["Hi"], t)[0]) == bool(scaled_prompt_mask([[{"role": "user", "content": "Hi"}]], t)[0])
    True
    """
    u = []
    for p in prompts:
        digest = hashlib.sha256(f"{t.seed}\x00{prompt_text(p)}".encode()).digest()
        u.append(int.from_bytes(digest[:8], "big") / 2.0**64)
    return np.asarray(u) < t.fraction


def apply_transform(rewards: np.ndarray, prompts: Sequence[Any], t: ScaleTransform | None) -> np.ndarray:
    """Apply an RM transform to raw rewards of the given prompts (identity when `t` is None)."""
    r = np.asarray(rewards, dtype=np.float64)
    if t is None:
        return r
    return np.where(scaled_prompt_mask(prompts, t), r * t.factor, r)


class TransformedRewardModel:
    """Wrap a backend and apply its config's transform to every score."""

    def __init__(self, inner: RewardModel, transform: ScaleTransform) -> None:
        self.inner, self.transform, self.name = inner, transform, inner.name
        if hasattr(inner, "plan"):  # the transform is per pair: the inner backend's batch plan still holds
            self.plan = inner.plan

    def score(
        self, prompts: Sequence[Any], completions: Sequence[str], progress: Callable[[int], None] | None = None,
        *, extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> np.ndarray:
        raw = self.inner.score(prompts, completions, progress, extras=extras)
        return apply_transform(raw, prompts, self.transform)

    def close(self) -> None:
        self.inner.close()


def check_finite(name: str, rewards: np.ndarray, prompts: Sequence[Any], ids: Sequence[str] | None = None) -> None:
    """Raise a `UserError` naming the RM and the first prompt whose reward is NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(rewards))
    if bad.size:
        i = int(bad[0])
        which = f"prompt id '{ids[i]}'" if ids is not None else f"item {i}"
        text = prompt_text(prompts[i])[:60].replace("\n", " ")
        raise UserError(
            f"reward model '{name}' returned {rewards[i]} for {which} ({text!r}); "
            f"{bad.size} of {rewards.size} rewards are not finite"
        )


def share_items(rm: RewardModel, prompts: Sequence[Any], completions: Sequence[str], share: Share) -> np.ndarray:
    """The indices of the (prompt, completion) pairs this process scores, given `share` = (rank, world).

    A backend whose scores depend on which pairs share a batch (a padded forward pass rounds differently for
    another batch) offers `plan(prompts, completions) -> list of batches` (lists of indices); whole batches are
    then dealt round-robin, and scoring the union of a process's batches (in index order) forms exactly those
    batches, so every pair gets the same score as in one process. Other backends get contiguous blocks.

    >>> share_items(object(), ["p"] * 5, ["c"] * 5, (1, 2)).tolist()
    [3, 4]
    """
    rank, world = share
    n = len(prompts)
    if world == 1:
        return np.arange(n)
    plan = getattr(rm, "plan", None)
    if plan is None:
        return np.array_split(np.arange(n), world)[rank]
    mine = [np.asarray(b, dtype=np.int64) for b in plan(prompts, completions)[rank::world]]
    return np.sort(np.concatenate(mine)) if mine else np.zeros(0, dtype=np.int64)


def flatten_grid(
    prompts: Sequence[Any], responses: Sequence[Sequence[str]], ids: Sequence[str] | None = None,
    extras: Mapping[str, Sequence[Any]] | None = None,
) -> tuple[list[Any], list[str], list[str] | None, dict[str, list[Any]]]:
    """The (prompt, response) pairs of K responses per prompt, prompt by prompt: (prompts, responses, ids, extras),
    each of length n * K (extras: {column: values}); a prompt's id and extra values repeat for its K responses.

    >>> flatten_grid(["a", "b"], [["x", "y"], ["z", "w"]], ["0", "1"], {"ref": [1, 2]})
    (['a', 'a', 'b', 'b'], ['x', 'y', 'z', 'w'], ['0', '0', '1', '1'], {'ref': [1, 1, 2, 2]})
    """
    k = len(responses[0]) if len(responses) else 0

    def each(values: Sequence[Any]) -> list[Any]:
        return [v for v in values for _ in range(k)]

    return (each(prompts), [r for row in responses for r in row], each(ids) if ids is not None else None,
            {c: each(vals) for c, vals in (extras or {}).items()})


def score_grid(
    rm: RewardModel, prompts: Sequence[Any], responses: Sequence[Sequence[str]], *,
    ids: Sequence[str] | None = None, progress: Progress | None = None, share: Share = (0, 1),
    extras: Mapping[str, Sequence[Any]] | None = None,
) -> np.ndarray:
    """Score K responses per prompt with `rm`: (n_prompts, K) float64 raw rewards, all finite.

    Arguments:
        rm: a loaded reward model.
        prompts: n raw prompts (strings, or conversations: `rmteach.core.data.Prompt.input`).
        responses: (n, K) responses, K the same for every prompt.
        ids: the prompts' ids, for the message when a reward is not finite.
        extras: the prompts' other columns, {column: n values} (`rmteach.core.data.extras_of`); each value is
            repeated for the prompt's K responses and handed to `rm.score` (reward functions get them as kwargs).
        progress: called with the number of pairs scored after each batch.
        share: (rank, world): score only this process's pairs (`share_items`); the others come back NaN.

    Returns:
        (n, K) rewards; raises `UserError` naming the RM and the first prompt with a NaN or inf reward, or the
        first prompt of a call that failed (a callable that raised or returned something else than numbers).
    """
    k = len(responses[0]) if len(responses) else 0
    flat_p, flat_r, flat_ids, flat_x = flatten_grid(prompts, responses, ids, extras)  # (n * K,) each
    mine = share_items(rm, flat_p, flat_r, share)
    if share[1] > 1:
        flat_p, flat_r = [flat_p[i] for i in mine], [flat_r[i] for i in mine]
        flat_ids = [flat_ids[i] for i in mine] if flat_ids is not None else None
        flat_x = {c: [vals[i] for i in mine] for c, vals in flat_x.items()}
    try:
        kw = {"extras": flat_x} if flat_x else {}  # a backend without extras keeps its plain call
        raw = rm.score(flat_p, flat_r, progress, **kw) if flat_p else np.zeros(0)
    except ItemError as e:
        if flat_ids is None:
            raise
        raise e.named(flat_ids) from e.__cause__
    check_finite(rm.name, raw, flat_p, flat_ids)
    if share[1] > 1:
        out = np.full(len(prompts) * k, np.nan)
        out[mine] = raw
        raw = out
    return raw.reshape(len(prompts), k)
