"""Policy samplers: K responses per prompt from a causal LM.

One narrow interface, in the spirit of lm-evaluation-harness' `generate_until`: `Sampler.sample(prompts, k,
seed)` returns K decoded responses per raw prompt text. `HFSampler` uses Hugging Face `generate`; `VLLMSampler`
(`sampler_vllm.py`) uses vLLM. A new backend is one class with the same method plus one line in `SAMPLERS`.

Several processes (`accelerate launch`): `sample(..., share=(rank, world))` draws only this process's share and
returns None for the other prompts. The samples do not depend on how prompts are split across processes: the HF
sampler's unit of work is a whole seeded batch (the batches are formed from all prompts, batch b seeded with
`seed + b`, and process r draws batches r, r + world, ...), vLLM's is one prompt with its own seed.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from ..core.blocks import PolicyConfig, SamplingConfig
from ..core.hf import check_context, load_causal_lm, quiet, torch_dtype
from ..core.chat import format_prompt

Progress = Callable[[int], None]
Share = tuple[int, int]  # (this process's rank, number of processes)


class Sampler(Protocol):
    """What every sampling backend offers."""

    def sample(self, prompts: Sequence[Any], k: int, seed: int, progress: Progress | None = None, *,
               share: Share = (0, 1)) -> list[list[str] | None]:
        """(n_prompts, k) decoded responses, in the order of `prompts`; the same for the same seed, whatever
        `share` (rank, world): only this process's share is drawn, the other rows are None."""
        ...

    def close(self) -> None:
        """Free the weights."""
        ...


class HFSampler:
    """Sampling with Hugging Face `generate` (see `generate_responses` for batching and seeding).

    Arguments:
        model, tok: a causal LM on its device and its tokenizer (`load` builds both from a `PolicyConfig`).
        sampling: temperature, top_p, max_new_tokens and batch size (its K and seed are the `sample` call's).
    """

    def __init__(self, model: Any, tok: Any, sampling: SamplingConfig) -> None:
        self.model, self.tok, self.sampling = model, tok, sampling

    @classmethod
    def load(cls, policy: PolicyConfig, sampling: SamplingConfig, *, device: str, dtype: str) -> "HFSampler":
        """Load the policy's weights and tokenizer onto `device` (eval mode); refuse a checkpoint that is not a
        whole causal LM (`rmteach.core.hf.load_causal_lm`)."""
        quiet()
        model, tok = load_causal_lm(policy.path, "policy", padding_side="left", dtype=torch_dtype(dtype, device),
                                    device=device, trust_remote_code=policy.trust_remote_code)
        return cls(model, tok, sampling)

    def sample(self, prompts: Sequence[Any], k: int, seed: int, progress: Progress | None = None, *,
               share: Share = (0, 1)) -> list[list[str] | None]:
        settings = self.sampling.model_copy(update={"samples_per_prompt": k, "seed": seed})
        return generate_responses(self.model, self.tok, prompts, settings, progress=progress, share=share)

    def close(self) -> None:
        from accelerate.utils.memory import clear_device_cache

        del self.model
        clear_device_cache(garbage_collection=True)  # gc, then the GPU's cached blocks back to the driver


def _vllm(policy: PolicyConfig, sampling: SamplingConfig, *, device: str, dtype: str) -> Sampler:
    from .sampler_vllm import VLLMSampler

    return VLLMSampler.load(policy, sampling, device=device, dtype=dtype)


SAMPLERS: dict[str, Callable[..., Sampler]] = {"hf": HFSampler.load, "vllm": _vllm}


def check_sampler(sampling: SamplingConfig) -> None:
    """Fail before any work when the sampling backend cannot run here (vLLM not installed)."""
    if sampling.backend == "vllm":
        from .sampler_vllm import require_vllm

        require_vllm()


def sample_responses(
    policy: PolicyConfig,
    prompts: Sequence[str],
    sampling: SamplingConfig,
    *,
    device: str,
    dtype: str,
    progress: Progress | None = None,
    backend: str | None = None,
    share: Share = (0, 1),
) -> list[list[str] | None]:
    """Load a sampler, draw `sampling.samples_per_prompt` responses per prompt with `sampling.seed`, free it.

    Arguments:
        backend: a key of `SAMPLERS`; default `sampling.backend`.
        share: (rank, world) of this process; the rows of other processes' shares come back as None.

    Returns:
        (n_prompts, K) nested list of decoded responses, in the order of `prompts`.
    """
    sampler = SAMPLERS[backend or sampling.backend](policy, sampling, device=device, dtype=dtype)
    try:
        return sampler.sample(list(prompts), sampling.samples_per_prompt, sampling.seed, progress, share=share)
    finally:
        sampler.close()


def generate_responses(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    sampling: SamplingConfig,
    *,
    progress: Callable[[int], None] | None = None,
    share: Share = (0, 1),
) -> list[list[str] | None]:
    """Sample `sampling.samples_per_prompt` responses per raw prompt text from an already-loaded model.

    Prompts are formatted with the tokenizer's chat template when it has one, sorted by length and batched
    (left padding) so little compute goes to padding. Batch b is sampled after `torch.manual_seed(seed + b)`,
    so the result depends only on the weights, the prompts and the settings. With `share=(rank, world)` only
    batches rank, rank + world, ... are sampled (the others' rows are None): the samples drawn are the same as
    in one process. This sets the global torch
    RNG: a caller that must not disturb it (a training loop) wraps the call in `torch.random.fork_rng`.
    The model is used as it is (call `model.eval()` first to switch dropout off).

    Arguments:
        model: a causal LM on its device.
        tok: its tokenizer.
        prompts: raw prompt texts.
        sampling: K, temperature, top_p, max_new_tokens, batch size, seed.
        progress: called with the number of prompts finished after each batch.

    Returns:
        (n_prompts, K) nested list of decoded responses, in the order of `prompts`. A prompt too long for the
        model's positions raises `rmteach.core.errors.ItemError` (its index in `prompts`) before any sampling.
    """
    import torch

    check_context(tok, model, list(prompts), sampling.max_new_tokens, "policy")
    device = next(model.parameters()).device
    k = sampling.samples_per_prompt
    texts = [format_prompt(tok, p) for p in prompts]
    lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    out: list[list[str] | None] = [None for _ in prompts]
    rank, world = share
    model_eos = model.generation_config.eos_token_id  # an id or a list of ids (Llama 3: end of turn too)
    model_eos = list(model_eos) if isinstance(model_eos, (list, tuple)) else [model_eos]
    eos = sorted({t for t in [tok.eos_token_id, *model_eos] if t is not None})
    padding_side = tok.padding_side
    tok.padding_side = "left"  # generation continues the prompt: pad on the left
    try:
        with torch.inference_mode():
            for b, start in enumerate(range(0, len(order), sampling.batch_size)):
                if b % world != rank:
                    continue  # another process's batch
                idx = order[start : start + sampling.batch_size]
                enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                enc = {name: t.to(device) for name, t in enc.items()}
                torch.manual_seed(sampling.seed + b)
                gen = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    top_k=0,
                    max_new_tokens=sampling.max_new_tokens,
                    num_return_sequences=k,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=eos or None,
                )  # (len(idx) * k, prompt_len + new)
                new = gen[:, enc["input_ids"].shape[1] :]
                decoded = tok.batch_decode(new, skip_special_tokens=True)
                for j, i in enumerate(idx):
                    out[i] = decoded[j * k : (j + 1) * k]
                if progress:
                    progress(len(idx))
    finally:
        tok.padding_side = padding_side
    return out
