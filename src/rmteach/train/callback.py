"""The tracking callback of `rmteach train`: metrics.jsonl lines from TRL's logs, evaluations when due.

`TrackingCallback` is a `TrainerCallback` that turns TRL's per-step logs into one metrics.jsonl line per
optimizer step (written by the main process only), runs the held-out evaluation when due, and stops the run
on a non-finite loss or gradient. TRL's training loop is untouched.

Each line is appended whole, in one write, so a killed process leaves whole lines. It reaches the disk
(fsync) when a checkpoint is saved and when training ends, not after every step: an fsync per step was the
largest cost of tracking on small policies (about 4 ms a step), and a line lost to a power cut after the
last checkpoint is one a resume drops anyway (it truncates metrics.jsonl to the checkpoint's step).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from ..core import io
from .evaluator import Evaluator
from .rewards import GOLD_KEY, PROXY_KEY, VARIANCE_KEY, TrainingStopped

TRAIN_FIELDS = ("proxy_reward", "gold_reward", "reward_variance", "reward_std", "frac_reward_zero_std", "kl",
                "learning_rate", "loss", "grad_norm", "entropy", "completion_length")
EVAL_FIELDS = ("eval_proxy_reward", "eval_gold_reward", "eval_reward_variance")
FIELDS = ("step", *TRAIN_FIELDS, *EVAL_FIELDS, "wall_time")  # every metrics.jsonl line has all of them


def _finite_or_none(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def train_fields(logs: dict[str, Any], step: int) -> dict[str, float | None]:
    """The per-step fields of a metrics line from TRL's logs; stops the run on a non-finite loss or gradient."""
    for key in ("loss", "grad_norm"):
        v = logs.get(key)
        if v is not None and not math.isfinite(v):
            raise TrainingStopped(f"step {step}: {key} is {v} (the policy diverged; try a lower learning_rate)")
    return {
        "proxy_reward": _finite_or_none(logs.get(PROXY_KEY)),
        "gold_reward": _finite_or_none(logs.get(GOLD_KEY)),
        "reward_variance": _finite_or_none(logs.get(VARIANCE_KEY)),
        "reward_std": _finite_or_none(logs.get("reward_std")),  # TRL's: std of the batch's (normalized) rewards
        "frac_reward_zero_std": _finite_or_none(logs.get("frac_reward_zero_std")),  # TRL's: groups with std 0
        "kl": _finite_or_none(logs.get("kl")),
        "learning_rate": _finite_or_none(logs.get("learning_rate")),
        "loss": _finite_or_none(logs.get("loss")),
        "grad_norm": _finite_or_none(logs.get("grad_norm")),
        "entropy": _finite_or_none(logs.get("entropy")),
        "completion_length": _finite_or_none(logs.get("completions/mean_length")),
    }


# ----------------------------------------------------------------------------------------------------------
# The callback


class TrackingCallback(TrainerCallback):
    """Write one metrics.jsonl line per optimizer step and evaluate when due; main process writes.

    Arguments:
        metrics_path: OUT/metrics.jsonl.
        evaluator: the held-out evaluation.
        total_steps: the run's last step (always evaluated).
        eval_every: evaluate every N steps (None: only at 0 and the last step).
        is_main: whether this process writes.
        started: `time.perf_counter()` when this process started the run.
        wall_offset: seconds already spent before this process (a resumed run continues the clock).
        advance: called once per step (the progress bar), or None.
    """

    def __init__(
        self, metrics_path: Path, evaluator: Evaluator, *, total_steps: int, eval_every: int | None, is_main: bool,
        started: float, wall_offset: float = 0.0, advance: Callable[[int], None] | None = None,
    ) -> None:
        self.metrics_path, self.evaluator = metrics_path, evaluator
        self.total_steps, self.eval_every, self.is_main = total_steps, eval_every, is_main
        self.wall_offset, self.advance = wall_offset, advance
        self.trainer: Any = None  # set by `attach`
        self.started = started
        self.eval_seconds = 0.0
        self.last: dict[str, Any] = {}

    def attach(self, trainer: Any) -> None:
        """Register with a TRL trainer, before its TensorBoard callback so evaluations reach TensorBoard too."""
        self.trainer = trainer
        trainer.callback_handler.callbacks.insert(1, self)

    def _due(self, step: int) -> bool:
        return step == 0 or step == self.total_steps or (self.eval_every is not None and step % self.eval_every == 0)

    def _evaluate(self, step: int) -> dict[str, float | None]:
        from accelerate.utils import gather_object
        from trl.distributed import DistributedBackend
        from trl.models import unwrap_model_for_generation

        t = time.perf_counter()
        tr = self.trainer
        acc = tr.accelerator
        gather = gather_object if acc.num_processes > 1 else None
        # As TRL generates: whole weights under DeepSpeed ZeRO-3 and FSDP, plain module under DDP.
        with (
            unwrap_model_for_generation(
                tr.model_wrapped, acc, gather_deepspeed3_params=tr.args.ds3_gather_for_generation
            ) as model,
            DistributedBackend(acc).summon_full_params(tr.model_wrapped, recurse=False),
        ):
            result = self.evaluator(
                model, tr.processing_class, step, rank=acc.process_index, world=acc.num_processes, gather=gather
            )
        self.eval_seconds += time.perf_counter() - t
        return result

    def _write(self, record: dict[str, Any]) -> None:
        record["wall_time"] = round(self.wall_offset + time.perf_counter() - self.started, 3)
        self.last = record
        if self.is_main:
            io.append_jsonl(self.metrics_path, record, durable=False)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step != 0:
            return  # resumed: step 0 is already in metrics.jsonl
        ev = self._evaluate(0)
        self._write({"step": 0, **dict.fromkeys(TRAIN_FIELDS), **ev})
        self.trainer.log({k: v for k, v in ev.items() if v is not None})  # TensorBoard: eval/proxy_reward, ...

    def on_save(self, args, state, control, **kwargs):
        if self.is_main:
            io.sync_file(self.metrics_path)  # the lines up to this checkpoint's step, which a resume keeps

    def on_train_end(self, args, state, control, **kwargs):
        if self.is_main:
            io.sync_file(self.metrics_path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or PROXY_KEY not in logs:
            return  # not a training step (the end-of-training summary, our own step-0 log)
        step = state.global_step
        record = {"step": step, **train_fields(logs, step), **dict.fromkeys(EVAL_FIELDS)}
        if self._due(step):
            ev = self._evaluate(step)
            record.update(ev)
            logs.update({k: v for k, v in ev.items() if v is not None})  # reaches TensorBoard as eval/...
        self._write(record)
        if self.advance is not None:
            self.advance(1)
