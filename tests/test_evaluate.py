"""`rmteach evaluate` end to end on tiny local models, and every bad input the issue lists."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import run_cli, write_eval_config


@pytest.fixture(scope="module")
def evaluated(tiny, tmp_path_factory):
    """One evaluate run through the CLI, shared by the checks that only read its outputs."""
    import os

    root = tmp_path_factory.mktemp("eval")
    os.environ["RMTEACH_CACHE_DIR"] = str(root / "cache")
    cfg = write_eval_config(root / "eval.yaml", tiny)
    from rmteach.cli import main

    assert main(["evaluate", "--config", str(cfg), "--out", str(root / "out")]) == 0
    return root


def _recompute(frame: pd.DataFrame, name: str) -> dict:
    """Recompute one RM's figures from rewards.parquet with pandas and plain loops (not rmteach.metrics)."""
    mine = frame[frame.reward_model == name]
    mean, std = mine.reward.mean(), mine.reward.std(ddof=1)
    z = mine.assign(z=(mine.reward - mean) / std)
    var = z.groupby("prompt_id", sort=False).z.var(ddof=1)
    return {"mean": mean, "std": std, "var": var}


def _grid(frame: pd.DataFrame, name: str) -> dict[str, list[float]]:
    mine = frame[frame.reward_model == name].sort_values(["prompt_id", "sample"])
    return {pid: list(g.reward) for pid, g in mine.groupby("prompt_id")}


def test_report_matches_recomputation_from_parquet(evaluated):
    report = json.loads((evaluated / "out" / "report.json").read_text())
    frame = pd.read_parquet(evaluated / "out" / "rewards.parquet")
    prefs = pd.read_parquet(evaluated / "out" / "preference_rewards.parquet")
    assert report["schema"] == "rmteach.evaluate/1"
    assert report["num_prompts"] == 8 and report["samples_per_prompt"] == 4
    assert list(frame.columns[:4]) == ["prompt_id", "sample", "reward_model", "reward"]
    assert len(frame) == 8 * 4 * 4  # prompts x samples x (3 RMs + gold)
    assert pd.api.types.is_string_dtype(frame.prompt_id) and frame["sample"].dtype == np.int64
    gold = _grid(frame, "gold")
    gp = prefs[prefs.reward_model == "gold"].set_index("pair_id")
    names = [rm["name"] for rm in report["reward_models"]]
    assert names == ["rm_llama", "rm_other_tok", "gold_cubed", "gold"]
    for rm in report["reward_models"]:
        ref = _recompute(frame, rm["name"])
        assert rm["normalization"]["mean"] == pytest.approx(ref["mean"], abs=1e-9)
        assert rm["normalization"]["std"] == pytest.approx(ref["std"], abs=1e-9)
        v = rm["reward_variance"]
        assert v["mean"] == pytest.approx(ref["var"].mean(), abs=1e-9)
        assert v["median"] == pytest.approx(ref["var"].median(), abs=1e-9)
        assert v["p10"] == pytest.approx(ref["var"].quantile(0.1), abs=1e-9)
        assert v["p90"] == pytest.approx(ref["var"].quantile(0.9), abs=1e-9)
        assert v["frac_below_0.01"] == pytest.approx((ref["var"] < 0.01).mean(), abs=1e-9)
        # Bootstrap CI: same resampling scheme, drawn here from the seed in the report.
        vals = ref["var"].loc[[p for p in frame.prompt_id.unique()]].to_numpy()
        idx = np.random.default_rng(report["seed"]).integers(0, len(vals), size=(200, len(vals)))
        boots = vals[idx].mean(axis=1)
        assert v["ci95"] == pytest.approx([np.quantile(boots, 0.025), np.quantile(boots, 0.975)], abs=1e-9)
        # On-policy accuracy: explicit loop over all pairs of samples.
        grid = _grid(frame, rm["name"])
        per_prompt = []
        for pid, rs in grid.items():
            gs = gold[pid]
            agree = [np.sign(rs[i] - rs[j]) == np.sign(gs[i] - gs[j]) for i, j in itertools.combinations(range(4), 2)]
            per_prompt.append(np.mean(agree))
        assert rm["onpolicy_accuracy"] == pytest.approx(np.mean(per_prompt), abs=1e-9)
        # Off-policy accuracy: chosen must beat rejected; vs gold: same sign as the gold difference.
        p = prefs[prefs.reward_model == rm["name"]].set_index("pair_id")
        assert rm["offpolicy_accuracy"] == pytest.approx((p.reward_chosen > p.reward_rejected).mean(), abs=1e-9)
        same = np.sign(p.reward_chosen - p.reward_rejected) == np.sign(gp.reward_chosen - gp.reward_rejected)
        assert rm["offpolicy_accuracy_vs_gold"] == pytest.approx(same.mean(), abs=1e-9)


