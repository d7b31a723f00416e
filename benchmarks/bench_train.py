"""Time `rmteach train` against the same TRL trainer with the same reward function and no tracking.

Both sides train the same tiny policy with the same `RLOOConfig` (built by `rmteach.train.trainer.build_trl_config`)
and the same proxy reward (a tiny HF reward model, normalized). The plain side is a bare `RLOOTrainer` with
that one reward function. The rmteach side adds what tracking costs per step: the ground truth scored as a
second reward function (weight 0), the per-prompt reward variance, the metrics.jsonl callback and TensorBoard.
Held-out evaluations (steps 0 and last here) are timed separately and left out of steps/s. Runs alternate
(plain, rmteach, plain, ...) so both see the same machine load; medians are printed, and last the ratio
rmteach steps/s / plain steps/s (1.0 = no overhead).

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--repeats 3] [--d 64] [--layers 2] [--new 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGETS = [f"t{i}" for i in range(8)]
FILLERS = [f"f{i}" for i in range(8)]


def gold(prompts, completions, **kwargs):
    """The ground truth of the benchmark: 1 + fraction of response words equal to the prompt's target."""
    out = []
    for p, c in zip(prompts, completions):
        target = TARGETS[(int(p.split()[0][1:]) + 3) % len(TARGETS)]
        words = c.split()
        out.append(1.0 + (sum(w == target for w in words) / len(words) if words else 0.0))
    return out


def build(root: Path, d: int, layers: int) -> dict[str, Path]:
    from rmteach.core.data import write_jsonl
    from rmteach.core.hf import quiet
    from rmteach.toy.tiny import build_policy, build_reward_model

    quiet()
    words = TARGETS + FILLERS
    build_policy(root / "policy", words, arch="gpt2", seed=0, d=d, layers=layers, heads=2)
    build_reward_model(root / "rm", words, arch="llama", seed=1, d=32, layers=1)
    write_jsonl(root / "train.jsonl", [{"prompt": f"t{i} f{i % 8} f{(i + 1) % 8}"} for i in range(16)])
    write_jsonl(root / "eval.jsonl", [{"prompt": f"t{i} f{(i + 4) % 8}"} for i in range(8)])
    return {"root": root}


def make_config(root: Path, args: argparse.Namespace, **extra):
    from rmteach.core.config import validate
    from rmteach.train.config import TrainConfig

    return validate(TrainConfig, {
        "policy": {"path": str(root / "policy")},
        "reward_model": {"name": "rm", "path": str(root / "rm"), "batch_size": 64},
        "ground_truth": {"name": "gold", "callable": "bench_train:gold"},
        "train_prompts": {"path": str(root / "train.jsonl")},
        "eval_prompts": {"path": str(root / "eval.jsonl")},
        "learning_rate": 3e-3, "steps": args.steps, "prompts_per_step": 8, "samples_per_prompt": 4,
        "max_new_tokens": args.new, "eval_every": None, "eval_samples_per_prompt": 4, "device": "cpu",
        "normalization": {"samples_per_prompt": 4},
        **extra,
    })


def plain_trl(cfg, out: Path, norm) -> float:
    """A bare TRL RLOOTrainer with the proxy reward only; returns the seconds of `trainer.train()`."""
    from transformers import AutoModelForCausalLM
    from transformers.trainer_callback import PrinterCallback

    from rmteach.core.hf import load_tokenizer
    from rmteach.core.data import load_prompts
    from rmteach.backends.rewards import load_reward_model
    from rmteach.train.trainer import build_trl_config, quiet_third_party, train_dataset, trainer_class

    plain_cfg = cfg.model_copy(update={"ground_truth": None, "report_to": []})
    args = build_trl_config(plain_cfg, out, cfg.steps, plain_cfg.layout(1), use_cpu=True)
    rm = load_reward_model(cfg.reward_model)

    def proxy(prompts, completions, raw_prompt, **kwargs):
        return norm.apply(rm.score(raw_prompt, [c[-1]["content"] for c in completions])).tolist()

    tok = load_tokenizer(cfg.policy.path, "policy", padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(cfg.policy.path)
    with quiet_third_party():
        trainer = trainer_class("rloo")(model=model, reward_funcs=[proxy], args=args,
                                        train_dataset=train_dataset(tok, load_prompts(cfg.train_prompts)),
                                        processing_class=tok)
        trainer.remove_callback(PrinterCallback)
        t = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--new", type=int, default=16, help="max new tokens")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))  # so that `bench_train:gold` imports

    import torch

    from rmteach.core.metrics import Normalization
    from rmteach.train.run import run_train

    torch.set_num_threads(1)  # what rmteach train does by default (cpu_threads: 1); same for both sides
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.d, args.layers)
        cfg = make_config(root, args)
        run_train(cfg, root / "warmup", overwrite=True)  # imports and first-call costs, for neither side
        norm = Normalization(**{k: v for k, v in json.loads((root / "warmup" / "run.json").read_text())
                                ["normalization"].items() if k != "source"})
        plain, tracked, evals, totals = [], [], [], []
        for r in range(args.repeats):
            plain.append(args.steps / plain_trl(cfg, root / f"plain{r}", norm))
            t = time.perf_counter()
            s = run_train(cfg, root / f"rmteach{r}", overwrite=True)
            totals.append(time.perf_counter() - t)
            tracked.append(s["timings"]["steps_per_second"])
            evals.append(s["timings"]["eval_seconds"])
    p, q = statistics.median(plain), statistics.median(tracked)
    print(json.dumps({
        "policy": f"gpt2 d={args.d} layers={args.layers}", "max_new_tokens": args.new,
        "batch": "8 prompts x 4 samples", "steps": args.steps,
        "plain_trl_steps_per_s": [round(x, 2) for x in plain],
        "rmteach_steps_per_s": [round(x, 2) for x in tracked],
        "rmteach_eval_seconds_(steps_0_and_last)": [round(x, 2) for x in evals],
        "rmteach_run_train_seconds_total": [round(x, 2) for x in totals],
    }, indent=1))
    print(f"rmteach/plain steps/s ratio: {q / p:.3f}  (overhead {100 * (1 - q / p):.1f} %)")


if __name__ == "__main__":
    main()
