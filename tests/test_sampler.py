"""Sampling from a policy: shapes, seeding, chat formatting."""

from __future__ import annotations

import pytest

from rmteach.core.blocks import PolicyConfig, SamplingConfig
from rmteach.core.hf import load_tokenizer
from rmteach.core.chat import format_prompt
from rmteach.backends.sampler import sample_responses

PROMPTS = ["w1 w2", "w3", "w4 w5 w6 w7", "w0", "w8 w9"]


def _sample(tiny, seed, batch_size=2, arch="policy_gpt2"):
    s = SamplingConfig(samples_per_prompt=3, max_new_tokens=5, batch_size=batch_size, seed=seed)
    return sample_responses(PolicyConfig(path=str(tiny[arch])), PROMPTS, s, device="cpu", dtype="float32")


@pytest.mark.slow
def test_shapes_and_determinism(tiny):
    a = _sample(tiny, seed=1)
    assert len(a) == 5 and all(len(row) == 3 for row in a)
    assert all(len(r.split()) <= 5 for row in a for r in row)
    assert a == _sample(tiny, seed=1)
    assert a != _sample(tiny, seed=2)


def test_llama_policy_samples(tiny):
    out = _sample(tiny, seed=0, arch="policy_llama")
    assert len(out) == 5 and all(isinstance(r, str) for row in out for r in row)


def test_chat_template_formats_prompt(tiny):
    tok = load_tokenizer(str(tiny["policy_gpt2"]), "policy", padding_side="left")
    assert format_prompt(tok, "w1 w2") == "User: w1 w2 Assistant:"
def test_generate_responses_on_a_loaded_model_equals_sample_responses(world):
    from transformers import AutoModelForCausalLM

    from rmteach.backends.sampler import generate_responses, sample_responses
    from rmteach.core.blocks import PolicyConfig, SamplingConfig
    from rmteach.core.hf import load_tokenizer

    texts = ["t1 f2", "t3", "t4 f5 f6 f7"]
    s = SamplingConfig(samples_per_prompt=3, max_new_tokens=5, batch_size=2, seed=4)
    want = sample_responses(PolicyConfig(path=str(world / "policy")), texts, s, device="cpu", dtype="float32")
    tok = load_tokenizer(str(world / "policy"), "policy", padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(world / "policy").eval()
    assert generate_responses(model, tok, texts, s) == want
    assert tok.padding_side == "right"  # restored


def test_generate_responses_stops_at_every_eos_id_of_the_model(world):
    from transformers import AutoModelForCausalLM

    from rmteach.core.blocks import SamplingConfig
    from rmteach.core.hf import load_tokenizer
    from rmteach.backends.sampler import generate_responses

    tok = load_tokenizer(str(world / "policy"), "policy", padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(world / "policy").eval()
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids("t3")]  # as Llama 3 has
    out = generate_responses(model, tok, ["t1 f2", "t5"], SamplingConfig(samples_per_prompt=16, max_new_tokens=8))
    words = [r.split() for row in out for r in row]
    assert any("t3" in w for w in words)  # sampled, and then
    assert all(w.index("t3") == len(w) - 1 for w in words if "t3" in w)  # nothing after it




@pytest.mark.slow
def test_shares_of_processes_draw_disjoint_whole_batches_that_add_up_to_one_process(tiny):
    s = SamplingConfig(samples_per_prompt=3, max_new_tokens=5, batch_size=2, seed=4)
    policy = PolicyConfig(path=str(tiny["policy_gpt2"]))
    whole = sample_responses(policy, PROMPTS, s, device="cpu", dtype="float32")
    assert all(row is not None for row in whole)
    for world in (2, 3):
        parts = [sample_responses(policy, PROMPTS, s, device="cpu", dtype="float32", share=(r, world))
                 for r in range(world)]
        drawn = [{i for i, row in enumerate(part) if row is not None} for part in parts]
        assert set().union(*drawn) == set(range(len(PROMPTS))) and sum(map(len, drawn)) == len(PROMPTS)
        # 5 prompts in batches of 2 -> 3 batches; with 2 processes rank 0 draws batches 0 and 2 (3 prompts)
        assert [len(d) for d in drawn] == ([3, 2] if world == 2 else [2, 2, 1])
        assert [next(p[i] for p in parts if p[i] is not None) for i in range(len(PROMPTS))] == whole
