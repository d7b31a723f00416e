"""Training the toy world's models: supervised fine-tuning of policies, Bradley-Terry training of RMs.

Both are short plain PyTorch loops rather than TRL's SFTTrainer / RewardTrainer: the toy's models have under
100k parameters and train in seconds, the trainers' start-up, dataset processing and logging would cost more
than the training, and a plain loop seeded once is bit-for-bit deterministic on CPU. The loss is
the one TRL's RewardTrainer uses (-log sigmoid(r_chosen - r_rejected)), and conversations are tokenized with `rmteach.hf.format_conversation`, exactly as `HFRewardModel` scores them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..backends.reward_hf import pad_rows
from ..core.chat import format_conversation, format_prompt

Progress = Callable[[int], None]


@dataclass(frozen=True)
class FitSettings:
    """Optimisation settings shared by both loops (AdamW, linear decay to zero)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0


def encode(tok: Any, prompts: Sequence[str], responses: Sequence[str]) -> tuple[list[list[int]], list[int]]:
    """Token ids of each chat-formatted (prompt, response) and where its response starts.

    Returns:
        (ids per conversation, index of the first response token in each).
    """
    ids, starts = [], []
    for p, r in zip(prompts, responses):
        head = tok(format_prompt(tok, p), add_special_tokens=False)["input_ids"]
        full = tok(format_conversation(tok, p, r), add_special_tokens=False)["input_ids"]
        assert full[: len(head)] == head, "the chat template must extend the generation prompt"
        ids.append(full)
        starts.append(len(head))
    return ids, starts


def _optimizer(model: Any, s: FitSettings, total_steps: int):
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / max(1, total_steps)))
    return opt, sched


def _batches(n: int, batch_size: int, epochs: int, rng: np.random.Generator):
    """Index batches: a fresh permutation each epoch, the last short batch kept."""
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def fit_policy(
    model: Any, tok: Any, prompts: Sequence[str], responses: Sequence[str], s: FitSettings, *, seed: int,
    progress: Progress | None = None,
) -> float:
    """Supervised fine-tuning on demonstrations: cross-entropy on the response tokens and the closing EOS.

    Arguments:
        model: an `AutoModelForCausalLM`, trained in place.
        tok: its tokenizer (with the chat template).
        prompts, responses: the demonstrations.
        s: optimisation settings.
        seed: seeds the batch order and dropout.
        progress: called with 1 after each step.

    Returns:
        The mean loss over the last epoch (nats per response token).
    """
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ids, starts = encode(tok, prompts, responses)
    steps_per_epoch = math.ceil(len(ids) / s.batch_size)
    opt, sched = _optimizer(model, s, steps_per_epoch * s.epochs)
    model.train()
    losses: list[float] = []
    for step, idx in enumerate(_batches(len(ids), s.batch_size, s.epochs, rng)):
        batch, mask = pad_rows([ids[i] for i in idx], tok.pad_token_id)  # (B, T)
        labels = batch.clone()
        for row, i in enumerate(idx):
            labels[row, : starts[i]] = -100  # no loss on the prompt: the policy learns to answer
        labels[mask == 0] = -100
        loss = model(input_ids=batch, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step >= steps_per_epoch * (s.epochs - 1):
            losses.append(loss.item())
        if progress:
            progress(1)
    model.eval()
    return float(np.mean(losses))


def reward_scores(model: Any, ids: list[list[int]], pad: int, batch_size: int = 256) -> np.ndarray:
    """Scalar rewards of already-tokenized conversations, in order. Returns (n,) float64."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            batch, mask = pad_rows(ids[start : start + batch_size], pad)
            out.append(model(input_ids=batch, attention_mask=mask).logits[:, 0].double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def fit_reward_model(
    model: Any, tok: Any, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str],
    s: FitSettings, *, seed: int, progress: Progress | None = None,
) -> float:
    """Bradley-Terry training: minimise -log sigmoid(r(chosen) - r(rejected)) over the pairs.

    Arguments:
        model: an `AutoModelForSequenceClassification` with one output, trained in place.
        tok: its tokenizer (with the chat template).
        prompts, chosen, rejected: the preference pairs.
        s: optimisation settings.
        seed: seeds the batch order and dropout.
        progress: called with 1 after each step.

    Returns:
        The training accuracy (share of pairs with r(chosen) > r(rejected)) after training.
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ids_c, _ = encode(tok, prompts, chosen)
    ids_r, _ = encode(tok, prompts, rejected)
    n = len(ids_c)
    steps_per_epoch = math.ceil(n / s.batch_size)
    opt, sched = _optimizer(model, s, steps_per_epoch * s.epochs)
    model.train()
    for idx in _batches(n, s.batch_size, s.epochs, rng):
        # Chosen and rejected in one forward pass: rows [0, B) chosen, [B, 2B) rejected.
        batch, mask = pad_rows([ids_c[i] for i in idx] + [ids_r[i] for i in idx], tok.pad_token_id)
        r = model(input_ids=batch, attention_mask=mask).logits[:, 0]  # (2B,)
        loss = -F.logsigmoid(r[: len(idx)] - r[len(idx) :]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress:
            progress(1)
    model.eval()
    rc = reward_scores(model, ids_c, tok.pad_token_id)
    rr = reward_scores(model, ids_r, tok.pad_token_id)
    return float(np.mean(rc > rr))
