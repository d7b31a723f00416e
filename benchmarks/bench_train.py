"""Time `rmteach train` against the same TRL trainer with the same reward function and no tracking.

Both sides train the toy world's first policy with the same `RLOOConfig` (built by
`rmteach.train.trainer.build_trl_config`) and the same proxy reward (the world's first RM, normalized, through
rmteach's own reward adapter `TRLReward`, so the plain side follows any change of the reward-function
signature). The plain side is a bare `RLOOTrainer` with that one reward function and no logger (with
`--plain-tensorboard`, TensorBoard too, as rmteach logs by default: the ratio is then rmteach's own
tracking). The rmteach side adds what tracking costs per step: the ground truth scored as a second reward
function (weight 0), the per-prompt reward variance, the metrics.jsonl callback and TensorBoard.

Both sides are timed the same way, by a callback (`StepClock`) that reads the clocks when each step begins:
steps/s over steps 1..N-1 (from the start of step 1 to the start of step N), so each step's logging and
tracking is counted, and the held-out evaluations (before step 1, after step N) are not. Wall time is what
the user waits; process CPU time is what the run costs, and is far less moved by other processes on a
shared machine. Runs alternate (plain, rmteach, plain, ...) so both see the same machine load; the ratio
printed last is median rmteach steps/s / median plain steps/s (1.0 = no overhead), with the per-pair ratios
(each rmteach run against the plain run just before it) as its spread. Both sides sample the same tokens
(same seed, same policy), so step i is the same work in every run: the `best` ratio sums, step by step, the
fastest of the repeats on each side, which filters out the moments another process took the core.

    python benchmarks/bench_train.py [--world PATH] [--steps 100] [--repeats 5] [--new 16]
        [--plain-tensorboard] [--smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from transformers import TrainerCallback

from benchlib import add_options, fail, run, save, toy_world


class StepClock(TrainerCallback):
    """Wall and process CPU time at the start of each optimizer step."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def durations(self, steps: int) -> dict[str, list[float]]:
        """{"wall": seconds of steps 1..N-1, "cpu": the same in process CPU seconds}, each (N-1,)."""
        if len(self.wall) != steps or steps < 2:  # a bug: the clock missed steps (or was never attached)
            raise RuntimeError(f"the step clock saw {len(self.wall)} step starts, expected {steps}")
        return {c: [b - a for a, b in zip(t, t[1:])] for c, t in (("wall", self.wall), ("cpu", self.cpu))}


