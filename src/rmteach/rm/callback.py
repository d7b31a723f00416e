"""The training curve of `rmteach rm train`: a `TrainerCallback` writing metrics.jsonl and advancing the bar.

One line per logging step (`log_every`), with the held-out loss and accuracy on the steps the held-out set
is evaluated (`eval_every`, and always the last step). The Trainer logs a step before it evaluates it, so a
line due for evaluation waits for `on_evaluate`. Only the main process writes; TRL's loop is untouched.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from ..core import io
from ..core.errors import UserError

TRAIN_FIELDS = ("epoch", "loss", "accuracy", "margin", "grad_norm", "learning_rate")
EVAL_FIELDS = ("eval_loss", "eval_accuracy")
FIELDS = ("step", *TRAIN_FIELDS, *EVAL_FIELDS, "wall_time")  # every metrics.jsonl line has all of them


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


class RMTracking(TrainerCallback):
    """metrics.jsonl lines from TRL's RewardTrainer logs, one per logging step; a progress bar per step.

    Arguments:
        path: OUT/metrics.jsonl.
        steps: the run's last step (logged and, with a held-out set, evaluated).
        evaluates: whether there is a held-out set to evaluate.
        advance: called with 1 per optimizer step (the progress bar), or None.
        wall_offset: seconds spent before this process (a resumed run continues the clock).
    """

    def __init__(self, path: Path, *, steps: int, evaluates: bool, advance: Callable[[int], None] | None,
                 wall_offset: float = 0.0) -> None:
        self.path, self.steps, self.evaluates, self.advance = path, steps, evaluates, advance
        self.started, self.wall_offset = time.perf_counter(), wall_offset
        self.pending: dict[str, Any] | None = None  # a line waiting for this step's evaluation
        self.last: dict[str, Any] = {}

    def _write(self, state: Any, record: dict[str, Any]) -> None:
        record["wall_time"] = round(self.wall_offset + time.perf_counter() - self.started, 3)
        self.last = record
        if state.is_world_process_zero:
            io.append_jsonl(self.path, record)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.steps:  # the last step is always logged and evaluated
            control.should_log = True
            control.should_evaluate = self.evaluates
        if self.advance is not None:
            self.advance(1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return  # an evaluation's log, or the end-of-training summary
        step = state.global_step
        if not math.isfinite(logs["loss"]):
            raise UserError(f"step {step}: the loss is {logs['loss']} (training diverged; lower learning_rate)")
        record = {"step": step, **{k: _finite(logs.get(k)) for k in TRAIN_FIELDS}, **dict.fromkeys(EVAL_FIELDS)}
        if control.should_evaluate:
            self.pending = record
        else:
            self._write(state, record)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        step = state.global_step
        record = self.pending if self.pending and self.pending["step"] == step else {
            "step": step, **dict.fromkeys(TRAIN_FIELDS), **dict.fromkeys(EVAL_FIELDS)}
        self.pending = None
        record.update({k: _finite((metrics or {}).get(k)) for k in EVAL_FIELDS})
        self._write(state, record)
