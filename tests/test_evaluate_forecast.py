"""The forecast and ranking in `rmteach evaluate`, end to end on the tiny models, recomputed from rewards.parquet."""

from __future__ import annotations

import fnmatch
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli, write_eval_config

from rmteach.core.config import load_config
from rmteach.evaluate.config import EvaluateConfig
from rmteach.evaluate.run import evaluate

K = 4  # samples per prompt in `write_eval_config`


def scaled_gold(prompts, completions, **kwargs):
    """The ground truth, flattened 1000x on the prompts whose first word is w0, w2, w4 or w6 (a callable RM)."""
    from rm_fns import gold

    return [g * (0.001 if int(p.split()[0][1:]) % 2 == 0 else 1.0) for p, g in zip(prompts, gold(prompts, completions))]


CALLABLES_ONLY = [{"name": "scaled_gold", "callable": "test_evaluate_forecast:scaled_gold"},
                  {"name": "gold_cubed", "callable": "rm_fns:gold_cubed"}]


# ----------------------------------------------------------------------------------------------------------
# Independent recomputation (plain numpy and loops, not rmteach)


def _grid(frame: pd.DataFrame, name: str) -> np.ndarray:
    """(n, K) rewards of one RM, prompts in file order."""
    mine = frame[frame.reward_model == name]
    wide = mine.pivot(index="prompt_id", columns="sample", values="reward")
    return wide.loc[list(dict.fromkeys(mine.prompt_id))].to_numpy(dtype=np.float64)


