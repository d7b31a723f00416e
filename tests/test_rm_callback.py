"""rm.callback: one metrics.jsonl line per logging step, evaluations merged into it, a NaN loss stops the run."""

from __future__ import annotations

import json
import math

import pytest
from transformers import TrainerControl, TrainerState

from rmteach.core.errors import UserError
from rmteach.rm.callback import FIELDS, RMTracking


def _state(step: int, main: bool = True) -> TrainerState:
    state = TrainerState(global_step=step)
    state.is_world_process_zero = main
    return state


def _log(cb: RMTracking, step: int, *, evaluate: bool = False, main: bool = True, loss: float = 0.5) -> None:
    control = TrainerControl()
    cb.on_step_end(None, _state(step, main), control)
    control.should_evaluate = control.should_evaluate or evaluate  # as DefaultFlowCallback sets it before logging
    cb.on_log(None, _state(step, main), control, logs={"loss": loss, "accuracy": 0.75, "learning_rate": 1e-3,
                                                      "grad_norm": 1.0, "margin": 0.1, "epoch": step / 4})
    if control.should_evaluate:
        cb.on_evaluate(None, _state(step, main), control, metrics={"eval_loss": 0.6, "eval_accuracy": 0.7,
                                                                   "eval_runtime": 0.1})


def test_lines_merge_the_evaluation_of_their_step(tmp_path):
    steps = []
    cb = RMTracking(tmp_path / "m.jsonl", steps=4, evaluates=True, advance=steps.append)
    for step in (1, 2, 3, 4):
        _log(cb, step, evaluate=step == 2)
    lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4] and all(set(r) == set(FIELDS) for r in lines)
    assert [r["eval_accuracy"] for r in lines] == [None, 0.7, None, 0.7]  # the last step is always evaluated
    assert lines[0]["loss"] == 0.5 and lines[1]["eval_loss"] == 0.6 and steps == [1, 1, 1, 1]
    assert cb.last == lines[-1]


def test_only_the_main_process_writes_and_a_nan_loss_stops(tmp_path):
    cb = RMTracking(tmp_path / "m.jsonl", steps=4, evaluates=False, advance=None)
    _log(cb, 1, main=False)
    assert not (tmp_path / "m.jsonl").exists() and cb.last["step"] == 1
    with pytest.raises(UserError, match="step 2: the loss is nan .*lower learning_rate"):
        _log(cb, 2, loss=math.nan)
