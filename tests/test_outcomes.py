"""A run's outcomes from its eval curve, checked against hand computations."""

from __future__ import annotations

import pytest

from rmteach.study import outcomes as O


def _curve(steps, gold, proxy=None):
    return {"step": list(steps), "gold": list(gold), "proxy": list(proxy if proxy is not None else gold)}


def test_eval_curve_keeps_eval_records_sorted_last_write_wins():
    records = [
        {"step": 2, "proxy_reward": 0.3, "gold_reward": 0.1},  # a train step without evaluation
        {"step": 4, "eval_gold_reward": 0.9, "eval_proxy_reward": 1.0, "eval_reward_variance": 0.5},
        {"step": 0, "eval_gold_reward": 0.2, "eval_proxy_reward": -1.0, "eval_reward_variance": 0.7},
        {"step": 4, "eval_gold_reward": 0.8, "eval_proxy_reward": 1.5, "eval_reward_variance": 0.4},
    ]
    c = O.eval_curve(records)
    assert c == {"step": [0, 4], "gold": [0.2, 0.8], "proxy": [-1.0, 1.5], "variance": [0.7, 0.4]}


def test_run_outcomes_by_hand():
    # gold rises 0.1 per step for 4 steps then stays; proxy falls.
    c = _curve([0, 2, 4, 6, 8], [1.0, 1.2, 1.4, 1.4, 1.4], [0.0, -0.2, -0.4, -0.6, -0.8])
    o = O.run_outcomes(c, [0.25, 0.3, 1.0])
    assert o["steps"] == 8 and o["initial_gold"] == 1.0 and o["final_gold"] == 1.4
    assert o["gold_increase@0.25"] == pytest.approx(0.2)  # step 2 exactly
    assert o["gold_increase@0.3"] == pytest.approx(0.24)  # step 2.4: 0.2 + 0.4 * 0.1
    assert o["gold_increase@1"] == pytest.approx(0.4)
    # trapezoids of the increase 0, .2, .4, .4, .4 with width 2: (0+.2)+(.2+.4)+(.4+.4)+(.4+.4) = 2.4; / 8
    assert o["gold_auc"] == pytest.approx(2.4 / 8)
    assert o["proxy_increase@1"] == pytest.approx(-0.8)
    assert o["proxy_auc"] == pytest.approx(-(0.2 + 0.6 + 1.0 + 1.4) / 8)
    assert set(O.outcome_names([0.25, 0.3, 1.0])) <= set(o)


@pytest.mark.parametrize("steps", [[2, 4], [0]])
def test_run_outcomes_needs_step_zero_and_a_later_step(steps):
    with pytest.raises(ValueError, match="step 0"):
        O.run_outcomes(_curve(steps, [0.0] * len(steps)), [1.0])