def _norm(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std(ddof=1)


def _cov(a, b) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / (len(a) - 1)


def _best_of_k(r, gn) -> float:
    top = [k for k in range(len(r)) if r[k] >= max(r) - 1e-9 * max(1.0, max(abs(x) for x in r))]
    return sum(gn[k] for k in top) / len(top) - sum(gn) / len(gn)


def _lookahead(z, gn, steps: int, eta: float) -> float:
    theta, gains = [0.0] * len(z), [0.0]
    for _ in range(steps):
        e = [math.exp(t) for t in theta]
        pi = [x / sum(e) for x in e]
        ez = sum(p * x for p, x in zip(pi, z))
        theta = [t + eta * p * (x - ez) for t, p, x in zip(theta, pi, z)]
        e = [math.exp(t) for t in theta]
        gains.append(sum(x * y for x, y in zip(e, gn)) / sum(e) - sum(gn) / len(gn))
    return sum((gains[t] + gains[t + 1]) / 2 for t in range(steps)) / steps


def _per_prompt(r_all: np.ndarray, gold: np.ndarray, *, group: bool = False, steps: int = 60,
                eta: float = 0.05, scale_free: bool = True) -> dict[str, np.ndarray]:
    """Every forecast per prompt: the RM normalized over all its prompts, the first m = len(gold) used.

    `scale_free` (the default trainer, AdamW with clipping): z divided by the root of its mean within-prompt
    variance over all prompts."""
    m = len(gold)
    if group:
        z = (r_all - r_all.mean(axis=1, keepdims=True)) / r_all.std(axis=1, ddof=1, keepdims=True)
    else:
        z = _norm(r_all)
    if scale_free:
        z = z / math.sqrt(sum(_cov(row, row) for row in z) / len(z))
    z, gn, r = z[:m], _norm(gold), r_all[:m]
    return {"gold_rate": np.array([_cov(z[i], gn[i]) for i in range(m)]),
            "lookahead": np.array([_lookahead(z[i], gn[i], steps, eta) for i in range(m)]),
            "best_of_k_gold_lift": np.array([_best_of_k(r[i], gn[i]) for i in range(m)])}


def _ci(values: np.ndarray, n_resamples: int, seed: int) -> list[float]:
    idx = np.random.default_rng(seed).integers(0, len(values), size=(n_resamples, len(values)))
    boots = values[idx].mean(axis=1)
    return [np.quantile(boots, 0.025), np.quantile(boots, 0.975)]


def _onpolicy_accuracy(r: np.ndarray, g: np.ndarray) -> float:
    per_prompt = []
    for ri, gi in zip(r, g):
        pairs = list(itertools.combinations(range(len(ri)), 2))
        per_prompt.append(np.mean([np.sign(ri[a] - ri[b]) == np.sign(gi[a] - gi[b]) for a, b in pairs]))
    return float(np.mean(per_prompt))


def _last_line(path) -> str:
    return path.read_text(encoding="utf-8").rstrip("\n").splitlines()[-1]


# ----------------------------------------------------------------------------------------------------------
# The default run: three candidates and a ground truth, RLOO


@pytest.fixture(scope="module")
def evaluated(tiny, tmp_path_factory):
    """One evaluate run through the CLI (its own sample cache), shared by the checks that only read its outputs."""
    from rmteach.cli import main

    root = tmp_path_factory.mktemp("eval_forecast")
    cfg = write_eval_config(root / "eval.yaml", tiny, preferences=None, cache_dir=str(root / "cache"))
    assert main(["evaluate", "--config", str(cfg), "--out", str(root / "out")]) == 0
    out = root / "out"
    return json.loads((out / "report.json").read_text()), pd.read_parquet(out / "rewards.parquet"), out


def test_forecasts_match_recomputation_from_parquet(evaluated):
    report, frame, _ = evaluated
    gold = _grid(frame, "gold")
    assert gold.shape == (8, K)
    assert report["forecast"]["available"] and report["forecast"]["num_prompts"] == 8
    assert report["forecast"]["primary"] == "gold_rate"
    for card in report["reward_models"]:
        mine = _per_prompt(_grid(frame, card["name"]), gold)
        for name, values in mine.items():
            got = card["forecast"][name]
            assert got["value"] == pytest.approx(values.mean(), abs=1e-9), (card["name"], name)
            assert got["ci95"] == pytest.approx(_ci(values, 200, report["seed"]), abs=1e-9), (card["name"], name)
        assert card["forecast"]["gradient_alignment"] is None
        # hacking risk: best-of-K lift over the ground truth's own; the default trainer has a KL penalty (0.25)
        risk = card["forecast"]["hacking_risk"]
        share = mine["best_of_k_gold_lift"].mean() / _per_prompt(gold, gold)["best_of_k_gold_lift"].mean()
        assert risk["best_of_k_share"] == pytest.approx(share, abs=1e-9)
        assert risk["threshold"] == 0.25 and risk["flag"] == (share < 0.25)


def test_ranking_follows_gold_rate_and_the_summary_names_the_best(evaluated):
    report, frame, out = evaluated
    gold = _grid(frame, "gold")
    candidates = ["rm_llama", "rm_other_tok", "gold_cubed"]
    rates = {n: _per_prompt(_grid(frame, n), gold)["gold_rate"] for n in candidates}
    ranking = report["ranking"]
    expected = sorted(candidates, key=lambda n: -rates[n].mean())
    assert [o["name"] for o in ranking["order"]] == expected  # the ground truth is not a candidate
    assert [o["value"] for o in ranking["order"]] == pytest.approx([rates[n].mean() for n in expected], abs=1e-9)
    # p_above_next: the paired bootstrap over prompts, from the report's seed.
    idx = np.random.default_rng(report["seed"]).integers(0, 8, size=(200, 8))
    boot = {n: rates[n][idx].mean(axis=1) for n in candidates}
    for a, b, o in zip(expected, expected[1:], ranking["order"]):
        assert o["p_above_next"] == pytest.approx(np.mean(boot[a] > boot[b]))
    assert ranking["order"][-1]["p_above_next"] is None
    best = expected[0]
    assert ranking["best"] == best
    assert ranking["within_noise_of_best"] == [n for n in expected[1:] if np.mean(boot[best] > boot[n]) < 0.95]
    last = _last_line(out / "summary.md")
    assert last == ranking["sentence"] and f"by gold_rate: {best}" in last and "`tiny-gpt2`" in last
    summary = (out / "summary.md").read_text()
    assert "| forecast: gold_rate |" in summary
    # The table follows the ranking, the ground truth last (the concentration table below it is another order).
    main_table = summary.split("Where the signal sits")[0]
    rows = [ln.split("|")[1].strip() for ln in main_table.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert rows == expected + ["gold (ground truth)"]


def test_ground_truth_card_has_the_best_possible_lift(evaluated):
    report, frame, _ = evaluated
    cards = {c["name"]: c for c in report["reward_models"]}
    gn = _norm(_grid(frame, "gold"))
    gold_fc = cards["gold"]["forecast"]
    # default trainer (scale-free): the mean within-prompt variance over its own root
    assert gold_fc["gold_rate"]["value"] == pytest.approx(np.sqrt(np.var(gn, axis=1, ddof=1).mean()), abs=1e-9)
    best_lift = (gn.max(axis=1) - gn.mean(axis=1)).mean()
    assert gold_fc["best_of_k_gold_lift"]["value"] == pytest.approx(best_lift, abs=1e-9)
    # A monotone transform of the ground truth picks the same top samples; no RM can pick better ones.
    assert cards["gold_cubed"]["forecast"]["best_of_k_gold_lift"]["value"] == pytest.approx(best_lift, abs=1e-9)
    for card in report["reward_models"]:
        assert card["forecast"]["best_of_k_gold_lift"]["value"] <= best_lift + 1e-9


# ----------------------------------------------------------------------------------------------------------
# Without a ground truth; with the ground truth on the first prompts only


def test_without_ground_truth_there_is_no_forecast(tiny, tmp_path, capsys):
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, ground_truth=None, preferences=None,
                            reward_models=CALLABLES_ONLY)
    code, out, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["forecast"]["available"] is False and "`ground_truth`" in report["forecast"]["note"]
    assert report["ranking"] is None
    assert [c["forecast"] for c in report["reward_models"]] == [None, None]
    assert _last_line(tmp_path / "o" / "summary.md") == report["forecast"]["note"] + "."
    assert "forecast:" not in (tmp_path / "o" / "summary.md").read_text().split("\n\n")[2]  # no forecast column


def test_max_prompts_scores_the_ground_truth_on_the_first_prompts(tiny, tmp_path, capsys):
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, preferences=None, forecast={"max_prompts": 3})
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    frame = pd.read_parquet(tmp_path / "o" / "rewards.parquet")
    counts = frame.groupby("reward_model").size().to_dict()
    assert counts == {"gold": 3 * K, "rm_llama": 8 * K, "rm_other_tok": 8 * K, "gold_cubed": 8 * K}
    assert sorted(frame[frame.reward_model == "gold"].prompt_id.unique()) == ["p0", "p1", "p2"]
    assert report["num_prompts"] == 8 and report["forecast"]["num_prompts"] == 3
    gold = _grid(frame, "gold")  # (3, K)
    for card in report["reward_models"]:
        r = _grid(frame, card["name"])
        assert card["onpolicy_accuracy"] == pytest.approx(_onpolicy_accuracy(r[:3], gold), abs=1e-9)
        mine = _per_prompt(r, gold)  # normalized over all 8 prompts, forecast on the first 3
        for name, values in mine.items():
            assert card["forecast"][name]["value"] == pytest.approx(values.mean(), abs=1e-9), (card["name"], name)
            assert card["forecast"][name]["ci95"] == pytest.approx(_ci(values, 200, report["seed"]), abs=1e-9)
    # The RM's own figures still use all 8 prompts.
    llama = next(c for c in report["reward_models"] if c["name"] == "rm_llama")
    assert llama["normalization"]["std"] == pytest.approx(_grid(frame, "rm_llama").std(ddof=1), abs=1e-9)


