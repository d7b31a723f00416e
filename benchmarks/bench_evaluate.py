"""Time `rmteach evaluate` against a plain loop on the same toy models, side by side in one run.

The plain loop is what one writes first: `generate` prompt by prompt, then each RM over the responses in
fixed-size batches in their original order (padding to the longest in each batch), under `no_grad`.
rmteach batches prompts for generation, sorts scoring batches by length and runs under `inference_mode`.
Both sample with the same settings; the number printed last is plain time / rmteach time. The models are
the toy world's first policy and its first `--rms` HF reward models, the prompts its eval set (`--world`, or
the tiny world built in a temp folder).

    python benchmarks/bench_evaluate.py [--world PATH] [--prompts 64] [--k 8] [--rms 3] [--smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from benchlib import add_options, fail, run, save, toy_world
from rmteach.core.blocks import DataConfig
from rmteach.core.data import load_prompts
from rmteach.core.chat import format_conversation, format_prompt
from rmteach.core.hf import quiet
from rmteach.evaluate.config import EvaluateConfig
from rmteach.evaluate.run import evaluate


def plain_loop(policy_dir: Path, rm_dirs: list[Path], prompts: list[str], k: int, max_new: int, bs: int) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir).eval()
    responses = []
    torch.manual_seed(0)
    with torch.no_grad():
        for p in prompts:
            enc = tok(format_prompt(tok, p), return_tensors="pt", add_special_tokens=False)
            out = model.generate(**enc, do_sample=True, top_k=0, max_new_tokens=max_new, num_return_sequences=k,
                                 pad_token_id=tok.pad_token_id)
            responses += tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
    flat_prompts = [p for p in prompts for _ in range(k)]
    for rm_dir in rm_dirs:
        rtok = AutoTokenizer.from_pretrained(rm_dir)
        rm = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
        texts = [format_conversation(rtok, p, r) for p, r in zip(flat_prompts, responses)]
        with torch.no_grad():
            for s in range(0, len(texts), bs):
                enc = rtok(texts[s : s + bs], return_tensors="pt", padding=True, add_special_tokens=False)
                rm(**enc).logits[:, 0].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64, help="the first N of the world's eval prompts")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--rms", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads, both sides (1: tiny models on a "
                    "shared machine lose time to more)")
    add_options(ap)
    args = ap.parse_args()
    if args.smoke:
        args.prompts, args.k, args.rms, args.max_new_tokens = 4, 2, 1, 4
    quiet()
    torch.set_num_threads(args.threads)
    with toy_world(args.world) as world, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = json.loads((world / "manifest.json").read_text())
        policy_dir = world / manifest["policies"][0]["path"]
        rm_dirs = [world / e["config"]["path"] for e in manifest["reward_models"] if "path" in e["config"]]
        if len(rm_dirs) < args.rms + 1:  # one more for the "one more RM" run
            fail(f"--rms {args.rms}: the world has {len(rm_dirs)} HF reward models (at most --rms {len(rm_dirs) - 1})")
        rm_dirs, extra_dir = rm_dirs[: args.rms], rm_dirs[args.rms]
        data = DataConfig(path=str(world / manifest["prompts"]["eval"]), limit=args.prompts)
        prompts = [p.text for p in load_prompts(data)]
        cfg = EvaluateConfig.model_validate({
            "policy": {"path": str(policy_dir)},
            "reward_models": [{"name": f"rm{i}", "path": str(d), "batch_size": args.batch_size}
                              for i, d in enumerate(rm_dirs)],
            "prompts": data.model_dump(exclude_unset=True),
            "sampling": {"samples_per_prompt": args.k, "max_new_tokens": args.max_new_tokens, "batch_size": 16},
            "device": "cpu", "cache_dir": str(root / "cache"), "bootstrap_samples": 100,
        })
        # Warm up both paths once (imports, first-call allocations), then time each.
        plain_loop(policy_dir, rm_dirs[:1], prompts[:2], 2, 4, args.batch_size)
        evaluate(cfg.model_copy(update={
            "reward_models": cfg.reward_models[:1], "cache_dir": str(root / "warmup"),
            "prompts": cfg.prompts.model_copy(update={"limit": 2}),
            "sampling": cfg.sampling.model_copy(update={"samples_per_prompt": 2, "max_new_tokens": 4})}))
        t0 = time.perf_counter()
        evaluate(cfg)
        t_rm = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain_loop(policy_dir, rm_dirs, prompts, args.k, args.max_new_tokens, args.batch_size)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        # Another RM (the same one would only hit the score cache): samples come from the cache, it is scored.
        again = cfg.reward_models[0].model_copy(update={"name": "again", "path": str(extra_dir)})
        evaluate(cfg.model_copy(update={"reward_models": cfg.reward_models + [again]}))
        t_add = time.perf_counter() - t0
    print(f"{len(prompts)} prompts x {args.k} samples, {args.rms} RMs, max_new_tokens {args.max_new_tokens}")
    print(f"rmteach evaluate:            {t_rm:7.2f} s")
    print(f"plain generate + RM loop:    {t_plain:7.2f} s")
    print(f"rmteach, one more RM (cached samples): {t_add:7.2f} s")
    print(f"speed-up (plain / rmteach):  {t_plain / t_rm:7.2f}x")
    sizes = {"policy": policy_dir.name, "reward_models": [d.name for d in rm_dirs], "prompts": len(prompts),
             "k": args.k, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
             "threads": args.threads, "smoke": args.smoke}
    save(args.json, "evaluate", {"speedup": t_plain / t_rm, "rmteach_s": t_rm, "plain_s": t_plain,
                                 "one_more_rm_s": t_add}, sizes)


if __name__ == "__main__":
    run(main)
