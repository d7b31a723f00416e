"""Curation as a grid dimension of `rmteach study`: the speed-up math, the grid, and a study end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rmteach.core.config import validate
from rmteach.core.data import write_jsonl
from rmteach.core.errors import UserError
from rmteach.study.config import StudyConfig
from rmteach.study.curation import mean_curve, reach_step, speedup, speedup_fraction
from rmteach.study.grid import expand
from rmteach.study.run import run_study

from study_world import GOLD, fake_evaluate, fake_train, make_config

# ----------------------------------------------------------------------------------------------------------
# The speed-up math, on curves computed by hand


def curve(steps, gold):
    return {"step": list(steps), "gold": list(gold)}


@pytest.mark.parametrize("target, want", [
    (1.0, 2.0),  # reached exactly at an eval step
    (1.5, 3.0),  # between steps 2 (1.0) and 4 (2.0): halfway
    (0.25, 0.5),  # within the first segment
    (2.5, None),  # never reached
    (-1.0, 0.0),  # already above at step 0
    (0.0, 0.0),  # exactly at step 0
])
def test_reach_step(target, want):
    assert reach_step([0, 2, 4], [0.0, 1.0, 2.0], target) == want


def test_reach_step_takes_the_first_crossing():
    # up to 1.0 at step 10, down, then up again: the first crossing of 0.8 is at step 8
    assert reach_step([0, 10, 20, 30], [0.0, 1.0, 0.0, 1.0], 0.8) == pytest.approx(8.0)


def test_speedup_fraction_by_hand():
    uniform = [curve([0, 5, 10], [0.0, 0.4, 0.8]), curve([0, 5, 10], [0.0, 0.6, 1.2])]  # target: (0.8 + 1.2) / 2 = 1
    curated = [curve([0, 5, 10], [0.0, 0.6, 1.6]), curve([0, 5, 10], [0.0, 1.0, 2.0])]  # mean: 0, 0.8, 1.8
    steps, mean = mean_curve(curated)
    assert steps.tolist() == [0, 5, 10] and mean == pytest.approx([0.0, 0.8, 1.8])
    # 1.0 is 0.2 of the way from 0.8 (step 5) to 1.8 (step 10): step 6, 6 / 10 of the steps
    assert speedup_fraction(uniform, curated) == pytest.approx(0.6)
    assert speedup_fraction(curated, uniform) is None  # the uniform arm never reaches the curated final 1.8
    assert speedup_fraction(uniform, uniform) == pytest.approx(1.0)


def test_speedup_bootstrap_is_seeded_and_brackets_the_estimate():
    uniform = [curve([0, 5, 10], [0.0, 0.5, g]) for g in (0.9, 1.0, 1.1)]
    curated = [curve([0, 5, 10], [0.0, g, 2 * g]) for g in (0.9, 1.0, 1.1)]
    a = speedup(uniform, curated, n_resamples=200, seed=[0, 3])
    assert a == speedup(uniform, curated, n_resamples=200, seed=[0, 3])
    assert a["speedup_steps"] == pytest.approx(0.5) and a["reach_step"] == pytest.approx(5.0) and a["steps"] == 10
    assert a["target"] == pytest.approx(1.0) and a["reached_share"] == 1.0
    lo, hi = a["ci95"]
    assert lo < 0.5 < hi
    # Extremes: uniform target 1.1 against the slowest curated seed (0.9 at step 5, 1.8 at step 10): 5 + 5 * 0.2 / 0.9
    assert lo >= 0.9 / 2.2 - 1e-9 and hi <= (5 + 5 * 0.2 / 0.9) / 10 + 1e-9
    assert speedup(uniform, curated, n_resamples=0, seed=0)["ci95"] is None


def test_speedup_interval_is_open_when_resamples_never_reach():
    uniform = [curve([0, 10], [0.0, 1.0]), curve([0, 10], [0.0, 3.0])]  # target 2
    curated = [curve([0, 10], [0.0, 2.0]), curve([0, 10], [0.0, 2.4])]  # mean final 2.2: reached at step 10/2.2*2
    s = speedup(uniform, curated, n_resamples=400, seed=1)
    assert s["speedup_steps"] == pytest.approx(2.0 / 2.2)
    assert s["ci95"][1] is None and 0 < s["reached_share"] < 1  # a resample of uniform (3.0, 3.0) is never reached


# ----------------------------------------------------------------------------------------------------------
# Config and grid


@pytest.mark.parametrize("block, match", [
    ({"rules": ["variance"], "keep": 0.5}, "needs 'none'"),
    ({"rules": ["none", "variance"]}, "needs keep"),
    ({"rules": ["none", "variance"], "keep": 0}, "count of prompts must be >= 1"),
    ({"rules": ["none", "variance"], "keep": 1.5}, r"fraction must be in \(0, 1\]"),
    ({"rules": ["none", "none"]}, "distinct"),
    ({"rules": ["none", "random"]}, "curation.rules.1"),
    ({"rules": ["none"], "kep": 0.5}, "unknown key 'curation.kep'"),
])
def test_bad_curation_blocks_are_refused(block, match):
    with pytest.raises(UserError, match=match):
        make_config(curation=block)


def test_grid_with_curation(tmp_path):
    out = tmp_path / "o"
    cfg = make_config(curation={"rules": ["variance", "none", "forecast"], "keep": 0.5}, seeds=[0, 1])
    assert cfg.curation.rules == ["none", "variance", "forecast"]  # the uniform arm first
    grid = expand(cfg, out)
    teachers = ["rm100", "rm50", "rm0", "perfect", "loud", GOLD]
    assert [(c.policy, c.reward_model, c.rule) for c in grid.curations] == [
        (p, rm, rule) for p in ("alpha", "beta") for rule in ("variance", "forecast") for rm in teachers]
    assert grid.curations[0].folder(out) == out / "curation" / "alpha" / "rm100" / "variance"
    folders = [r.folder(out).relative_to(out).as_posix() for r in grid.runs]
    assert len(folders) == len(set(folders)) == 2 * 3 * 6 * 2  # policies x arms x teachers x seeds
    assert folders[:2] == ["runs/alpha/rm100/seed0", "runs/alpha/rm100/seed1"]
    assert "runs/beta/gold+forecast/seed1" in folders and folders[12] == "runs/alpha/rm100+variance/seed0"
    for run in grid.runs:
        tp = run.config.train_prompts
        assert run.config.eval_prompts.path == "/data/eval.jsonl"  # held out, never curated
        if run.rule is None:
            assert tp.path == "/data/train.jsonl"  # the pool: the evaluate's prompts, by default the train prompts
        else:
            assert Path(tp.path) == out / "curation" / run.policy / run.reward_model / run.rule / "prompts.jsonl"
    uniform = {(r.policy, r.reward_model, r.seed): r.config for r in grid.runs if r.rule is None}
    for run in grid.runs:  # otherwise identical train settings
        twin = uniform[(run.policy, run.reward_model, run.seed)]
        assert run.config.model_dump(exclude={"train_prompts"}) == twin.model_dump(exclude={"train_prompts"})


def test_none_alone_is_todays_grid(tmp_path):
    today = expand(make_config(), tmp_path)
    none = expand(make_config(curation={"rules": ["none"]}), tmp_path)
    assert none.curations == [] and today.curations == []
    assert [(r.key, r.config) for r in none.runs] == [(r.key, r.config) for r in today.runs]


def test_uniform_arm_trains_on_the_pool(tmp_path):
    prompts = {"train": {"path": "/data/train.jsonl"}, "eval": {"path": "/data/eval.jsonl"},
               "evaluate": {"path": "/data/pool.jsonl", "columns": {"prompt": "text"}}}
    grid = expand(make_config(prompts=prompts, curation={"rules": ["none", "zero_std"]}), tmp_path)
    uniform = [r for r in grid.runs if r.rule is None]
    curated = [r for r in grid.runs if r.rule == "zero_std"]
    assert {r.config.train_prompts.path for r in uniform} == {"/data/pool.jsonl"}
    assert all(r.config.train_prompts.columns == {"prompt": "text"} for r in curated)  # the pool's columns kept
    assert {r.config.train_prompts.path for r in expand(make_config(prompts=prompts), tmp_path).runs} == {
        "/data/train.jsonl"}  # without curation: today's study


# ----------------------------------------------------------------------------------------------------------
# End to end: the real evaluate on tiny models, fake training that learns faster on fewer prompts


def fewer_is_faster(cfg, out, *, resume, overwrite):
    """A gold curve rising by 0.1 x (pool size / train set size) x (1 + seed / 10) over the run."""
    n = sum(1 for line in Path(cfg.train_prompts.path).read_text().splitlines() if line.strip())
    inc = 0.1 * (8 / n) * (1 + cfg.seed / 10)
    records = [{"step": s, "eval_gold_reward": 0.2 + inc * s / cfg.steps, "eval_proxy_reward": inc * s / cfg.steps}
               for s in range(0, cfg.steps + 1, cfg.eval_every)]
    write_jsonl(out / "metrics.jsonl", records)
    return {}


def tiny_study(tiny, **changes) -> StudyConfig:
    d = {
        "policies": [{"name": "alpha", "path": str(tiny["policy_gpt2"])}],
        "reward_models": [{"name": "cubed", "callable": "rm_fns:gold_cubed"},
                          {"name": "tinyrm", "path": str(tiny["rm_llama"])}],
        "ground_truth": {"name": GOLD, "callable": "rm_fns:gold"},
        "prompts": {"train": {"path": str(tiny["prompts"])}, "eval": {"path": str(tiny["prefs"])}},
        "seeds": [0, 1],
        "curation": {"rules": ["none", "variance", "forecast"], "keep": 0.5, "seed": 3},
        "evaluate": {"sampling": {"samples_per_prompt": 4, "max_new_tokens": 6}, "device": "cpu",
                     "bootstrap_samples": 20},
        "train": {"steps": 4, "eval_every": 2},
        "analysis": {"bootstrap_samples": 50},
    }
    d.update(changes)
    return validate(StudyConfig, d, "test")


def top(scores: np.ndarray, k: int) -> set[int]:
    """The indices of the k highest finite scores, checked to have no tie at the cut."""
    order = sorted((i for i in range(len(scores)) if np.isfinite(scores[i])), key=lambda i: -scores[i])
    assert len(order) == k or scores[order[k - 1]] != scores[order[k]]
    return set(order[:k])


@pytest.fixture(scope="module")
def curated_study(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("curated") / "s"
    return out, run_study(tiny_study(tiny), out, train_fn=fewer_is_faster)


def test_curated_sets_hold_what_the_selection_picks(tiny, curated_study):
    out, study = curated_study
    table = pd.read_parquet(out / "evaluate" / "alpha" / "prompts.parquet")
    pool = [json.loads(line) for line in Path(tiny["prompts"]).read_text().splitlines()]
    assert len(study["curation"]["sets"]) == 3 * 2  # (cubed, tinyrm, gold) x (variance, forecast)
    for rm in ("cubed", "tinyrm", GOLD):
        mine = table[table["reward_model"] == rm].reset_index(drop=True)
        for rule, column in (("variance", "variance"), ("forecast", "forecast_term")):
            scores = mine[column].to_numpy(dtype=float)
            k = math.ceil(0.5 * np.isfinite(scores).sum())
            want = [pool[i] for i in sorted(top(scores, k))]  # the source's rows, in its order
            folder = out / "curation" / "alpha" / rm / rule
            got = [json.loads(line) for line in (folder / "prompts.jsonl").read_text().splitlines()]
            assert got == want
            sel = json.loads((folder / "selection.json").read_text())
            assert sel["kept_ids"] == [r["id"] for r in want] and sel["n_kept"] == k and sel["seed"] == 3


def test_curated_runs_train_on_their_set_and_eval_on_the_eval_prompts(tiny, curated_study):
    out, study = curated_study
    cur = study["curation"]
    assert len(study["runs"]) == 3 * 2 and len(cur["runs"]) == 2 * 3 * 2  # uniform; rules x teachers x seeds
    assert all("rule" not in r for r in study["runs"])  # the correlations and claims see the uniform arm only
    for r in study["runs"] + cur["runs"]:
        train = json.loads((out / r["folder"] / "done.json").read_text())["config"]["train"]
        assert train["eval_prompts"]["path"] == str(tiny["prefs"])
        rule = r.get("rule")
        if rule is None:
            assert r["folder"] == f"runs/alpha/{r['reward_model']}/seed{r['seed']}"
            assert train["train_prompts"]["path"] == str(tiny["prompts"])
        else:
            assert r["folder"] == f"runs/alpha/{r['reward_model']}+{rule}/seed{r['seed']}"
            assert train["train_prompts"]["path"] == str(out / "curation" / "alpha" / r["reward_model"] / rule /
                                                         "prompts.jsonl")


def test_speedups_in_study_json_summary_and_report(curated_study):
    out, study = curated_study
    comps = study["curation"]["comparisons"]
    assert len(comps) == 6
    for c in comps:  # half the prompts learn twice as fast: the uniform final is reached at half the steps
        assert c["speedup_steps"] == pytest.approx(0.5) and c["reach_step"] == pytest.approx(2.0)
        lo, hi = c["ci95"]
        assert lo <= 0.5 <= hi and hi < 0.6
        d = c["final_gold_difference"]
        assert d["difference"] == pytest.approx(0.1 * 1.05) and d["resolved"]  # (0.2 - 0.1) x mean(1, 1.1)
    assert json.loads((out / "study.json").read_text())["curation"] == json.loads(json.dumps(study["curation"]))
    timing = json.loads((out / "timing.json").read_text())
    assert timing["curation_s"]["alpha"] >= 0
    assert "## Curation: speed-up over the uniform prompt set" in (out / "summary.md").read_text()
    page = (out / "report.html").read_text()
    assert "<h2>Curation: uniform vs curated prompt sets</h2>" in page and (out / "plots" / "curation_alpha.png").is_file()


@pytest.mark.slow  # a variant of the fast tier's run: the full tier (make test-all)
def test_a_curated_study_resumes_without_training_again(tiny, curated_study):
    out, _ = curated_study
    calls = []

    def counting(cfg, folder, **kw):
        calls.append(folder)
        return fewer_is_faster(cfg, folder, **kw)

    run_study(tiny_study(tiny), out, train_fn=counting)
    assert calls == []
    # Another keep: only the curated runs train again (their sets changed); the uniform runs are reused.
    run_study(tiny_study(tiny, curation={"rules": ["none", "variance"], "keep": 2}), out, overwrite=True,
              train_fn=counting)
    assert sorted(p.relative_to(out).as_posix() for p in calls) == [
        f"runs/alpha/{rm}+variance/seed{s}" for rm in ("cubed", GOLD, "tinyrm") for s in (0, 1)]


def test_no_curation_block_writes_no_curation(tmp_path):
    study = run_study(make_config(seeds=[0], reward_models=[{"name": "rm100", "callable": "rm_fns:gold"}]),
                      tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    assert "curation" not in study and not (tmp_path / "s" / "curation").exists()


def test_curation_needs_the_evaluates_prompt_table(tmp_path):
    cfg = make_config(seeds=[0], reward_models=[{"name": "rm100", "callable": "rm_fns:gold"}],
                      curation={"rules": ["none", "variance"], "keep": 0.5})
    with pytest.raises(UserError, match="wrote no prompts.parquet"):
        run_study(cfg, tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)


@pytest.mark.slow
def test_real_training_on_curated_sets(tiny, tmp_path):
    """The real trainer on a curated set of the tiny world: it trains on the kept prompts only."""
    train = {"learning_rate": 0.01, "kl_coef": 0.0, "steps": 2, "eval_every": 2, "prompts_per_step": 2,
             "samples_per_prompt": 2, "max_new_tokens": 6, "eval_samples_per_prompt": 2, "device": "cpu",
             "report_to": []}
    study = run_study(tiny_study(tiny, seeds=[0], train=train, train_on_ground_truth=False,
                                 curation={"rules": ["none", "variance"], "keep": 4}), tmp_path / "s")
    runs = study["curation"]["runs"]
    assert len(runs) == 2 and all(r["curve"]["step"] == [0, 2] for r in runs)
    for r in runs:
        assert json.loads((tmp_path / "s" / r["folder"] / "run.json").read_text())["status"] == "finished"
    assert len(study["curation"]["comparisons"]) == 2


def test_an_older_study_manifest_learns_the_curation_folder(tmp_path):
    from rmteach.core import outdir

    old = [n for n in outdir.OWNED["study"] if n != "curation"]  # a study folder claimed before curation existed
    (tmp_path / outdir.OWNERSHIP).write_text(json.dumps({"schema": outdir.SCHEMA, "command": "study", "names": old}))
    (tmp_path / "curation").mkdir()
    assert "curation" in outdir.foreign(tmp_path, "study")
    outdir.claim(tmp_path, "study")
    assert outdir.foreign(tmp_path, "study") is None  # now ours: --overwrite may clear it
