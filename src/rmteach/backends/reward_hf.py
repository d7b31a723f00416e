"""The Hugging Face reward backend: a sequence classifier with one output, scored in length-sorted batches.

The RM's tokenizer is independent of the policy's: it re-tokenizes the decoded text (through its chat
template when it has one). The checkpoint must hold a trained scalar head: a causal LM's folder, or a
classifier with another number of outputs, is refused unless the config sets `allow_new_head` (then the
head is initialised from a fixed seed, so scores are reproducible).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.blocks import RewardModelConfig
from ..core.errors import UserError
from ..core.hf import (check_vocab, format_conversation, from_pretrained, load_tokenizer, load_weights, max_positions,
                       quiet, torch_dtype)

HEAD_SEED = 0  # the seed of an allowed new head


class HFRewardModel:
    """An `AutoModelForSequenceClassification` with `num_labels == 1`, scored in length-sorted batches."""

    def __init__(self, cfg: RewardModelConfig, *, device: str, dtype: str) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification

        quiet()
        assert cfg.path is not None
        self.name, self.cfg, self.device = cfg.name, cfg, device
        what = f"reward model '{cfg.name}'"
        mcfg = from_pretrained(AutoConfig, cfg.path, what, trust_remote_code=cfg.trust_remote_code)
        saved = [a for a in getattr(mcfg, "architectures", None) or [] if isinstance(a, str)]
        lm = [a for a in saved if a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"))]
        if not cfg.allow_new_head:
            if lm and not any("Classification" in a or "Reward" in a for a in saved):
                raise UserError(
                    f"{what} at '{cfg.path}' holds a {', '.join(saved)}, not a sequence classifier: point 'path' at a "
                    "reward model (AutoModelForSequenceClassification with num_labels=1), or set allow_new_head: "
                    "true to score with a new, untrained head")
            if getattr(mcfg, "num_labels", 1) != 1:
                raise UserError(
                    f"{what} has {mcfg.num_labels} outputs; rmteach needs a scalar head "
                    "(AutoModelForSequenceClassification with num_labels=1)"
                )
        self.tokenizer = load_tokenizer(cfg.path, what, padding_side="right", trust_remote_code=cfg.trust_remote_code)
        with torch.random.fork_rng(devices=[]):  # a new head (allow_new_head) is the same every time
            torch.manual_seed(HEAD_SEED)
            self.model = load_weights(
                AutoModelForSequenceClassification, cfg.path, what, new_head_ok=cfg.allow_new_head, num_labels=1,
                dtype=torch_dtype(dtype, device), trust_remote_code=cfg.trust_remote_code,
                hint="point 'path' at a trained reward model, or set allow_new_head: true to score with a new head")
        check_vocab(self.tokenizer, self.model, cfg.path, what)
        self.model.to(device)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        limit = max_positions(self.model)
        self.max_length = min(cfg.max_length, limit) if limit else cfg.max_length  # beyond: an index error
        self._warned = False
        self._torch = torch

    def score(
        self, prompts: Sequence[Any], completions: Sequence[str], progress: Callable[[int], None] | None = None,
        *, extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> np.ndarray:
        torch = self._torch
        texts = [format_conversation(self.tokenizer, p, c) for p, c in zip(prompts, completions)]
        # Tokenize once, then batch by length: padding waste is what makes naive scoring slow.
        ids = self.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        if self.max_length < self.cfg.max_length and not self._warned and any(len(i) == self.max_length for i in ids):
            self._warn_cut(texts)
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

    def _warn_cut(self, texts: list[str]) -> None:
        """Say (once) that conversations longer than the model's positions were cut to fit them."""
        from ..core.progress import console

        cut = sum(len(i) > self.max_length for i in self.tokenizer(texts, add_special_tokens=False)["input_ids"])
        if cut:
            self._warned = True
            console().print(f"[yellow]warning:[/yellow] reward model '{self.name}' reads at most {self.max_length} "
                            f"tokens: {cut} of {len(texts)} conversations were cut to that length", soft_wrap=True)

    def close(self) -> None:
        import gc

        del self.model
        gc.collect()
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()
