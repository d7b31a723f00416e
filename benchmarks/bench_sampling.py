"""Sampling throughput (samples/s) of the `hf` and `vllm` samplers on the same policy and prompts.

Each backend draws K responses per prompt with the same settings through `rmteach.backends.sampler`
(`sample_responses`: load, sample, free); the time printed is the sampling call alone, after a warm-up call
on a few prompts (CUDA kernels, vLLM's graphs). vLLM is timed only where it is installed and a GPU is there.
Without `--policy` and `--prompts`: the toy world's first policy and its eval prompts (`--world`, or the
tiny world built in a temp folder).

    python benchmarks/bench_sampling.py [--world PATH | --policy PATH --prompts PROMPTS.jsonl] \
        [--n 256] [--k 8] [--max-new-tokens 64] [--device cuda] [--dtype auto] [--backends hf vllm] \
        [--smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path

from benchlib import add_options, fail, run, save, toy_world

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
    return {"backend": backend, "samples": n, "load_s": load_s, "sample_s": wall, "samples_per_s": n / wall,
            "mean_words": words / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", help="a causal LM folder or hub id (default: the toy world's first policy)")
    ap.add_argument("--prompts", help="a prompt set, JSONL with a prompt column (default: the toy world's eval set)")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, help="default: 16 on the toy world (its policies read 64 "
                    "positions), else 64")
    ap.add_argument("--batch-size", type=int, default=32, help="prompts per generate call (hf)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto: bfloat16 on CUDA, float32 on the CPU")
    ap.add_argument("--backends", nargs="+", default=["hf", "vllm"], choices=sorted(SAMPLERS))
    add_options(ap)
    args = ap.parse_args()
    if (args.policy is None) != (args.prompts is None):
        fail("give both --policy and --prompts, or neither (the toy world's)")
    if args.policy is not None and args.world is not None:
        fail("--world and --policy/--prompts exclude each other")
    if args.max_new_tokens is None:
        args.max_new_tokens = 16 if args.policy is None else 64
    if args.smoke:
        args.n, args.k, args.max_new_tokens = 8, 2, 8
    quiet()
    device = resolve_device(args.device)
    with toy_world(args.world) if args.policy is None else nullcontext(None) as world:
        if world is not None:
            manifest = json.loads((world / "manifest.json").read_text())
            args.policy = str(world / manifest["policies"][0]["path"])
            args.prompts = str(world / manifest["prompts"]["eval"])
        prompts = [p.text for p in load_prompts(DataConfig(path=args.prompts, limit=args.n))]
        sampling = SamplingConfig(samples_per_prompt=args.k, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, seed=0)
        results = []
        for backend in args.backends:
            try:
                results.append(time_backend(backend, PolicyConfig(path=args.policy), prompts, sampling, device,
                                            args.dtype))
            except Exception as e:  # noqa: BLE001 - a backend that cannot run here is reported, the others still run
                results.append({"backend": backend, "skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results[-1].items()}),
                  flush=True)
    timed = [r for r in results if "skipped" not in r]
    if not timed:
        fail("no backend could run here (see the lines above)")
    figures = {f"{r['backend']}_{key}": r[key] for r in timed for key in ("samples_per_s", "sample_s", "load_s")}
    sizes = {"policy": args.policy if world is None else "toy:" + Path(args.policy).name, "prompts": len(prompts),
             "k": args.k, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "device": device,
             "dtype": args.dtype, "smoke": args.smoke}
    save(args.json, "sampling", figures, sizes, results=results,
         skipped={r["backend"]: r["skipped"] for r in results if "skipped" in r})


if __name__ == "__main__":
    run(main)