def clocked(make_trainer_class, clock: StepClock):
    """`rmteach.train.trainer.trainer_class`, its trainers carrying `clock`."""

    def trainer_class(algorithm: str) -> type:
        base = make_trainer_class(algorithm)

        class Clocked(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.add_callback(clock)

        return Clocked

    return trainer_class


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


def plain_trl(cfg, out: Path, norm, report_to: list[str]) -> dict[str, list[float]]:
    """A bare TRL RLOOTrainer with the proxy reward only; returns its step durations (`StepClock.durations`)."""
    import torch
    from transformers.trainer_callback import PrinterCallback

    from rmteach.backends.rewards import load_reward_model
    from rmteach.core.data import load_prompts
    from rmteach.core.hf import load_causal_lm
    from rmteach.core.trl import quiet_third_party
    from rmteach.train.rewards import PROXY_NAME, TRLReward
    from rmteach.train.trainer import build_trl_config, train_dataset, trainer_class

    plain_cfg = cfg.model_copy(update={"ground_truth": None, "report_to": report_to})
    args = build_trl_config(plain_cfg, out, cfg.steps, plain_cfg.layout(1), use_cpu=True)
    proxy = TRLReward(load_reward_model(cfg.reward_model, device="cpu", dtype=cfg.dtype), PROXY_NAME, norm)
    model, tok = load_causal_lm(cfg.policy.path, "policy", padding_side="left", dtype=torch.float32, device="cpu")
    clock = StepClock()
    with quiet_third_party():
        trainer = clocked(trainer_class, clock)(cfg.algorithm)(
            model=model, reward_funcs=[proxy], args=args,
            train_dataset=train_dataset(tok, load_prompts(cfg.train_prompts)), processing_class=tok)
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return clock.durations(cfg.steps)


def rmteach_train(cfg, out: Path) -> tuple[dict[str, list[float]], float]:
    """`rmteach train` as the user runs it; returns its step durations and its evaluations' seconds."""
    import rmteach.train.run as train_run

    clock = StepClock()
    with mock.patch.object(train_run, "trainer_class", clocked(train_run.trainer_class, clock)):
        s = train_run.run_train(cfg, out, overwrite=True)
    return clock.durations(cfg.steps), s["timings"]["eval_seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5, help="alternating (plain, rmteach) pairs")
    ap.add_argument("--new", type=int, default=16, help="max new tokens")
    ap.add_argument("--plain-tensorboard", action="store_true", help="the plain side logs to TensorBoard too")
    add_options(ap)
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.repeats = 3, 1
    if args.steps < 2 or args.repeats < 1:
        fail(f"--steps must be >= 2 (steps 1..N-1 are timed) and --repeats >= 1 (got {args.steps}, {args.repeats})")

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
        steps: dict[str, list[dict[str, list[float]]]] = {"plain": [], "rmteach": []}  # per side, per run
        evals = []
        for r in range(args.repeats):
            loggers = ["tensorboard"] if args.plain_tensorboard else []
            steps["plain"].append(plain_trl(cfg, root / f"plain{r}", norm, loggers))
            d, e = rmteach_train(cfg, root / f"rmteach{r}")
            steps["rmteach"].append(d)
            evals.append(e)
    sizes = {"policy": str(Path(cfg.policy.path).name), "reward_model": cfg.reward_model.name,
             "ground_truth": cfg.ground_truth.name, "steps": args.steps, "repeats": args.repeats,
             "prompts_per_step": cfg.prompts_per_step, "samples_per_prompt": cfg.samples_per_prompt,
             "max_new_tokens": args.new, "plain_tensorboard": args.plain_tensorboard, "smoke": args.smoke}
    rate = lambda ds: len(ds) / sum(ds)  # noqa: E731 - steps per second of a list of step durations
    runs = {f"{side}_{c}_steps_per_s": [rate(run[c]) for run in steps[side]] for side in steps for c in ("wall", "cpu")}
    print(json.dumps({**sizes, **{k: [round(x, 2) for x in v] for k, v in runs.items()}}, indent=1))
    figures = {}
    for c in ("wall", "cpu"):
        plain, tracked = runs[f"plain_{c}_steps_per_s"], runs[f"rmteach_{c}_steps_per_s"]
        p, q = statistics.median(plain), statistics.median(tracked)
        pairs = [t / b for t, b in zip(tracked, plain)]  # (repeats,)
        best = {side: rate([min(ds) for ds in zip(*(run[c] for run in steps[side]))]) for side in steps}
        figures.update({f"{c}_ratio": q / p, f"{c}_pair_ratio_min": min(pairs), f"{c}_pair_ratio_max": max(pairs),
                        f"{c}_plain_steps_per_s": p, f"{c}_rmteach_steps_per_s": q,
                        f"{c}_best_ratio": best["rmteach"] / best["plain"]})
        print(f"rmteach/plain steps/s ratio ({c} time): {q / p:.3f}  (overhead {100 * (1 - q / p):.1f} %; "
              f"per-pair ratios {min(pairs):.3f}..{max(pairs):.3f}, median {statistics.median(pairs):.3f}; "
              f"best-of-{args.repeats} per step: {best['rmteach'] / best['plain']:.3f})")
    save(args.json, "train", figures, sizes, runs={**runs, "rmteach_eval_seconds": evals}, step_seconds=steps,
         overhead_percent={c: 100 * (1 - figures[f"{c}_ratio"]) for c in ("wall", "cpu")})


if __name__ == "__main__":
    run(main)