def test_gold_and_its_monotone_transform_are_perfectly_accurate(evaluated):
    report = json.loads((evaluated / "out" / "report.json").read_text())
    by_name = {rm["name"]: rm for rm in report["reward_models"]}
    assert by_name["gold"]["is_ground_truth"] and report["ground_truth"] == "gold"
    assert by_name["gold"]["onpolicy_accuracy"] == 1.0
    assert by_name["gold_cubed"]["onpolicy_accuracy"] == 1.0
    # Our gold prefers 'w1 x' (one w1, 2 words) over 'x w5 w6' (no w1, 3 words): accuracy 1 off-policy too.
    assert by_name["gold"]["offpolicy_accuracy"] == 1.0


def test_summary_and_rewards_text(evaluated):
    summary = (evaluated / "out" / "summary.md").read_text()
    assert "| rm_other_tok |" in summary and "gold (ground truth)" in summary
    frame = pd.read_parquet(evaluated / "out" / "rewards.parquet")
    # The gold callable saw the raw prompt text, not the chat-formatted one.
    row = frame[frame.reward_model == "gold"].iloc[0]
    expected = row.response.split().count("w1") + 0.1 * len(row.response.split()) + 0.01 * len(row.prompt)
    assert row.reward == pytest.approx(expected)
    assert "Assistant:" not in row.prompt


def test_same_seed_gives_identical_report_and_cache_is_used(evaluated, tiny, tmp_path, capsys):
    cfg_path = write_eval_config(tmp_path / "eval.yaml", tiny)
    code, out, err = run_cli(["evaluate", "-c", cfg_path, "-o", tmp_path / "a"], capsys)
    assert code == 0 and "using cached samples" not in err
    code, out, err = run_cli(["evaluate", "-c", cfg_path, "-o", tmp_path / "b"], capsys)
    assert code == 0 and "using cached samples" in err
    a = (tmp_path / "a" / "report.json").read_text()
    assert a == (tmp_path / "b" / "report.json").read_text()
    # The shared-fixture run (another cache folder, so sampled afresh) agrees byte for byte too.
    assert a == (evaluated / "out" / "report.json").read_text()


@pytest.mark.slow
def test_different_seed_changes_samples(tiny, tmp_path, capsys):
    base = yaml.safe_load(write_eval_config(tmp_path / "e.yaml", tiny).read_text())
    base["sampling"]["seed"] = 8
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(base))
    code, *_ = run_cli(["evaluate", "-c", tmp_path / "e.yaml", "-o", tmp_path / "o"], capsys)
    assert code == 0
    resp = pd.read_parquet(tmp_path / "o" / "rewards.parquet").response
    write_eval_config(tmp_path / "f.yaml", tiny)
    run_cli(["evaluate", "-c", tmp_path / "f.yaml", "-o", tmp_path / "p"], capsys)
    assert list(resp) != list(pd.read_parquet(tmp_path / "p" / "rewards.parquet").response)


@pytest.mark.slow
def test_set_override_and_llama_policy(tiny, tmp_path, capsys):
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, preferences=None, ground_truth=None)
    code, out, err = run_cli(
        ["evaluate", "-c", cfg, "-o", tmp_path / "o", "--set", f"policy.path={tiny['policy_llama']}",
         "--set", "sampling.samples_per_prompt=2"], capsys,
    )
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["samples_per_prompt"] == 2 and report["config"]["policy"]["path"] == str(tiny["policy_llama"])
    assert all(rm["onpolicy_accuracy"] is None and rm["offpolicy_accuracy"] is None for rm in report["reward_models"])
    assert "reward models as teachers" in out  # the table goes to stdout


def test_constant_rm_reports_zero_variance_with_a_warning(tiny, tmp_path, capsys):
    cfg = write_eval_config(
        tmp_path / "e.yaml", tiny, reward_models=[{"name": "flat", "callable": "rm_fns:constant"}]
    )
    code, out, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys)
    assert code == 0
    assert "reward model 'flat' gave the same reward to every sample (std 0)" in " ".join(err.split())
    flat = json.loads((tmp_path / "o" / "report.json").read_text())["reward_models"][0]
    assert flat["normalization"]["std"] == 0.0 and flat["reward_variance"]["mean"] == 0.0


# ---------------------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit code 2, no traceback, nothing written to OUT.

