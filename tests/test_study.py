"""`rmteach study` with a fake trainer (and mostly a fake evaluate) whose outcomes are known by construction.

The train block is validated by the real `TrainConfig`; only `run_train` itself is replaced.

The fakes are module-level so that worker processes (`jobs: 2`) can import them by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import run_cli

from rmteach import io
from rmteach.config import to_plain, validate
from rmteach.data import write_jsonl
from rmteach.errors import UserError
from rmteach.study import run_study
from rmteach.study_config import StudyConfig
from rmteach.train_config import TrainConfig

POLICIES = ("alpha", "beta")
CANDIDATES = ("rm100", "rm50", "rm0", "perfect", "loud")
GOLD = "gold"
# (policy, RM) -> (reward variance, on-policy accuracy, off-policy accuracy vs gold, gold increase per run)
# alpha: variance orders the teachers except loud (high variance, inaccurate, slow); beta: rm0 teaches best.
WORLD = {
    ("alpha", "rm100"): (0.60, 0.66, 0.63, 0.50),
    ("alpha", "rm50"): (0.50, 0.64, 0.76, 0.40),
    ("alpha", "rm0"): (0.30, 0.59, 0.76, 0.20),
    ("alpha", "perfect"): (0.10, 1.00, 1.00, 0.05),
    ("alpha", "loud"): (0.90, 0.52, 0.55, 0.30),
    ("alpha", "gold"): (0.25, 1.00, 1.00, 0.35),
    ("beta", "rm100"): (0.40, 0.62, 0.63, 0.30),
    ("beta", "rm50"): (0.45, 0.63, 0.76, 0.35),
    ("beta", "rm0"): (0.70, 0.60, 0.76, 0.60),
    ("beta", "perfect"): (0.05, 1.00, 1.00, 0.02),
    ("beta", "loud"): (0.95, 0.51, 0.55, 0.10),
    ("beta", "gold"): (0.30, 1.00, 1.00, 0.40),
}
SEED_BUMP = 0.01  # each seed adds this much per seed index to the gold increase


def gold_increase(policy: str, rm: str, seed: int) -> float:
    return WORLD[(policy, rm)][3] + SEED_BUMP * seed


def fake_train(cfg: TrainConfig, out: Path, *, resume: bool, overwrite: bool) -> dict:
    """Write metrics.jsonl with a straight gold curve rising by `gold_increase` over the run."""
    assert overwrite and not resume
    report = json.loads(Path(cfg.normalization.path).read_text())  # the normalization must be readable
    assert cfg.reward_model.name in [c["name"] for c in report["reward_models"]]
    inc = gold_increase(cfg.policy.display_name, cfg.reward_model.name, cfg.seed)
    records = []
    for step in range(cfg.steps + 1):
        rec = {"step": step, "proxy_reward": 0.0, "gold_reward": 0.0, "reward_variance": 1.0, "kl": 0.0,
               "learning_rate": cfg.learning_rate, "wall_time": 123.0 + step}
        if step % cfg.eval_every == 0:
            rec.update(eval_gold_reward=0.2 + inc * step / cfg.steps, eval_proxy_reward=-0.5 + 2 * inc * step / cfg.steps,
                       eval_reward_variance=0.5)
        records.append(rec)
    write_jsonl(out / "metrics.jsonl", records)
    return {"final": inc}


def fake_evaluate(ecfg, folder: Path) -> dict:
    """A report.json with the WORLD's predictors; normalization (mean i/10, std 1 + i) by RM position."""
    policy = ecfg.policy.display_name
    cards = []
    for i, rm in enumerate(ecfg.all_reward_models()):
        var, on, off, _ = WORLD[(policy, rm.name)]
        cards.append({"name": rm.name, "is_ground_truth": rm.name == GOLD,
                      "normalization": {"mean": i / 10, "std": 1.0 + i},
                      "reward_variance": {"mean": var}, "onpolicy_accuracy": on, "offpolicy_accuracy": 0.5,
                      "offpolicy_accuracy_vs_gold": off})
    report = {"schema": "rmteach.evaluate/1", "policy": policy, "reward_models": cards, "config": to_plain(ecfg)}
    io.write_json(folder / "report.json", report)
    return report


