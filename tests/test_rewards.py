"""Reward backends: batching must not change scores; tokenizers are the RM's own; the scaling transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rmteach.core.blocks import RewardModelConfig, ScaleTransform
from rmteach.backends.rewards import apply_transform, load_reward_model, scaled_prompt_mask

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


def test_scale_mask_depends_only_on_seed_and_prompt_text():
    prompts = [f"prompt {i}" for i in range(400)]
    half = scaled_prompt_mask(prompts, ScaleTransform(fraction=0.5, seed=3))
    assert 160 <= half.sum() <= 240  # Binomial(400, 0.5) within 4 sd
    # The same text is scaled the same way wherever it appears, whatever set it comes in.
    shuffled = prompts[::-1][:57] + ["another prompt"]
    assert scaled_prompt_mask(shuffled, ScaleTransform(fraction=0.5, seed=3)).tolist() == half[::-1][:57].tolist() + [
        scaled_prompt_mask(["another prompt"], ScaleTransform(fraction=0.5, seed=3))[0]]
    # A larger fraction scales a superset; fractions 0 and 1 scale none and all; another seed another half.
    quarter = scaled_prompt_mask(prompts, ScaleTransform(fraction=0.25, seed=3))
    assert (quarter <= half).all() and quarter.sum() < half.sum()
    assert not scaled_prompt_mask(prompts, ScaleTransform(fraction=0.0, seed=3)).any()
    assert scaled_prompt_mask(prompts, ScaleTransform(fraction=1.0, seed=3)).all()
    other = scaled_prompt_mask(prompts, ScaleTransform(fraction=0.5, seed=4))
    assert 120 <= (other != half).sum() <= 280  # independent halves disagree on about half the prompts
    r = np.arange(400, dtype=float)
    np.testing.assert_allclose(apply_transform(r, prompts, ScaleTransform(fraction=0.5, factor=0.001, seed=3)),
                               np.where(half, r * 0.001, r))

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


@pytest.mark.parametrize("transform", [None, ScaleTransform(fraction=0.5, factor=0.01)])
def test_processes_scoring_their_shares_give_one_process_scores_bit_for_bit(tiny, transform):
    from rmteach.backends.rewards import score_grid, share_items

    prompts = [" ".join(f"w{j}" for j in range(i % 5 + 1)) for i in range(11)]
    responses = [[" ".join(f"w{(i + j) % 12}" for j in range(m + 1)) for m in (1, 6, 3)] for i in range(11)]
    rm = load_reward_model(RewardModelConfig(name="r", path=str(tiny["rm_llama"]), batch_size=4, transform=transform))
    try:
        whole = score_grid(rm, prompts, responses)
        for world in (2, 3):
            parts = [score_grid(rm, prompts, responses, share=(r, world)) for r in range(world)]
            done = [np.isfinite(p) for p in parts]
            assert (sum(d.astype(int) for d in done) == 1).all()  # every pair scored by exactly one process
            assert all(d.any() for d in done)
            merged = np.where(done[0], parts[0], 0.0) + sum(np.where(d, p, 0.0) for d, p in zip(done[1:], parts[1:]))
            assert merged.tobytes() == whole.tobytes()
            # whole batches of 4 of the 33 pairs, by token length, dealt round-robin
            flat_p = [p for p in prompts for _ in range(3)]
            flat_r = [r for row in responses for r in row]
            sizes = [len(share_items(rm, flat_p, flat_r, (r, world))) for r in range(world)]
            batches = [4] * 8 + [1]
            assert sizes == [sum(batches[r::world]) for r in range(world)]
    finally:
        rm.close()


def test_a_callable_failing_on_a_conversation_names_its_text(monkeypatch):
    # The message shows the prompt's text (`prompt_text`: the transcript), not the repr of a list of messages.
    from rmteach.core.errors import ItemError

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    rm = load_reward_model(RewardModelConfig(name="j", callable="rm_fns:raises"))
    convo = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with pytest.raises(ItemError) as e:
        rm.score([convo], ["Hello"])
    assert "('System: Be brief.\\n\\nUser: Hi')" in str(e.value) and "{'role'" not in str(e.value)
