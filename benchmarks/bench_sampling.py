"""Sampling throughput (samples/s) of the `hf` and `vllm` samplers on the same policy and prompts.

Each backend draws K responses per prompt with the same settings through `rmteach.backends.sampler`
(`sample_responses`: load, sample, free); the time printed is the sampling call alone, after a warm-up call
on a few prompts (CUDA kernels, vLLM's graphs). vLLM is timed only where it is installed and a GPU is there.

    python benchmarks/bench_sampling.py --policy PATH_OR_TOY_WORLD/policies/english --prompts PROMPTS.jsonl \
        [--n 256] [--k 8] [--max-new-tokens 64] [--device cuda] [--dtype bfloat16] [--backends hf vllm]
"""

from __future__ import annotations

import argparse
import json
import time

from rmteach.backends.sampler import SAMPLERS
from rmteach.core.blocks import DataConfig, PolicyConfig, SamplingConfig
from rmteach.core.data import load_prompts
from rmteach.core.hf import quiet, resolve_device


def time_backend(backend: str, policy: PolicyConfig, prompts: list[str], sampling: SamplingConfig, device: str,
                 dtype: str) -> dict:
    sampling = sampling.model_copy(update={"backend": backend})
    t0 = time.perf_counter()
    sampler = SAMPLERS[backend](policy, sampling, device=device, dtype=dtype)
    load_s = time.perf_counter() - t0
    try:
        sampler.sample(prompts[:4], sampling.samples_per_prompt, sampling.seed)  # warm-up
        t0 = time.perf_counter()
        out = sampler.sample(prompts, sampling.samples_per_prompt, sampling.seed)
        wall = time.perf_counter() - t0
    finally:
        sampler.close()
    n = sum(len(row) for row in out if row is not None)
    words = sum(len(r.split()) for row in out if row is not None for r in row)
    return {"backend": backend, "samples": n, "load_s": round(load_s, 2), "sample_s": round(wall, 3),
            "samples_per_s": round(n / wall, 1), "mean_words": round(words / n, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", required=True)
    ap.add_argument("--prompts", required=True, help="a prompt set (JSONL with a prompt column)")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32, help="prompts per generate call (hf)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--backends", nargs="+", default=["hf", "vllm"])
    args = ap.parse_args()
    quiet()
    device = resolve_device(args.device)
    prompts = [p.text for p in load_prompts(DataConfig(path=args.prompts, limit=args.n))]
    sampling = SamplingConfig(samples_per_prompt=args.k, max_new_tokens=args.max_new_tokens,
                              batch_size=args.batch_size, seed=0)
    results = []
    for backend in args.backends:
        try:
            results.append(time_backend(backend, PolicyConfig(path=args.policy), prompts, sampling, device, args.dtype))
        except Exception as e:  # noqa: BLE001 - a backend that cannot run here is reported, the others still run
            results.append({"backend": backend, "skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
        print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