# ----------------------------------------------------------------------------------------------------------
# The advantage the forecast follows: RLOO, GRPO with group or batch scaling


def _evaluate(tiny, tmp_path, name: str, **changes) -> tuple[dict, dict[str, np.ndarray]]:
    """Evaluate in process (callable RMs only, one sample cache for every run): (report, raw rewards by RM)."""
    cfg = load_config(EvaluateConfig, write_eval_config(
        tmp_path / f"{name}.yaml", tiny, preferences=None, reward_models=CALLABLES_ONLY,
        cache_dir=str(tmp_path / "cache"), **changes))
    report, data = evaluate(cfg)
    return report, {rm: t.onpolicy for rm, t in data.rewards.items()}


SGD = {"optimizer": "sgd", "max_grad_norm": 0.0}  # plain SGD: the step follows the reward's scale


def test_grpo_group_scaling_changes_the_forecast_and_batch_scaling_does_not(tiny, tmp_path):
    rloo, raw = _evaluate(tiny, tmp_path, "rloo", forecast={"trainer": SGD})
    group, raw_group = _evaluate(tiny, tmp_path, "group", forecast={"algorithm": "grpo", "trainer": SGD})
    batch, _ = _evaluate(tiny, tmp_path, "batch", forecast={"algorithm": "grpo", "grpo_scale_rewards": "batch",
                                                             "trainer": SGD})
    assert all(np.array_equal(raw[n], raw_group[n]) for n in raw)  # the same cached samples in every run
    fc = {name: {c["name"]: c["forecast"] for c in rep["reward_models"]} for name, rep in
          [("rloo", rloo), ("group", group), ("batch", batch)]}
    assert fc["batch"] == fc["rloo"] and batch["ranking"]["order"] == rloo["ranking"]["order"]
    assert group["forecast"]["advantage"].startswith("per-prompt standardized")
    assert rloo["forecast"]["advantage"] == batch["forecast"]["advantage"] == "normalized over all samples"
    # Each recomputed from the raw rewards: the global z-score (RLOO) or the per-prompt one (GRPO group).
    for name, flag in [("rloo", False), ("group", True)]:
        for rm in ("scaled_gold", "gold_cubed", "gold"):
            mine = _per_prompt(raw[rm], raw["gold"], group=flag, scale_free=False)
            for f, values in mine.items():
                assert fc[name][rm][f]["value"] == pytest.approx(values.mean(), abs=1e-9), (name, rm, f)
    # The flattening is real: on the even prompts scaled_gold is 1000x flatter than the ground truth.
    assert raw["scaled_gold"][::2] == pytest.approx(0.001 * raw["gold"][::2], rel=1e-12)
    # Group scaling undoes it: scaled_gold teaches exactly as the ground truth does ...
    rate = {name: {rm: f["gold_rate"]["value"] for rm, f in by_rm.items()} for name, by_rm in fc.items()}
    assert rate["group"]["scaled_gold"] == pytest.approx(rate["group"]["gold"], abs=1e-9)
    # ... while under RLOO half the prompts barely teach: slower than the ground truth, and than under GRPO.
    assert rate["rloo"]["scaled_gold"] < 0.8 * rate["rloo"]["gold"]
    assert rate["rloo"]["scaled_gold"] < 0.8 * rate["group"]["scaled_gold"]
    # best-of-K reads only the order within a prompt, which the flattening keeps.
    for name in ("rloo", "group"):
        assert fc[name]["scaled_gold"]["best_of_k_gold_lift"] == fc[name]["gold"]["best_of_k_gold_lift"]


