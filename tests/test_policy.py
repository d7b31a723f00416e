"""Sampling from a policy: shapes, seeding, chat formatting."""

from __future__ import annotations

from rmteach.config import PolicyConfig, SamplingConfig
from rmteach.data import Prompt
from rmteach.hf import format_prompt, load_tokenizer
from rmteach.policy import sample_responses

PROMPTS = [Prompt(str(i), t) for i, t in enumerate(["w1 w2", "w3", "w4 w5 w6 w7", "w0", "w8 w9"])]


def _sample(tiny, seed, batch_size=2, arch="policy_gpt2"):
    s = SamplingConfig(samples_per_prompt=3, max_new_tokens=5, batch_size=batch_size, seed=seed)
    return sample_responses(PolicyConfig(path=str(tiny[arch])), PROMPTS, s, device="cpu", dtype="float32")


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
