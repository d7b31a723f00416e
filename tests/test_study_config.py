"""The study config and its grid: bad configs fail in one line, overrides and filters reach the grid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import run_cli

from rmteach.study.config import StudyConfig

from study_world import study_dict


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
    from rmteach.core.config import load_config

    path = _write(tmp_path, study_dict())
    from rmteach.study.grid import expand

    cfg = load_config(StudyConfig, path, ["only.policies=[beta]", "seeds=[5]"])
    grid = expand(cfg, tmp_path / "out")
    assert [e.policy for e in grid.evaluations] == ["beta"] and {r.seed for r in grid.runs} == {5}
    assert {r.policy for r in grid.runs} == {"beta"}


def test_checked_in_preset_loads():
    from rmteach.core.config import load_config

    path = Path(__file__).resolve().parents[1] / "configs" / "study_toy.yaml"
    cfg = load_config(StudyConfig, path)
    assert [p.display_name for p in cfg.policies] == ["english", "spanish"]
    perfect = next(rm for rm in cfg.reward_models if rm.role == "perfect_low_variance")
    assert perfect.transform is not None and perfect.transform.factor == 0.001
    assert cfg.prompts.train.path == str((path.parent / "../toy/data/prompts_train.jsonl").resolve())
    from rmteach.study.grid import expand

    runs = [r for r in expand(cfg, Path("out")).runs if r.reward_model == perfect.name]
    assert runs and all(r.config.optimizer == "sgd" for r in runs)
    assert runs[0].config.normalization.path == str(Path("out") / "evaluate" / runs[0].policy / "report.json")




def test_the_real_world_recipe_matches_what_world_build_writes():
    """configs/study_real.yaml names the real world's candidates and its ground truth exactly as `world build`
    writes them (a recipe drifting from the world would train on another judge), and expands to LoRA runs."""
    from rmteach.core.config import load_config
    from rmteach.study.grid import expand
    from rmteach.world import build, rms

    path = Path(__file__).resolve().parents[1] / "configs" / "study_real.yaml"
    cfg = load_config(StudyConfig, path)
    world_rms = [e["name"] for e in build.reward_models(0)] + [n for n, _ in rms.MIXES]
    assert sorted(rm.name for rm in cfg.reward_models) == sorted(world_rms)
    assert [p.display_name for p in cfg.policies] == list(build.POLICIES)
    gt = build.ground_truth()["judge"]
    for judge in (cfg.ground_truth.judge, next(rm for rm in cfg.reward_models if rm.name == "judge_lowvar").judge):
        assert judge.template == gt["template"] and judge.labels == gt["labels"]
        assert [e.model_dump() for e in judge.examples] == gt["examples"]
        assert judge.path == str((path.parent / "../realworld" / gt["path"]).resolve())
    assert cfg.preferences.path == str((path.parent / "../realworld" / rms.OFF_HELD_OUT).resolve())
    grid = expand(cfg, Path("out"))
    assert {r.policy for r in grid.runs} == {"smollm2"} and len(grid.runs) == 2 * (7 + 1)
    forecast = grid.evaluations[0].config.forecast  # every predictor of the acceptance table, on LoRA's weights
    assert forecast.gradient and forecast.gradient_parameters == ["*.q_proj.weight", "*.v_proj.weight"]
    assert forecast.gradient_max_prompts == 16
    # The forecast sees every prompt the trainer draws from, 8 samples each (48 x 4 was too noisy: README).
    ev = grid.evaluations[0].config
    assert ev.prompts.path == cfg.prompts.train.path and ev.prompts.limit is None
    assert ev.sampling.samples_per_prompt == 8
    assert forecast.trainer.optimizer == "adamw" and forecast.trainer.kl_coef == cfg.train["kl_coef"]
    assert all(r.config.lora is not None and r.config.optimizer == "adamw" for r in grid.runs)
