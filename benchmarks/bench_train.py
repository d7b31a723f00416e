"""Time `rmteach train` against the same TRL trainer with the same reward function and no tracking.

Both sides train the toy world's first policy with the same `RLOOConfig` (built by
`rmteach.train.trainer.build_trl_config`) and the same proxy reward (the world's first RM, normalized, through
rmteach's own reward adapter `TRLReward`, so the plain side follows any change of the reward-function
signature). The plain side is a bare `RLOOTrainer` with that one reward function and no logger. The rmteach
side adds what tracking costs per step: the ground truth scored as a second reward function (weight 0), the
per-prompt reward variance, the metrics.jsonl callback and TensorBoard. Held-out evaluations (steps 0 and
last) are timed separately and left out of steps/s. Runs alternate (plain, rmteach, plain, ...) so both see
the same machine load; the ratio printed last is median rmteach steps/s / median plain steps/s (1.0 = no
overhead), with the per-pair ratios as its spread.

    python benchmarks/bench_train.py [--world PATH] [--steps 30] [--repeats 3] [--new 16] [--smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import add_options, run, save, toy_world


def make_config(world: Path, args: argparse.Namespace):
    """The rmteach side's config: the world's first policy and RM, its ground truth, its prompt sets."""
    from rmteach.core.config import validate
    from rmteach.train.config import TrainConfig

    manifest = json.loads((world / "manifest.json").read_text())
    rm = dict(manifest["reward_models"][0]["config"])  # the first of the zoo: an HF reward model
    rm["path"] = str(world / rm["path"])
    return validate(TrainConfig, {
        "policy": {"path": str(world / manifest["policies"][0]["path"])},
        "reward_model": rm,
        "ground_truth": manifest["ground_truth"],
        "train_prompts": {"path": str(world / manifest["prompts"]["train"])},
        "eval_prompts": {"path": str(world / manifest["prompts"]["eval"]), "limit": 8},
        "learning_rate": 3e-3, "steps": args.steps, "prompts_per_step": 8, "samples_per_prompt": 4,
        "max_new_tokens": args.new, "eval_every": None, "eval_samples_per_prompt": 4, "device": "cpu",
        "normalization": {"samples_per_prompt": 4, "max_prompts": 16},
    })


def plain_trl(cfg, out: Path, norm) -> float:
    """A bare TRL RLOOTrainer with the proxy reward only; returns the seconds of `trainer.train()`."""
    import torch
    from transformers.trainer_callback import PrinterCallback

    from rmteach.backends.rewards import load_reward_model
    from rmteach.core.data import load_prompts
    from rmteach.core.hf import load_causal_lm
    from rmteach.train.rewards import PROXY_NAME, TRLReward
    from rmteach.train.trainer import build_trl_config, quiet_third_party, train_dataset, trainer_class

    plain_cfg = cfg.model_copy(update={"ground_truth": None, "report_to": []})
    args = build_trl_config(plain_cfg, out, cfg.steps, plain_cfg.layout(1), use_cpu=True)
    proxy = TRLReward(load_reward_model(cfg.reward_model, device="cpu", dtype=cfg.dtype), PROXY_NAME, norm)
    model, tok = load_causal_lm(cfg.policy.path, "policy", padding_side="left", dtype=torch.float32, device="cpu")
    with quiet_third_party():
        trainer = trainer_class(cfg.algorithm)(model=model, reward_funcs=[proxy], args=args,
                                               train_dataset=train_dataset(tok, load_prompts(cfg.train_prompts)),
                                               processing_class=tok)
        trainer.remove_callback(PrinterCallback)
        t = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3, help="alternating (plain, rmteach) pairs")
    ap.add_argument("--new", type=int, default=16, help="max new tokens")
    add_options(ap)
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.repeats = 2, 1

    import torch

    from rmteach.core.hf import quiet
    from rmteach.core.metrics import Normalization
    from rmteach.train.run import run_train

    quiet()
    torch.set_num_threads(1)  # what rmteach train does by default (cpu_threads: 1); same for both sides
    with toy_world(args.world) as world, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = make_config(world, args)
        run_train(cfg, root / "warmup", overwrite=True)  # imports and first-call costs, for neither side
        n = json.loads((root / "warmup" / "run.json").read_text())["normalization"]
        norm = Normalization(mean=n["mean"], std=n["std"])
        plain, tracked, evals = [], [], []
        for r in range(args.repeats):
            plain.append(args.steps / plain_trl(cfg, root / f"plain{r}", norm))
            s = run_train(cfg, root / f"rmteach{r}", overwrite=True)
            tracked.append(s["timings"]["steps_per_second"])
            evals.append(s["timings"]["eval_seconds"])
    p, q = statistics.median(plain), statistics.median(tracked)
    pairs = [t / b for t, b in zip(tracked, plain)]  # (repeats,): each rmteach run against the plain run before it
    sizes = {"policy": str(Path(cfg.policy.path).name), "reward_model": cfg.reward_model.name,
             "ground_truth": cfg.ground_truth.name, "steps": args.steps, "repeats": args.repeats,
             "prompts_per_step": cfg.prompts_per_step, "samples_per_prompt": cfg.samples_per_prompt,
             "max_new_tokens": args.new, "smoke": args.smoke}
    print(json.dumps({**sizes, "plain_trl_steps_per_s": [round(x, 2) for x in plain],
                      "rmteach_steps_per_s": [round(x, 2) for x in tracked],
                      "rmteach_eval_seconds_(steps_0_and_last)": [round(x, 2) for x in evals]}, indent=1))
    print(f"rmteach/plain steps/s ratio: {q / p:.3f}  (overhead {100 * (1 - q / p):.1f} %; "
          f"per-pair ratios {min(pairs):.3f}..{max(pairs):.3f})")
    save(args.json, "train",
         {"ratio": q / p, "pair_ratio_min": min(pairs), "pair_ratio_max": max(pairs),
          "plain_steps_per_s": p, "rmteach_steps_per_s": q},
         sizes, runs={"plain_steps_per_s": plain, "rmteach_steps_per_s": tracked, "rmteach_eval_seconds": evals},
         overhead_percent=100 * (1 - q / p))


if __name__ == "__main__":
    run(main)
