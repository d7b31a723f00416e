"""The Hugging Face reward backend: a sequence classifier with one output, scored in length-sorted batches.

The RM's tokenizer is independent of the policy's: it re-tokenizes the decoded text (through its chat
template when it has one).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..core.blocks import RewardModelConfig
from ..core.errors import UserError
from ..core.hf import format_conversation, from_pretrained, load_tokenizer, quiet, torch_dtype


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