def study_dict(**changes) -> dict:
    cfg = {
        "name": "fake world",
        "policies": [{"name": p, "path": f"/models/{p}"} for p in POLICIES],
        "reward_models": [{"name": n, "callable": "rm_fns:gold"} for n in CANDIDATES],
        "ground_truth": {"name": GOLD, "callable": "rm_fns:gold"},
        "prompts": {"train": {"path": "/data/train.jsonl"}, "eval": {"path": "/data/eval.jsonl"}},
        "preferences": {"path": "/data/prefs.jsonl"},
        "seeds": [0, 1],
        "evaluate": {"sampling": {"samples_per_prompt": 4}, "device": "cpu"},
        "train": {"steps": 8, "eval_every": 2},
        "analysis": {"bootstrap_samples": 20},
    }
    cfg["reward_models"][3]["transform"] = {"fraction": 0.5, "factor": 0.001}
    cfg.update(changes)
    return cfg


def make_config(**changes) -> StudyConfig:
    return validate(StudyConfig, study_dict(**changes), "study.yaml")


# ----------------------------------------------------------------------------------------------------------
# End to end


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One whole study with the fakes, shared by the checks that only read its outputs."""
    out = tmp_path_factory.mktemp("study") / "out"
    return out, run_study(make_config(), out, train_fn=fake_train, evaluate_fn=fake_evaluate)


def test_runs_outcomes_and_normalization(finished):
    out, study = finished
    saved = json.loads((out / "study.json").read_text())
    assert saved == json.loads(json.dumps(study)) and saved["schema"] == "rmteach.study/1"
    assert len(saved["runs"]) == 2 * (5 + 1) * 2  # policies x (candidates + ground truth) x seeds
    for r in saved["runs"]:
        inc = gold_increase(r["policy"], r["reward_model"], r["seed"])
        o = r["outcomes"]
        assert o["gold_increase@1"] == pytest.approx(inc)
        assert o["gold_increase@0.25"] == pytest.approx(inc / 4) and o["gold_increase@0.5"] == pytest.approx(inc / 2)
        assert o["gold_auc"] == pytest.approx(inc / 2)  # a straight line from 0 to inc
        assert o["proxy_increase@1"] == pytest.approx(2 * inc)
        assert r["predictors"]["reward_variance"] == WORLD[(r["policy"], r["reward_model"])][0]
        # The run trained with the RM's normalization from its policy's evaluate report.
        done = json.loads((out / r["folder"] / "done.json").read_text())["config"]
        report_path = out / "evaluate" / r["policy"] / "report.json"
        card = next(c for c in json.loads(report_path.read_text())["reward_models"] if c["name"] == r["reward_model"])
        assert done["normalization"] == card["normalization"] == r["evaluate"]["normalization"]
        train = done["train"]
        assert train["normalization"]["path"] == str(report_path)
        assert train["reward_model"]["name"] == r["reward_model"] and train["seed"] == r["seed"]
        assert train["ground_truth"]["name"] == GOLD and train["steps"] == 8 and train["eval_every"] == 2
        assert train["train_prompts"]["path"] == "/data/train.jsonl" and train["eval_prompts"]["path"] == "/data/eval.jsonl"
        assert (train["reward_model"]["transform"] is not None) == (r["reward_model"] == "perfect")
        assert "role" not in train["reward_model"]
    assert "wall" not in json.dumps(saved)  # wall times live in timing.json only
    timing = json.loads((out / "timing.json").read_text())
    assert len(timing["train_s"]) == 24 and timing["total_s"] > 0


def test_correlations_rankings_and_claims(finished):
    _, study = finished
    mean = {k: v[3] + SEED_BUMP * 0.5 for k, v in WORLD.items()}  # seeds 0 and 1
    scopes = study["correlations"]["scopes"]
    assert list(scopes) == ["alpha", "beta", "pooled"] and scopes["pooled"]["n"] == 10
    assert study["correlations"]["include_ground_truth"] is False
    # alpha, variance vs gold increase: variance ranks (4 3 2 1 5) vs increase ranks (5 4 2 1 3): sum d^2 = 6
    rho = scopes["alpha"]["table"]["reward_variance"]["gold_increase@1"]["spearman"]["value"]
    assert rho == pytest.approx(1 - 6 * 6 / 120)
    x = np.array([WORLD[("alpha", n)][0] for n in CANDIDATES])
    y = np.array([mean[("alpha", n)] for n in CANDIDATES])
    r = scopes["alpha"]["table"]["reward_variance"]["gold_increase@1"]["pearson"]["value"]
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks = study["rankings"]
    assert [row["reward_model"] for row in ranks["policies"]["alpha"]] == ["rm100", "rm50", "loud", "rm0", "perfect", "gold"]
    assert ranks["best"] == {"alpha": "rm100", "beta": "rm0"}
    claims = {c["id"]: c for c in study["claims"]}
    assert claims["a"]["status"] == "held"
    assert claims["a"]["evidence"]["alpha"]["perfect"] == "perfect"  # found from the data: transform + accuracy 1
    assert claims["a"]["evidence"]["alpha"]["n_faster"] == 4
    assert claims["b"]["status"] == "held"
    assert claims["b"]["evidence"]["alpha"]["variance_spearman"] == pytest.approx(0.7)
    assert claims["c"]["status"] == "held"


def test_report_files(finished):
    out, study = finished
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('src="data:image/png;base64,') == 2 + 5  # curves per policy + one scatter per predictor
    assert "http://" not in page and "https://" not in page  # self-contained
    heads = ["<h2>Claims</h2>", "<h2>Reward curves</h2>", "<h2>Correlations</h2>", "<h2>Rankings per policy</h2>",
             "<h2>Configuration</h2>"]
    assert [page.index(h) for h in heads] == sorted(page.index(h) for h in heads)
    assert page.count("HELD") == 3 and "0.834" in page  # the paper's value beside ours
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == sorted([f"curves_{p}.png" for p in POLICIES] + [f"scatter_{p}.png" for p in study["predictors"]])
    assert all((out / "plots" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
    md = (out / "summary.md").read_text()
    assert "**(a) held**" in md and "| rank | reward model |" in md


# ----------------------------------------------------------------------------------------------------------
# Resume


class Counting:
    """A trainer that records which runs it trained and fails on the `fail_at`-th call (a "kill")."""

    def __init__(self, fail_at: int | None = None):
        self.calls: list[str] = []
        self.fail_at = fail_at

    def __call__(self, cfg, out, *, resume, overwrite):
        self.calls.append(f"{cfg.policy.display_name}/{cfg.reward_model.name}/seed{cfg.seed}")
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            (out / "metrics.jsonl").parent.mkdir(parents=True, exist_ok=True)
            (out / "metrics.jsonl").write_text('{"step": 0}\n')  # half a run
            raise KeyboardInterrupt
        return fake_train(cfg, out, resume=resume, overwrite=overwrite)


def test_killed_study_resumes_and_matches_uninterrupted(tmp_path, finished):
    cfg = make_config()
    killed = Counting(fail_at=7)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path / "s", train_fn=killed, evaluate_fn=fake_evaluate)
    assert not (tmp_path / "s" / "study.json").exists()
    assert len(list((tmp_path / "s" / "runs").rglob("done.json"))) == 6
    evaluated = []

    def counting_evaluate(ecfg, folder):
        evaluated.append(folder)
        return fake_evaluate(ecfg, folder)

    resumed = Counting()
    run_study(cfg, tmp_path / "s", train_fn=resumed, evaluate_fn=counting_evaluate)
    assert evaluated == []  # both evaluate reports reused
    assert resumed.calls[0] == killed.calls[6] and len(resumed.calls) == 24 - 6
    assert not set(resumed.calls) & set(killed.calls[:6])
    # Same seeds, same fakes: the resumed study.json equals the uninterrupted one.
    assert (tmp_path / "s" / "study.json").read_text() == (finished[0] / "study.json").read_text()
    again = Counting()
    run_study(cfg, tmp_path / "s", train_fn=again, evaluate_fn=fake_evaluate)
    assert again.calls == []


def test_a_different_study_needs_overwrite_and_redoes_changed_runs(tmp_path):
    run_study(make_config(seeds=[0]), tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    changed = make_config(seeds=[0], train={"steps": 4, "eval_every": 2})
    with pytest.raises(UserError, match="already holds a different study"):
        run_study(changed, tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    counting = Counting()
    study = run_study(changed, tmp_path / "s", overwrite=True, train_fn=counting, evaluate_fn=fake_evaluate)
    assert len(counting.calls) == 12 and {r["outcomes"]["steps"] for r in study["runs"]} == {4}


# ----------------------------------------------------------------------------------------------------------
# Small and bad studies


def test_one_rm_study_reports_that_correlations_need_three(tmp_path):
    cfg = make_config(reward_models=[{"name": "rm100", "callable": "rm_fns:gold"}], seeds=[0])
    study = run_study(cfg, tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    assert "correlations need at least 3 reward models" in (tmp_path / "s" / "report.html").read_text()
    claims = {c["id"]: c["status"] for c in study["claims"]}
    assert claims == {"a": "undetermined", "b": "undetermined", "c": "not held"}  # rm100 is best for both


def test_only_and_rm_policies_restrict_the_grid(tmp_path):
    rms = study_dict()["reward_models"]
    rms[4]["policies"] = ["beta"]  # loud only with beta
    cfg = make_config(reward_models=rms, only={"reward_models": ["rm100", "rm50", "rm0", "loud"]},
                      train_on_ground_truth=False, seeds=[0])
    study = run_study(cfg, tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    got = sorted((r["policy"], r["reward_model"]) for r in study["runs"])
    want = sorted([(p, n) for p in POLICIES for n in ("rm100", "rm50", "rm0")] + [("beta", "loud")])
    assert got == want
    report = json.loads((tmp_path / "s" / "evaluate" / "alpha" / "report.json").read_text())
    assert [c["name"] for c in report["reward_models"]] == ["rm100", "rm50", "rm0", GOLD]


def _write(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"reward_models": []}, "reward_models: is empty: a study needs at least one reward model"),
        ({"reward_models": [{"name": "rm100", "callable": "rm_fns:gold", "policies": ["gamma"]}]},
         "reward model 'rm100': unknown policy 'gamma'"),
        ({"only": {"policies": ["gamma"]}}, "only.policies: unknown policy 'gamma'"),
        ({"reward_models": [{"name": "gold", "callable": "rm_fns:gold"}]}, "repeated: gold"),
        ({"policies": [{"name": "a b", "path": "/m"}]}, "policy name 'a b' is used as a folder name"),
        ({"seeds": [1, 1]}, "seeds must be distinct"),
        ({"train": {"lr": 0.1}}, "train: unknown key 'lr'"),
        ({"train": {"steps": 0}}, "train: steps: Input should be greater than or equal to 1"),
        ({"train": {"seed": 3}}, "train: 'seed' is filled in by the study for each run"),
        ({"evaluate": {"sampling": {"temperature": 0}}}, "evaluate: sampling.temperature: Input should be greater than 0"),
        ({"evaluate": {"policy": {"path": "x"}}}, "evaluate: 'policy' is filled in by the study"),
        ({"analysis": {"primary_outcome": "gold_increase@0.3"}}, "primary_outcome 'gold_increase@0.3' is not one of"),
        ({"analysis": {"budgets": [0.0, 1.0]}}, "budgets are fractions of the steps in (0, 1]"),
        ({"analysis": {"exclude_from_correlations": ["rm_nope"]}},
         "analysis.exclude_from_correlations: unknown reward model 'rm_nope'"),
    ],
)
def test_bad_configs_fail_with_one_line(tmp_path, capsys, changes, message):
    path = _write(tmp_path, study_dict(**changes))
    code, out, err = run_cli(["study", "--config", path, "--out", tmp_path / "out"], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"rmteach study: error: {path}: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out").exists()


def test_set_override_reaches_the_grid(tmp_path):
    from rmteach.config import load_config

    path = _write(tmp_path, study_dict())
    cfg = load_config(StudyConfig, path, ["only.policies=[beta]", "seeds=[5]"])
    assert [p.display_name for p in cfg.selected_policies()] == ["beta"] and cfg.seeds == [5]


# ----------------------------------------------------------------------------------------------------------
# Worker processes and the real evaluate


def test_parallel_jobs_give_the_same_study(tmp_path, finished):
    run_study(make_config(jobs=2), tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    assert (tmp_path / "s" / "study.json").read_text().replace('"jobs": 2', '"jobs": 1') == \
        (finished[0] / "study.json").read_text()
    logs = list((tmp_path / "s" / "logs").glob("*.log"))
    assert len(logs) == 24


def test_with_the_real_evaluate_on_tiny_models(tiny, tmp_path):
    """Tiny real policies and callable RMs through `evaluate`; the trainer is still the fake."""
    cfg = validate(StudyConfig, {
        "policies": [{"name": "alpha", "path": str(tiny["policy_gpt2"])}, {"name": "beta", "path": str(tiny["policy_llama"])}],
        "reward_models": [
            {"name": "rm100", "callable": "rm_fns:gold_cubed"},
            {"name": "rm50", "path": str(tiny["rm_llama"])},
            {"name": "perfect", "callable": "rm_fns:gold", "transform": {"fraction": 0.5, "factor": 0.001}},
        ],
        "ground_truth": {"name": GOLD, "callable": "rm_fns:gold"},
        "prompts": {"train": {"path": str(tiny["prompts"])}, "eval": {"path": str(tiny["prompts"])}},
        "preferences": {"path": str(tiny["prefs"])},
        "seeds": [0],
        "evaluate": {"sampling": {"samples_per_prompt": 4, "max_new_tokens": 6}, "device": "cpu", "bootstrap_samples": 20},
        "train": {"steps": 4, "eval_every": 2},
        "analysis": {"bootstrap_samples": 20},
    }, "test")
    study = run_study(cfg, tmp_path / "s", train_fn=fake_train)
    for r in study["runs"]:
        report = json.loads((tmp_path / "s" / "evaluate" / r["policy"] / "report.json").read_text())
        card = next(c for c in report["reward_models"] if c["name"] == r["reward_model"])
        done = json.loads((tmp_path / "s" / r["folder"] / "done.json").read_text())["config"]
        assert done["normalization"] == card["normalization"]
        # rmteach train reads that block from the report, by RM name.
        assert done["train"]["normalization"]["path"] == str(tmp_path / "s" / "evaluate" / r["policy"] / "report.json")
        assert r["predictors"]["onpolicy_accuracy"] == card["onpolicy_accuracy"]
    perfect = [r for r in study["runs"] if r["reward_model"] == "perfect"]
    assert all(r["predictors"]["onpolicy_accuracy"] == pytest.approx(1.0) for r in perfect)  # order kept
    assert study["claims"][0]["evidence"]["alpha"]["perfect"] == "perfect"


# ----------------------------------------------------------------------------------------------------------
# rmteach demo (with a fake toy build over the tiny fixture models, and the fake trainer)


def fake_toy_build(tiny: dict, calls: list):
    """A `run_build` stand-in: a manifest and one evaluate_<policy>.yaml per policy, over the tiny models."""

    def build(folder: Path, *, seed: int, preset: str, overwrite: bool) -> dict:
        calls.append((folder, seed, preset))
        folder.mkdir(parents=True)
        rms = [
            {"name": "rm100", "callable": "rm_fns:gold_cubed"},
            {"name": "rm50", "path": str(tiny["rm_llama"])},
            {"name": "rm0", "path": str(tiny["rm_other_tok"])},
            {"name": "perfect", "callable": "rm_fns:gold", "transform": {"fraction": 0.5, "factor": 0.001, "seed": 1}},
            {"name": "loud", "path": str(tiny["rm_llama"]), "batch_size": 3},
        ]
        for name, key in (("alpha", "policy_gpt2"), ("beta", "policy_llama")):
            cfg = {"policy": {"name": name, "path": str(tiny[key])}, "reward_models": rms,
                   "ground_truth": {"name": GOLD, "callable": "rm_fns:gold"}, "prompts": {"path": "eval.jsonl"},
                   "preferences": {"path": str(tiny["prefs"])}}
            (folder / f"evaluate_{name}.yaml").write_text(yaml.safe_dump(cfg))
        for split in ("train", "eval"):
            (folder / f"{split}.jsonl").write_text(Path(tiny["prompts"]).read_text())
        manifest = {"seed": seed, "preset": preset, "prompt_sets": {"train": "train.jsonl", "eval": "eval.jsonl"},
                    "reward_models": [{"name": "loud", "role": "high_variance_inaccurate"}, {"name": "rm100", "role": "mixed"}]}
        io.write_json(folder / "manifest.json", manifest)
        return manifest

    return build


def test_demo_builds_the_world_once_and_reruns_nothing(tiny, tmp_path, monkeypatch):
    from rmteach import demo

    monkeypatch.delenv("RMTEACH_TOY_DIR", raising=False)
    monkeypatch.setitem(demo.SETTINGS["quick"], "jobs", 1)
    monkeypatch.setitem(demo.SETTINGS["quick"], "analysis", {**demo.SETTINGS["quick"]["analysis"], "bootstrap_samples": 20})
    calls: list = []
    out = tmp_path / "runs" / "demo"
    result = demo.run_demo(out, quick=True, seed=3, build=fake_toy_build(tiny, calls), train_fn=fake_train)
    toy = tmp_path / "runs" / "toy" / "tiny-seed3"
    assert calls == [(toy, 3, "tiny")]
    assert result["toy_built"] and result["wall_s"] > 0 and result["toy_dir"] == str(toy)
    saved = json.loads((out / "demo.json").read_text())
    assert saved["wall_s"] == result["wall_s"] and saved["claims"] == {c["id"]: c["status"] for c in result["study"]["claims"]}
    study = json.loads((out / "study.json").read_text())
    assert study["seeds"] == [3] and study["policies"] == ["alpha", "beta"]
    assert study["reward_models"] == ["rm100", "rm50", "rm0", "perfect", "loud"]
    cfg = study["config"]
    assert cfg["prompts"]["train"]["path"] == str(toy / "train.jsonl")
    assert cfg["prompts"]["eval"]["path"] == str(toy / "eval.jsonl")  # resolved against the world's folder
    assert cfg["train"]["steps"] == demo.SETTINGS["quick"]["train"]["steps"]
    # Section 4.2's kind of RM is trained and ranked but not correlated (the paper's 4.1 correlations)
    assert cfg["analysis"]["exclude_from_correlations"] == ["loud"] and study["correlations"]["excluded"] == ["loud"]
    assert all("alpha/loud" not in s["reward_models"] and "loud" not in s["reward_models"]
               for s in study["correlations"]["scopes"].values())
    assert "loud" in [r["reward_model"] for r in study["rankings"]["policies"]["alpha"]]
    assert (out / "report.html").is_file() and (toy / "cache" / "samples").is_dir()
    # OUT/study.yaml reruns the same study: it loads back to the config the study recorded.
    from rmteach.config import load_config

    again = load_config(StudyConfig, out / "study.yaml")
    assert json.loads(json.dumps(to_plain(again))) == json.loads((out / "config.json").read_text())["config"]
    # A second demo reuses the world and every run.
    counting = Counting()
    second = demo.run_demo(out, quick=True, seed=3, build=fake_toy_build(tiny, calls), train_fn=counting)
    assert len(calls) == 1 and counting.calls == [] and not second["toy_built"]
    assert (out / "study.json").read_text() == json.dumps(study, indent=2, sort_keys=True) + "\n"


def test_checked_in_preset_loads():
    from rmteach.config import load_config

    path = Path(__file__).resolve().parents[1] / "configs" / "study_toy.yaml"
    cfg = load_config(StudyConfig, path)
    assert [p.display_name for p in cfg.policies] == ["english", "spanish"]
    perfect = next(rm for rm in cfg.reward_models if rm.role == "perfect_low_variance")
    assert perfect.transform is not None and perfect.transform.factor == 0.001
    assert cfg.prompts.train.path == str((path.parent / "../toy/data/prompts_train.jsonl").resolve())
    assert cfg.train_config(cfg.policies[0], perfect.plain(), 0, "r.json").optimizer == "sgd"


# ----------------------------------------------------------------------------------------------------------
# The real trainer


class KilledTrainer:
    """`rmteach.train.run_train`, except that the `kill_at`-th call is interrupted (as by Ctrl-C) mid-run."""

    def __init__(self, kill_at: int | None = None):
        self.calls = 0
        self.kill_at = kill_at

    def __call__(self, cfg, out, **kw):
        from rmteach.train import run_train

        self.calls += 1
        if self.calls == self.kill_at:
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.jsonl").write_text('{"step": 0}\n')
            raise KeyboardInterrupt
        return run_train(cfg, out, **kw)


def test_real_training_resumes_to_the_same_study(tiny, tmp_path):
    """Tiny real policies trained by TRL for a few steps; a study killed in its second run, then resumed,
    ends with the same study.json as one that ran straight through."""
    cfg = validate(StudyConfig, {
        "policies": [{"name": "alpha", "path": str(tiny["policy_gpt2"])}],
        "reward_models": [
            {"name": "cubed", "callable": "rm_fns:gold_cubed"},
            {"name": "tinyrm", "path": str(tiny["rm_llama"])},
            {"name": "perfect", "callable": "rm_fns:gold", "transform": {"fraction": 0.5, "factor": 0.001}},
        ],
        "ground_truth": {"name": GOLD, "callable": "rm_fns:gold"},
        "prompts": {"train": {"path": str(tiny["prompts"])}, "eval": {"path": str(tiny["prompts"])}},
        "preferences": {"path": str(tiny["prefs"])},
        "seeds": [0],
        "train_on_ground_truth": False,
        "evaluate": {"sampling": {"samples_per_prompt": 4, "max_new_tokens": 6}, "device": "cpu", "bootstrap_samples": 20},
        "train": {"learning_rate": 0.01, "kl_coef": 0.0, "steps": 4, "eval_every": 2, "prompts_per_step": 4,
                  "samples_per_prompt": 2, "max_new_tokens": 6, "eval_samples_per_prompt": 2, "device": "cpu",
                  "report_to": []},
        "analysis": {"bootstrap_samples": 20},
    }, "test")
    straight = run_study(cfg, tmp_path / "straight")
    killed = KilledTrainer(kill_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path / "resumed", train_fn=killed)
    resumed = KilledTrainer()
    run_study(cfg, tmp_path / "resumed", train_fn=resumed)
    assert resumed.calls == 2  # the killed run and the one after it
    assert (tmp_path / "resumed" / "study.json").read_text() == (tmp_path / "straight" / "study.json").read_text()
    for r in straight["runs"]:  # real curves: step 0, 2 and 4 from metrics.jsonl
        assert r["curve"]["step"] == [0, 2, 4] and r["outcomes"]["steps"] == 4
        assert json.loads((tmp_path / "straight" / r["folder"] / "run.json").read_text())["status"] == "finished"


def refusing_train(cfg, out, *, resume, overwrite):
    """A trainer that finds the input bad, as run_train does with a UserError."""
    raise UserError("prompts_per_step (8) is larger than the train prompt set (4)")


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_bad_run_names_itself(tmp_path, jobs):
    with pytest.raises(UserError, match=r"^train run alpha/rm\w+/seed0: prompts_per_step \(8\) is larger") as e:
        run_study(make_config(seeds=[0], jobs=jobs), tmp_path / "s", train_fn=refusing_train, evaluate_fn=fake_evaluate)
    assert ("log: " in str(e.value)) == (jobs == 2)