# ----------------------------------------------------------------------------------------------------------
# gradient_alignment on the tiny GPT-2 policy


@pytest.mark.slow
def test_gradient_alignment_end_to_end(tiny, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    patterns = ["transformer.h.*"]
    cfg = write_eval_config(
        tmp_path / "e.yaml", tiny, preferences=None, prompts={"path": str(tiny["prompts"]), "limit": 5},
        forecast={"gradient": True, "primary": "gradient_alignment", "gradient_parameters": patterns,
                  "gradient_batch_size": 5, "gradient_max_prompts": 4})
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    values = {c["name"]: c["forecast"]["gradient_alignment"]["value"] for c in report["reward_models"]}
    assert set(values) == {"rm_llama", "rm_other_tok", "gold_cubed", "gold"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in values.values())
    candidates = ["rm_llama", "rm_other_tok", "gold_cubed"]
    ranking = report["ranking"]
    assert ranking["primary"] == "gradient_alignment"
    assert [o["name"] for o in ranking["order"]] == sorted(candidates, key=lambda n: -values[n])
    assert [o["value"] for o in ranking["order"]] == [values[o["name"]] for o in ranking["order"]]
    assert ranking["best"] == max(candidates, key=values.get)
    assert f"by gradient_alignment: {ranking['best']}" in _last_line(tmp_path / "o" / "summary.md")
    # The gradients span exactly the parameters the patterns name.
    model = AutoModelForCausalLM.from_pretrained(tiny["policy_gpt2"])
    named = list(model.named_parameters())
    n_params = sum(p.numel() for n, p in named if any(fnmatch.fnmatchcase(n, pat) for pat in patterns))
    assert 0 < n_params < sum(p.numel() for p in model.parameters())
    assert report["forecast"]["gradient_num_parameters"] == n_params
    assert report["forecast"]["gradient_parameters"] == patterns and report["forecast"]["num_prompts"] == 5
    # gradient_max_prompts: the gradients come from the first 4 prompts; the other forecasts keep all 5.
    assert report["forecast"]["gradient_num_prompts"] == 4
    timing = json.loads((tmp_path / "o" / "timing.json").read_text())
    assert isinstance(timing["gradient_s"], float) and timing["gradient_s"] >= 0.0
    # The other forecasts are still there.
    assert all(c["forecast"]["gold_rate"]["value"] is not None for c in report["reward_models"])


# ----------------------------------------------------------------------------------------------------------
# Bad forecast settings: one line on stderr, exit code 2, nothing written

BAD = {
    "unknown_key": ({"lookahed_steps": 5}, "unknown key 'forecast.lookahed_steps' (allowed here: algorithm"),
    "steps_zero": ({"lookahead_steps": 0}, "forecast.lookahead_steps: Input should be greater than or equal to 1"),
    "step_size_zero": ({"lookahead_step_size": 0}, "forecast.lookahead_step_size: Input should be greater than 0"),
    "algorithm": ({"algorithm": "ppo"}, "forecast.algorithm: Input should be 'rloo' or 'grpo'"),
    "scale": ({"algorithm": "grpo", "grpo_scale_rewards": "prompt"}, "forecast.grpo_scale_rewards"),
    "max_prompts_one": ({"max_prompts": 1}, "forecast.max_prompts: Input should be greater than or equal to 2"),
    "primary_needs_gradient": ({"primary": "gradient_alignment"}, "primary: gradient_alignment needs gradient: true"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_forecast_config(case, tiny, tmp_path, capsys):
    change, message = BAD[case]
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, forecast=change)
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rmteach evaluate: error:") and message in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_gradient_parameters_matching_nothing_is_a_user_error(tiny, tmp_path, capsys):
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, preferences=None, reward_models=CALLABLES_ONLY[1:],
                            prompts={"path": str(tiny["prompts"]), "limit": 2},
                            forecast={"gradient": True, "gradient_parameters": ["no.such.*"]})
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "parameters ['no.such.*'] match no parameter of the policy" in err
