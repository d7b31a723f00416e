"""Reward backends: batching must not change scores; tokenizers are the RM's own; the scaling transform."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rmteach.config import RewardModelConfig, ScaleTransform
from rmteach.rewards import apply_transform, load_reward_model, scaled_prompt_mask

PROMPTS = ["w1 w2", "w3", "w4 w5 w6 w7", "w0"] * 3
RESPONSES = ["w1", "w2 w3 w4 w5 w6", "w7 w8", "w9 w10 w11 w0 w1 w2 w3"] * 3


@pytest.mark.parametrize("rm_key", ["rm_llama", "rm_other_tok"])
def test_batched_sorted_scores_equal_one_at_a_time(tiny, rm_key):
    rm = load_reward_model(RewardModelConfig(name="r", path=str(tiny[rm_key]), batch_size=5))
    got = rm.score(PROMPTS, RESPONSES)
    rm.close()
    # Independent path: each pair alone, no padding, through the model's own tokenizer and template.
    tok = AutoTokenizer.from_pretrained(tiny[rm_key])
    model = AutoModelForSequenceClassification.from_pretrained(tiny[rm_key]).eval()
    expected = []
    for p, r in zip(PROMPTS, RESPONSES):
        if tok.chat_template:
            text = tok.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
            )
        else:
            text = p + r
        ids = tok(text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            expected.append(model(**ids).logits[0, 0].item())
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_other_tokenizer_really_differs(tiny):
    a = AutoTokenizer.from_pretrained(tiny["rm_llama"])
    b = AutoTokenizer.from_pretrained(tiny["rm_other_tok"])
    assert a("w1").input_ids != b("w1").input_ids and b.chat_template is None


def test_scale_mask_is_the_seeded_hash_by_hand():
    t = ScaleTransform(fraction=0.5, factor=0.001, seed=3)
    prompts = [f"prompt {i}" for i in range(200)]
    by_hand = [
        int.from_bytes(hashlib.sha256(f"3\x00{p}".encode()).digest()[:8], "big") / 2**64 < 0.5 for p in prompts
    ]
    assert scaled_prompt_mask(prompts, t).tolist() == by_hand
    assert 70 < sum(by_hand) < 130  # about half
    r = np.arange(200, dtype=float)
    out = apply_transform(r, prompts, t)
    np.testing.assert_allclose(out, np.where(by_hand, r * 0.001, r))
    # The same prompt text is scaled the same way wherever it appears.
    assert scaled_prompt_mask(prompts[:5] * 2, t).tolist() == by_hand[:5] * 2


def test_transformed_callable_keeps_order_within_prompts():
    cfg = RewardModelConfig(name="s", callable="rm_fns:gold", transform=ScaleTransform(fraction=1.0, factor=0.001))
    rm = load_reward_model(cfg)
    plain = load_reward_model(RewardModelConfig(name="g", callable="rm_fns:gold"))
    np.testing.assert_allclose(rm.score(PROMPTS, RESPONSES), 0.001 * plain.score(PROMPTS, RESPONSES))


def test_close_frees_weights_while_the_wrapper_is_still_referenced(tiny):
    import gc
    import weakref

    rm = load_reward_model(RewardModelConfig(name="r", path=str(tiny["rm_llama"])))
    ref = weakref.ref(rm.model)
    rm.close()
    gc.collect()
    assert ref() is None and rm is not None
