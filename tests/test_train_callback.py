"""The per-step fields of metrics.jsonl from TRL's logs, non-finite stops, per-prompt-group variances."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize(
    ("logs", "message"),
    [({"loss": float("nan"), "grad_norm": 1.0}, "step 7: loss is nan"),
     ({"loss": 0.1, "grad_norm": float("inf")}, "step 7: grad_norm is inf")],
)
def test_nonfinite_loss_or_gradient_stops_the_run(logs, message):
    from rmteach.train.callback import train_fields
    from rmteach.train.rewards import TrainingStopped

    with pytest.raises(TrainingStopped, match=message):
        train_fields({"rewards/proxy/mean": 0.0, **logs}, 7)


def test_train_fields_read_trl_logs():
    from rmteach.train.callback import train_fields

    logs = {"rewards/proxy/mean": 0.5, "rewards/gold/mean": 1.25, "rmteach/reward_variance": 0.75, "kl": 0.1,
            "learning_rate": 1e-3, "loss": 0.0, "grad_norm": 2.0, "entropy": 1.5, "completions/mean_length": 6.0,
            "reward_std": 0.9, "frac_reward_zero_std": 0.25}
    assert train_fields(logs, 1) == {
        "proxy_reward": 0.5, "gold_reward": 1.25, "reward_variance": 0.75, "kl": 0.1, "learning_rate": 1e-3,
        "loss": 0.0, "grad_norm": 2.0, "entropy": 1.5, "completion_length": 6.0, "reward_std": 0.9,
        "frac_reward_zero_std": 0.25}
    assert train_fields({"rewards/proxy/mean": 0.5}, 1)["gold_reward"] is None  # no ground truth, beta=0


@pytest.mark.parametrize(
    ("prompts", "rewards"),
    [(["a"] * 4, [1.0, 2.0, 4.0, 8.0]), (["a", "a", "b", "b", "b", "c"], [0.0, 2.0, 1.0, 1.0, 4.0, 9.0])],
)
def test_group_variances_are_per_run_of_equal_prompts(prompts, rewards):
    from rmteach.train.rewards import group_variances

    want = []
    for p in dict.fromkeys(prompts):  # each prompt's samples, sum of squares by hand
        xs = [r for q, r in zip(prompts, rewards) if q == p]
        if len(xs) >= 2:
            mean = sum(xs) / len(xs)
            want.append(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    assert group_variances(np.array(rewards), prompts) == pytest.approx(want)