BAD = {
    "unknown_key": ({"sampling": {"samples_per_prompt": 4, "temprature": 1.0}},
                    "unknown key 'sampling.temprature' (allowed here: samples_per_prompt, temperature"),
    "wrong_type": ({"sampling": {"samples_per_prompt": "many"}}, "sampling.samples_per_prompt: Input should be a valid integer"),
    "k_below_2": ({"sampling": {"samples_per_prompt": 1}}, "sampling.samples_per_prompt: Input should be greater than or equal to 2"),
    "missing_prompts": ({"prompts": {"path": "/nonexistent/prompts.jsonl"}}, "prompt set not found: /nonexistent/prompts.jsonl"),
    "missing_policy": ({"policy": {"path": "./no_such_policy"}}, "policy path does not exist"),
    "two_heads": ({"reward_models": [{"name": "two", "path": "RM_TWO"}]},
                  "reward model 'two' has 2 outputs; rmteach needs a scalar head"),
    "nan": ({"reward_models": [{"name": "nanny", "callable": "rm_fns:nan_on_w3"}]},
            "reward model 'nanny' returned nan for prompt id 'p1'"),
    "wrong_length": ({"reward_models": [{"name": "short", "callable": "rm_fns:wrong_length"}]},
                     "reward model 'short' (rm_fns:wrong_length) returned 1 rewards for 32 completions"),
    "bad_callable": ({"reward_models": [{"name": "x", "callable": "rm_fns:nope"}]}, "module 'rm_fns' has no attribute 'nope'"),
    "no_source": ({"reward_models": [{"name": "x"}]}, "needs exactly one of 'path' or 'callable'"),
    "dup_names": ({"reward_models": [{"name": "gold", "callable": "rm_fns:gold"}]}, "reward model names must be unique"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config(case, tiny, tmp_path, capsys):
    change, message = BAD[case]
    if case == "two_heads":
        change = {"reward_models": [{"name": "two", "path": str(tiny["rm_two_heads"])}]}
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, **change)
    code, out, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("rmteach evaluate: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "rows, message",
    [
        ([], "prompt set is empty"),
        ([{"text": "w1"}], "row 0 has no 'prompt' column (needs: prompt)"),
    ],
)
def test_bad_prompt_set(rows, message, tiny, tmp_path, capsys):
    p = tmp_path / "prompts.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, prompts={"path": str(p)})
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys)
    assert code == 2 and message in err and not (tmp_path / "o").exists()


def test_preference_set_without_chosen_rejected(tiny, tmp_path, capsys):
    p = tmp_path / "prefs.jsonl"
    p.write_text(json.dumps({"prompt": "w1", "good": "w2", "bad": "w3"}) + "\n")
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, preferences={"path": str(p)})
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys)
    assert code == 2 and "row 0 has no 'chosen' column (needs: prompt, chosen, rejected)" in err


def test_out_dir_holding_another_run_is_refused_unless_overwrite(tiny, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("someone else's")
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, preferences=None)
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", out], capsys)
    assert code == 2 and "already holds a different evaluate run" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # --overwrite replaces only an evaluate output: a folder holding the user's file is refused, the file kept.
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", out, "--overwrite"], capsys)
    assert code == 2 and "notes.txt" in err and (out / "notes.txt").read_text() == "someone else's"
    (out / "notes.txt").unlink()
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", out, "--overwrite"], capsys)
    assert code == 0 and (out / "report.json").is_file()
    # The same run again is fine; a different one is refused.
    assert run_cli(["evaluate", "-c", cfg, "-o", out], capsys)[0] == 0
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", out, "--set", "sampling.seed=99"], capsys)
    assert code == 2 and "already holds a different evaluate run" in err


def test_missing_config_and_bad_yaml(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", "-c", tmp_path / "none.yaml", "-o", tmp_path / "o"], capsys)
    assert code == 2 and "config file not found" in err
    (tmp_path / "bad.yaml").write_text("policy: [unclosed\n")
    code, _, err = run_cli(["evaluate", "-c", tmp_path / "bad.yaml", "-o", tmp_path / "o"], capsys)
    assert code == 2 and "not valid YAML" in err


@pytest.mark.slow
def test_one_reward_model_in_memory_at_a_time(tiny, tmp_path, monkeypatch):
    """Each RM's weights are freed before the next one loads (memory must not grow with the RM count)."""
    import gc
    import weakref

    from rmteach.backends import reward_hf as rewards
    from rmteach.core.config import load_config
    from rmteach.evaluate.config import EvaluateConfig
    from rmteach.evaluate.run import evaluate

    alive: list[weakref.ref] = []
    original = rewards.HFRewardModel.__init__

    def tracking_init(self, *args, **kwargs):
        gc.collect()
        assert all(ref() is None for ref in alive), "a previous RM is still in memory"
        original(self, *args, **kwargs)
        alive.append(weakref.ref(self.model))

    monkeypatch.setattr(rewards.HFRewardModel, "__init__", tracking_init)
    cfg = load_config(EvaluateConfig, write_eval_config(tmp_path / "e.yaml", tiny))
    evaluate(cfg)
    gc.collect()
    assert len(alive) == 2 and all(ref() is None for ref in alive)
