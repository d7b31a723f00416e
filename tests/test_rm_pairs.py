"""rm.pairs: pairing and labels by hand, then `run_pairs` on a tiny policy: files evaluate reads, the summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from rmteach.core.blocks import DataConfig
from rmteach.core.data import load_preferences
from rmteach.core.errors import UserError
from rmteach.rm.config import PairsConfig
from rmteach.rm.pairs import bradley_terry, make_pairs, quantiles, run_pairs

import rm_fns

RESPONSES = [["a", "b", "a", "c"], ["x", "y", "z", "w"]]  # (n=2, K=4)
REWARDS = np.array([[1.0, 2.0, 1.0, 1.0], [0.0, 0.5, 0.25, 0.75]])


def _cfg(**changes) -> PairsConfig:
    base = {"policy": {"path": "p"}, "ground_truth": {"name": "g", "callable": "rm_fns:gold"},
            "prompts": {"path": "x.jsonl"}}
    return PairsConfig.model_validate({**base, **changes})


def _pairs(**changes):
    return make_pairs(["p0", "p1"], ["P0", "P1"], RESPONSES, REWARDS, _cfg(**changes))


def test_hard_labels_by_hand_drop_ties_and_identical_texts():
    rows, c = _pairs(pairing="all")
    # p0: (0,2) same text; (0,3) (2,3) tie; b beats a, a, c. p1: all 6 pairs distinct and untied.
    assert (c["candidates"], c["identical"], c["ties"], c["kept"]) == (12, 1, 2, 9)
    assert [(r["chosen"], r["rejected"]) for r in rows[:3]] == [("b", "a"), ("b", "a"), ("b", "c")]
    assert all(r["chosen_reward"] > r["rejected_reward"] for r in rows) and c["label_flips"] == 0
    assert len({r["id"] for r in rows}) == 9 and rows[0]["id"] == "p0-1-0" and "p_chosen" not in rows[0]
    rows, c = _pairs()  # disjoint: (0,1), (2,3) per prompt
    assert [(r["prompt_id"], r["chosen"]) for r in rows] == [("p0", "b"), ("p1", "y"), ("p1", "w")]
    rows, c = _pairs(pairing="best_worst")
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("b", "a"), ("w", "x")]


def test_min_gap_drops_small_gaps_and_quantiles_describe_them():
    rows, c = _pairs(pairing="all", min_gap=0.5)
    assert all(r["chosen_reward"] - r["rejected_reward"] >= 0.5 for r in rows)
    assert c["below_min_gap"] == 2 + 3  # p0's two ties; p1's three gaps of 0.25
    assert c["kept"] == 12 - 1 - c["below_min_gap"]
    q = quantiles(c["gaps_all"])
    assert q["min"] == 0.0 and q["max"] == 1.0 and q["median"] == pytest.approx(np.median(c["gaps_all"]))


def test_bradley_terry_labels_are_seeded_draws_with_their_probability():
    sharp, _ = _pairs(pairing="all", labels="bradley_terry", temperature=1e-6)
    hard, _ = _pairs(pairing="all")
    assert {(r["chosen"], r["rejected"]) for r in hard} <= {(r["chosen"], r["rejected"]) for r in sharp}
    rows, c = _pairs(pairing="all", labels="bradley_terry", temperature=0.25, label_seed=3)
    assert rows == _pairs(pairing="all", labels="bradley_terry", temperature=0.25, label_seed=3)[0]
    assert c["kept"] == 11  # ties are coin flips now; only the identical pair is gone
    for r in rows:
        assert r["p_chosen"] == pytest.approx(bradley_terry(r["chosen_reward"] - r["rejected_reward"], 0.25))
    assert c["label_flips"] == sum(r["chosen_reward"] < r["rejected_reward"] for r in rows)
    assert bradley_terry(-800.0, 1.0) == 0.0 and bradley_terry(800.0, 1.0) == 1.0  # no overflow


def test_bradley_terry_flips_small_gaps_at_the_expected_rate():
    k = 2000
    responses = [[f"r{i}a", f"r{i}b"] for i in range(k)]
    rows, c = make_pairs([str(i) for i in range(k)], ["P"] * k, responses, np.tile([0.0, 0.5], (k, 1)),
                         _cfg(labels="bradley_terry", temperature=0.5, label_seed=0))
    expected = 1 - 1 / (1 + math.exp(-1.0))  # P(the worse one is chosen) = sigmoid(-0.5 / 0.5)
    assert c["label_flips"] / k == pytest.approx(expected, abs=0.03)


@pytest.fixture()
def pairs_cfg(tiny):
    return _cfg(policy={"path": str(tiny["policy_gpt2"]), "name": "gpt2"}, prompts={"path": str(tiny["prompts"])},
                sampling={"samples_per_prompt": 6, "max_new_tokens": 6, "batch_size": 4, "seed": 1},
                parquet=True, device="cpu", pairing="all")


def test_run_pairs_writes_a_preference_set_evaluate_reads(pairs_cfg, tmp_path):
    out = tmp_path / "pairs"
    summary = run_pairs(pairs_cfg, out)
    rows = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert summary["kept"] == len(rows) > 0 and json.loads((out / "summary.json").read_text()) == summary
    assert summary["candidates"] == 8 * 15 and summary["prompts"] == 8
    assert summary["candidates"] == summary["kept"] + summary["identical"] + summary["ties"]
    assert summary["tie_rate"] == pytest.approx((summary["identical"] + summary["ties"]) / summary["candidates"])
    pairs = load_preferences(DataConfig(path=str(out / "pairs.jsonl")))  # evaluate's reader
    assert [p.id for p in pairs] == [r["id"] for r in rows]
    assert pd.read_parquet(out / "pairs.parquet").to_dict("records") == rows
    gold = rm_fns.gold([r["prompt"] for r in rows] * 2, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
    assert [r["chosen_reward"] for r in rows] == pytest.approx(gold[: len(rows)])  # labelled by the ground truth
    assert all(r["chosen_reward"] > r["rejected_reward"] for r in rows)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8 and all(len(s["responses"]) == len(s["rewards"]) == 6 for s in samples)

    stamp = (out / "pairs.jsonl").stat().st_mtime_ns
    assert run_pairs(pairs_cfg, out) == summary and (out / "pairs.jsonl").stat().st_mtime_ns == stamp  # done
    with pytest.raises(UserError, match="already holds a different rm pairs run"):
        run_pairs(pairs_cfg.model_copy(update={"min_gap": 0.1}), out)
    again = run_pairs(pairs_cfg.model_copy(update={"min_gap": 0.1}), out, overwrite=True)
    assert again["kept"] == summary["kept"] - (again["below_min_gap"] - summary["ties"])  # ties are below it too
    assert again["gap_quantiles"]["kept"]["min"] >= 0.1


@pytest.mark.parametrize("change, message", [
    ({"min_gap": 1e9}, r"no pair kept of 120 candidates .* lower min_gap"),
    ({"prompts": {"path": "/nonexistent/p.jsonl"}}, "prompts: prompt set not found"),
    ({"ground_truth": {"name": "g", "callable": "rm_fns:raises"}}, "reward model 'g' .* raised ValueError"),
    ({"policy": {"path": "/nonexistent/policy"}}, "policy path does not exist"),
])
def test_bad_input_writes_nothing(pairs_cfg, tmp_path, change, message):
    out = tmp_path / "pairs"
    cfg = PairsConfig.model_validate({**pairs_cfg.model_dump(), **change})
    with pytest.raises(UserError, match=message):
        run_pairs(cfg, out)
    assert not out.exists()


def test_a_ground_truth_reading_a_reference_column_labels_the_pairs(pairs_cfg, tmp_path):
    words = [f"w{i}" for i in range(12)]
    rows = [{"id": f"q{i}", "prompt": " ".join(words[i : i + 2]), "reference": words[(3 * i) % 12]} for i in range(6)]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = pairs_cfg.model_copy(update={"prompts": DataConfig(path=str(path)), "ground_truth": _cfg(
        ground_truth={"name": "ref", "callable": "rm_fns:count_reference"}).ground_truth})
    run_pairs(cfg, tmp_path / "out")
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    ref = {r["id"]: r["reference"] for r in rows}
    assert [s["rewards"] for s in samples] == [[float(y.split().count(ref[s["id"]])) for y in s["responses"]]
                                               for s in samples]
    assert any(r > 0 for s in samples for r in s["rewards"])  # the reference words do occur
