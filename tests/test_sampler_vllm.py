"""The vLLM sampler's own logic (requests, per-prompt seeds, shares), and its refusal where vLLM is missing.

vLLM itself is not installed here (it needs a CUDA machine): the engine is replaced by a stand-in whose output
is a function of (prompt token ids, seed, n), so what is checked is what rmteach sends and how it reassembles.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from helpers import run_cli, write_eval_config

from rmteach.backends.sampler_vllm import VLLMSampler
from rmteach.core.blocks import SamplingConfig
from rmteach.core.hf import load_tokenizer
from rmteach.core.chat import format_prompt

PROMPTS = ["w1 w2", "w3", "w4 w5 w6 w7", "w0", "w8 w9"]


class _Params:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Engine:
    """Completions drawn from the request's own seed: what a per-request-seeded engine gives."""

    def __init__(self, tok):
        self.tok, self.calls = tok, []

    def get_tokenizer(self):
        return self.tok

    def generate(self, requests, params, use_tqdm=False):
        self.calls.append((requests, params))
        out = []
        for req, p in zip(requests, params):
            rng = np.random.default_rng([p.seed, *req["prompt_token_ids"]])
            texts = [" ".join(f"w{j}" for j in rng.integers(0, 12, p.max_tokens)) for _ in range(p.n)]
            outs = [types.SimpleNamespace(index=i, text=t) for i, t in enumerate(texts)][::-1]  # any order
            out.append(types.SimpleNamespace(outputs=outs))
        return out


@pytest.fixture
def engine(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=_Params))
    return _Engine(load_tokenizer(str(tiny["policy_gpt2"]), "policy", padding_side="left"))


def test_requests_are_the_formatted_prompts_with_one_seed_each(engine):
    s = SamplingConfig(samples_per_prompt=3, max_new_tokens=4, temperature=0.7, top_p=0.9)
    out = VLLMSampler(engine, s).sample(PROMPTS, 3, seed=10)
    (requests, params), = engine.calls
    assert [r["prompt_token_ids"] for r in requests] == [
        engine.tok(format_prompt(engine.tok, p), add_special_tokens=False).input_ids for p in PROMPTS]
    assert [p.seed for p in params] == [10, 11, 12, 13, 14]
    assert {(p.n, p.temperature, p.top_p, p.max_tokens) for p in params} == {(3, 0.7, 0.9, 4)}
    # Reassembled in prompt order and completion index order (the engine returned them reversed).
    rng = np.random.default_rng([12, *requests[2]["prompt_token_ids"]])
    assert out[2] == [" ".join(f"w{j}" for j in rng.integers(0, 12, 4)) for _ in range(3)]


def test_the_samples_do_not_depend_on_the_split_across_processes(engine):
    s = SamplingConfig(samples_per_prompt=2, max_new_tokens=5)
    sampler = VLLMSampler(engine, s)
    whole = sampler.sample(PROMPTS, 2, seed=3)
    for world in (2, 3):
        parts = [sampler.sample(PROMPTS, 2, seed=3, share=(r, world)) for r in range(world)]
        drawn = [[i for i, row in enumerate(part) if row is not None] for part in parts]
        assert sorted(i for d in drawn for i in d) == list(range(len(PROMPTS)))  # each prompt once
        merged = [next(part[i] for part in parts if part[i] is not None) for i in range(len(PROMPTS))]
        assert merged == whole


def test_without_vllm_installed_evaluate_says_how_to_get_it(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, as where it is not installed
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, sampling={"samples_per_prompt": 2, "backend": "vllm"})
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "out"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "pip install 'rmteach[vllm]'" in err and len(err.strip().splitlines()) == 1


def test_vllm_settings_need_the_vllm_backend():
    with pytest.raises(ValueError, match="'vllm' settings need backend: vllm"):
        SamplingConfig(vllm={"tensor_parallel_size": 2})
