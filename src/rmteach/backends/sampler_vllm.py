"""The vLLM sampler: K responses per prompt from vLLM's offline engine (`sampling.backend: vllm`).

An optional extra (`pip install 'rmteach[vllm]'`, a CUDA machine). Each prompt is one request with its own seed,
`sampling.seed + its index` in the prompt set, so the samples depend neither on the batch size nor on how
prompts are split across processes (process r of w draws prompts r, r + w, ...). Prompts are formatted as for
the HF sampler (the policy's chat template, `rmteach.core.chat.format_prompt`) and passed as token ids, so vLLM
adds no second BOS. Sampling is plain: temperature, top_p, no top-k, up to `max_new_tokens`, stopping at the
model's end-of-sequence tokens (vLLM reads them from the checkpoint's generation config).

Not checked on a GPU in this repository's tests (no vLLM here); see the README's limits.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..core.blocks import PolicyConfig, SamplingConfig, VLLMOptions
from ..core.errors import UserError, first_line
from ..core.chat import format_prompt

Progress = Callable[[int], None]


def require_vllm() -> Any:
    """The vllm module, or a one-line `UserError` saying how to install it."""
    try:
        import vllm
    except ImportError:
        raise UserError("sampling.backend: vllm needs vLLM, which is not installed: pip install 'rmteach[vllm]' "
                        "(a machine with a CUDA GPU), or use backend: hf") from None
    return vllm


def request_seeds(n: int, seed: int, share: tuple[int, int]) -> list[tuple[int, int]]:
    """(prompt index, request seed) of the prompts this process draws: every world-th prompt, seed + index.

    >>> request_seeds(5, 100, (1, 2))
    [(1, 101), (3, 103)]
    """
    rank, world = share
    return [(i, seed + i) for i in range(rank, n, world)]


class VLLMSampler:
    """Sampling with vLLM's `LLM.generate`, one seeded request per prompt.

    Arguments:
        llm: a `vllm.LLM` holding the policy.
        sampling: temperature, top_p, max_new_tokens (K and the seed are the `sample` call's).
    """

    def __init__(self, llm: Any, sampling: SamplingConfig) -> None:
        self.llm, self.sampling = llm, sampling

    @classmethod
    def load(cls, policy: PolicyConfig, sampling: SamplingConfig, *, device: str, dtype: str) -> "VLLMSampler":
        """Start vLLM's engine on the policy (tensor parallel size and memory share from `sampling.vllm`)."""
        vllm = require_vllm()
        if not device.startswith("cuda"):
            raise UserError(f"sampling.backend: vllm samples on CUDA GPUs, and this run's device is {device}: use "
                            "backend: hf, or run on a GPU machine")
        opts = sampling.vllm or VLLMOptions()
        try:
            llm = vllm.LLM(model=policy.path, dtype=dtype, seed=sampling.seed,
                           trust_remote_code=policy.trust_remote_code, tensor_parallel_size=opts.tensor_parallel_size,
                           gpu_memory_utilization=opts.gpu_memory_utilization, enforce_eager=opts.enforce_eager,
                           max_model_len=opts.max_model_len)
        except (OSError, ValueError, RuntimeError) as e:
            first = first_line(e)
            raise UserError(f"vLLM could not load the policy '{policy.path}': {first}") from e
        return cls(llm, sampling)

    def sample(self, prompts: Sequence[Any], k: int, seed: int, progress: Progress | None = None, *,
               share: tuple[int, int] = (0, 1)) -> list[list[str] | None]:
        vllm = require_vllm()
        tok = self.llm.get_tokenizer()
        mine = request_seeds(len(prompts), seed, share)
        requests = [{"prompt_token_ids": tok(format_prompt(tok, prompts[i]), add_special_tokens=False).input_ids}
                    for i, _ in mine]
        params = [vllm.SamplingParams(n=k, temperature=self.sampling.temperature, top_p=self.sampling.top_p, top_k=-1,
                                      max_tokens=self.sampling.max_new_tokens, seed=s, skip_special_tokens=True)
                  for _, s in mine]
        try:
            results = self.llm.generate(requests, params, use_tqdm=False)
        except ValueError as e:  # vLLM's check of a prompt longer than the model's context
            raise UserError(f"vLLM refused a prompt: {first_line(e)}") from e
        out: list[list[str] | None] = [None] * len(prompts)
        for (i, _), result in zip(mine, results):
            out[i] = [c.text for c in sorted(result.outputs, key=lambda c: c.index)]
        if progress:
            progress(len(mine))
        return out

    def close(self) -> None:
        from accelerate.utils.memory import clear_device_cache

        del self.llm
        clear_device_cache(garbage_collection=True)
