"""Time `rmteach evaluate` against a plain loop on the same tiny models, side by side in one run.

The plain loop is what one writes first: `generate` prompt by prompt, then each RM over the responses in
fixed-size batches in their original order (padding to the longest in each batch), under `no_grad`.
rmteach batches prompts for generation, sorts scoring batches by length and runs under `inference_mode`.
Both sample with the same settings; the number printed last is plain time / rmteach time.

    .venv/bin/python benchmarks/bench_evaluate.py [--prompts 64] [--k 8] [--rms 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from rmteach.evaluate.config import EvaluateConfig
from rmteach.evaluate.run import evaluate
from rmteach.core.hf import quiet
from rmteach.core.chat import format_conversation, format_prompt
from rmteach.toy.tiny import build_policy, build_reward_model

WORDS = [f"w{i}" for i in range(40)]


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
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--rms", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    quiet()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_policy(root / "policy", WORDS, arch="gpt2", d=64, layers=2, heads=4, max_len=256, seed=0)
        rm_dirs = []
        for i in range(args.rms):
            build_reward_model(root / f"rm{i}", WORDS, arch="llama", d=64, layers=2, heads=4, max_len=256, seed=i + 1)
            rm_dirs.append(root / f"rm{i}")
        prompts = [" ".join(WORDS[(7 * i + j) % 40] for j in range(1 + i % 12)) for i in range(args.prompts)]
        (root / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
        cfg = EvaluateConfig.model_validate({
            "policy": {"path": str(root / "policy")},
            "reward_models": [{"name": f"rm{i}", "path": str(d), "batch_size": args.batch_size} for i, d in enumerate(rm_dirs)],
            "prompts": {"path": str(root / "prompts.jsonl")},
            "sampling": {"samples_per_prompt": args.k, "max_new_tokens": args.max_new_tokens, "batch_size": 16},
            "device": "cpu", "cache_dir": str(root / "cache"), "bootstrap_samples": 100,
        })
        # Warm up both paths once (imports, first-call allocations), then time each.
        plain_loop(root / "policy", rm_dirs[:1], prompts[:2], 2, 4, args.batch_size)
        t0 = time.perf_counter()
        evaluate(cfg)
        t_rm = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain_loop(root / "policy", rm_dirs, prompts, args.k, args.max_new_tokens, args.batch_size)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate(cfg.model_copy(update={"reward_models": cfg.reward_models + [cfg.reward_models[0].model_copy(update={"name": "again"})]}))
        t_add = time.perf_counter() - t0
    print(f"{args.prompts} prompts x {args.k} samples, {args.rms} RMs, max_new_tokens {args.max_new_tokens}")
    print(f"rmteach evaluate:            {t_rm:7.2f} s")
    print(f"plain generate + RM loop:    {t_plain:7.2f} s")
    print(f"rmteach, one more RM (cached samples): {t_add:7.2f} s")
    print(f"speed-up (plain / rmteach):  {t_plain / t_rm:7.2f}x")


if __name__ == "__main__":
    main()
