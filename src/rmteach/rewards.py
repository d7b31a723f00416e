"""Reward-model backends and transforms.

A backend scores (prompt, completion) text pairs and returns one float each:
- `HFRewardModel`: a Hugging Face sequence classifier with one output. The RM's tokenizer is independent of
  the policy's: it re-tokenizes the decoded text (through its chat template when it has one).
- `CallableRewardModel`: any function with TRL's reward-function signature
  `(prompts, completions, **kwargs) -> list[float]`, named as `module:attribute`.
`ScaledOnFraction` wraps either one with the paper's low-variance transform.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .config import RewardModelConfig, ScaleTransform
from .errors import UserError
from .hf import format_conversation, from_pretrained, load_tokenizer, quiet, torch_dtype


class RewardModel(Protocol):
    """What every backend offers."""

    name: str

    def score(
        self, prompts: Sequence[str], completions: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Rewards of shape (n,) as float64 for n (prompt, completion) pairs."""
        ...

    def close(self) -> None:
        """Free the weights (GPU memory must not grow with the number of RMs scored)."""
        ...


class HFRewardModel:
    """An `AutoModelForSequenceClassification` with `num_labels == 1`, scored in length-sorted batches."""

    def __init__(self, cfg: RewardModelConfig, *, device: str, dtype: str) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification

        quiet()
        assert cfg.path is not None
        self.name, self.cfg, self.device = cfg.name, cfg, device
        mcfg = from_pretrained(AutoConfig, cfg.path, f"reward model '{cfg.name}'", trust_remote_code=cfg.trust_remote_code)
        if getattr(mcfg, "num_labels", 1) != 1:
            raise UserError(
                f"reward model '{cfg.name}' has {mcfg.num_labels} outputs; rmteach needs a scalar head "
                "(AutoModelForSequenceClassification with num_labels=1)"
            )
        self.tokenizer = load_tokenizer(
            cfg.path, f"reward model '{cfg.name}'", padding_side="right", trust_remote_code=cfg.trust_remote_code
        )
        self.model = from_pretrained(
            AutoModelForSequenceClassification,
            cfg.path,
            f"reward model '{cfg.name}'",
            dtype=torch_dtype(dtype, device),
            trust_remote_code=cfg.trust_remote_code,
        ).to(device)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        self._torch = torch

    def score(
        self, prompts: Sequence[str], completions: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        torch = self._torch
        texts = [format_conversation(self.tokenizer, p, c) for p, c in zip(prompts, completions)]
        # Tokenize once, then batch by length: padding waste is what makes naive scoring slow.
        ids = self.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=self.cfg.max_length)[
            "input_ids"
        ]
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        out = np.empty(len(ids), dtype=np.float64)
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for start in range(0, len(order), self.cfg.batch_size):
                idx = order[start : start + self.cfg.batch_size]
                width = max(len(ids[i]) for i in idx)
                batch = torch.full((len(idx), width), pad, dtype=torch.long)  # (B, T), right padded
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    batch[row, : len(ids[i])] = torch.tensor(ids[i])
                    mask[row, : len(ids[i])] = 1
                logits = self.model(input_ids=batch.to(self.device), attention_mask=mask.to(self.device)).logits
                out[idx] = logits[:, 0].float().cpu().numpy()  # (B,)
                if progress:
                    progress(len(idx))
        return out

    def close(self) -> None:
        import gc

        del self.model
        gc.collect()
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()


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


def scaled_prompt_mask(prompts: Sequence[str], t: ScaleTransform) -> np.ndarray:
    """Which prompts a `ScaleTransform` scales: a seeded hash of the prompt text mapped to [0, 1) < fraction.

    The choice depends only on (seed, prompt text), so it agrees across evaluation and training sets.

    >>> scaled_prompt_mask(["a", "b"], ScaleTransform(fraction=1.0)).tolist()
    [True, True]
    """
    u = []
    for p in prompts:
        digest = hashlib.sha256(f"{t.seed}\x00{p}".encode()).digest()
        u.append(int.from_bytes(digest[:8], "big") / 2.0**64)
    return np.asarray(u) < t.fraction


def apply_transform(rewards: np.ndarray, prompts: Sequence[str], t: ScaleTransform | None) -> np.ndarray:
    """Apply an RM transform to raw rewards of the given prompts (identity when `t` is None)."""
    r = np.asarray(rewards, dtype=np.float64)
    if t is None:
        return r
    return np.where(scaled_prompt_mask(prompts, t), r * t.factor, r)


class TransformedRewardModel:
    """Wrap a backend and apply its config's transform to every score."""

    def __init__(self, inner: RewardModel, transform: ScaleTransform) -> None:
        self.inner, self.transform, self.name = inner, transform, inner.name

    def score(
        self, prompts: Sequence[str], completions: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        return apply_transform(self.inner.score(prompts, completions, progress), prompts, self.transform)

    def close(self) -> None:
        self.inner.close()


def load_reward_model(cfg: RewardModelConfig, *, device: str = "cpu", dtype: str = "float32") -> RewardModel:
    """Build the backend a config names, wrapped in its transform if it has one."""
    rm: RewardModel = (
        HFRewardModel(cfg, device=device, dtype=dtype) if cfg.path is not None else CallableRewardModel(cfg)
    )
    return TransformedRewardModel(rm, cfg.transform) if cfg.transform is not None else rm


def check_finite(name: str, rewards: np.ndarray, prompts: Sequence[str], ids: Sequence[str] | None = None) -> None:
    """Raise a `UserError` naming the RM and the first prompt whose reward is NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(rewards))
    if bad.size:
        i = int(bad[0])
        which = f"prompt id '{ids[i]}'" if ids is not None else f"item {i}"
        text = prompts[i][:60].replace("\n", " ")
        raise UserError(
            f"reward model '{name}' returned {rewards[i]} for {which} ({text!r}); "
            f"{bad.size} of {rewards.size} rewards are not finite"
        )
