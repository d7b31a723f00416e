"""Config loading: unknown keys, path resolution, overrides."""

from __future__ import annotations

import pytest
import yaml

from rmteach.core.config import load_config, parse_overrides
from rmteach.evaluate.config import EvaluateConfig
from rmteach.core.errors import UserError

BASE = {
    "policy": {"path": "./pol"},
    "reward_models": [{"name": "a", "path": "org/some-rm"}, {"name": "b", "callable": "m:f"}],
    "prompts": {"path": "data/p.jsonl"},
}


def _write(tmp_path, data):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_relative_paths_resolve_against_config_folder_and_hub_ids_survive(tmp_path):
    cfg = load_config(EvaluateConfig, _write(tmp_path, BASE))
    assert cfg.policy.path == str((tmp_path / "pol").resolve())
    assert cfg.prompts.path == str((tmp_path / "data" / "p.jsonl").resolve())
    assert cfg.reward_models[0].path == "org/some-rm"  # not local: a hub id
    (tmp_path / "org" / "some-rm").mkdir(parents=True)
    cfg = load_config(EvaluateConfig, _write(tmp_path, BASE))
    assert cfg.reward_models[0].path == str((tmp_path / "org" / "some-rm").resolve())


def test_defaults_follow_the_issue(tmp_path):
    cfg = load_config(EvaluateConfig, _write(tmp_path, BASE))
    assert cfg.sampling.samples_per_prompt == 8 and cfg.sampling.temperature == 1.0
    assert [r.name for r in cfg.all_reward_models()] == ["a", "b"]


def test_overrides_parse_yaml_values_and_nest():
    assert parse_overrides(["a.b=3", "a.c=x", "d=true", "e=[1, 2]"]) == {
        "a": {"b": 3, "c": "x"}, "d": True, "e": [1, 2]
    }
    with pytest.raises(UserError, match="--set expects key=value"):
        parse_overrides(["oops"])


def test_override_applies_before_validation(tmp_path):
    cfg = load_config(EvaluateConfig, _write(tmp_path, BASE), ["sampling.temperature=0.5", "device=cpu"])
    assert cfg.sampling.temperature == 0.5 and cfg.device == "cpu"
    with pytest.raises(UserError, match="device must be one of auto, cpu, cuda, cuda:N, mps"):
        load_config(EvaluateConfig, _write(tmp_path, BASE), ["device=tpu"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"polcy": {}}, "unknown key 'polcy' (allowed here: policy, reward_models"),
        ({"reward_models": []}, "reward_models: List should have at least 1 item"),
        ({"reward_models": [{"name": "a", "path": "x", "transform": {"fraction": 2}}]},
         "reward_models.0.transform.fraction: Input should be less than or equal to 1"),
        ({"reward_models": [{"name": "a", "path": "x", "transform": {"factr": 2}}]},
         "unknown key 'reward_models.0.transform.factr' (allowed here: kind, fraction, factor, seed)"),
        ({"reward_models": [{"name": "a", "callable": "nocolon"}]}, "callable must look like 'module:attribute'"),
        ({"dtype": "float8"}, "dtype: Input should be 'auto', 'float32', 'bfloat16' or 'float16'"),
    ],
)
def test_bad_values_name_the_key(tmp_path, change, message):
    with pytest.raises(UserError) as e:
        load_config(EvaluateConfig, _write(tmp_path, {**BASE, **change}))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_required_key(tmp_path):
    data = dict(BASE)
    del data["prompts"]
    with pytest.raises(UserError, match="missing required key 'prompts'"):
        load_config(EvaluateConfig, _write(tmp_path, data))


def test_override_of_one_list_item(tmp_path):
    cfg = load_config(EvaluateConfig, _write(tmp_path, BASE), ["reward_models.1.batch_size=3"])
    assert [r.batch_size for r in cfg.reward_models] == [16, 3]
    with pytest.raises(UserError, match="'reward_models' has only 2 items"):
        load_config(EvaluateConfig, _write(tmp_path, BASE), ["reward_models.5.batch_size=3"])


def test_shipped_evaluate_preset_validates():
    from pathlib import Path

    cfg = load_config(EvaluateConfig, Path(__file__).parent.parent / "configs" / "evaluate_pythia1b.yaml")
    assert cfg.ground_truth.name == "skywork-8b" and cfg.policy.path == "EleutherAI/pythia-1b-deduped"
    assert len(cfg.reward_models) == 4 and cfg.sampling.samples_per_prompt == 10


def test_set_into_a_list_item_that_is_not_a_mapping():
    from rmteach.core.config import deep_merge

    assert deep_merge({"rms": [None, {"a": 1}]}, {"rms": {"0": {"name": "x"}, "1": {"b": 2}}}) == {
        "rms": [{"name": "x"}, {"a": 1, "b": 2}]}
