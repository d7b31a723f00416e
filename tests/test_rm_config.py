"""rm.config: strict keys, the mix's checks, paths resolved against the file, a hub id kept as a hub id."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rmteach.core.errors import UserError
from rmteach.rm.config import PairsConfig, RMTrainConfig, load


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


TRAIN = {"base_model": {"path": "./sft", "num_labels": 1},
         "mix": [{"path": "on.jsonl", "fraction": 0.5}, {"path": "off.jsonl", "fraction": 0.5}], "total": 100}
PAIRS = {"policy": {"path": "./sft"}, "ground_truth": {"name": "gt", "callable": "rm_fns:gold"},
         "prompts": {"path": "prompts.jsonl"}}


def test_paths_resolve_against_the_file_and_a_hub_id_stays(tmp_path):
    cfg = load(RMTrainConfig, _write(tmp_path / "rm.yaml", TRAIN))
    assert cfg.base_model.path == str(tmp_path / "sft") and cfg.mix[0].path == str(tmp_path / "on.jsonl")
    assert [m.label for m in cfg.mix] == ["on", "off"]
    hub = load(RMTrainConfig, tmp_path / "rm.yaml", ["base_model.path=EleutherAI/pythia-1b"])
    assert hub.base_model.path == "EleutherAI/pythia-1b"
    pairs = load(PairsConfig, _write(tmp_path / "pairs.yaml", PAIRS), ["sampling.samples_per_prompt=2"])
    assert pairs.policy.path == str(tmp_path / "sft") and pairs.sampling.samples_per_prompt == 2


@pytest.mark.parametrize("cls, base, overrides, message", [
    (RMTrainConfig, TRAIN, ["mix.1.fraction=0.6"], r"mix fractions must sum to 1 \(got 0.5 \+ 0.6 = 1.1\)"),
    (RMTrainConfig, TRAIN, ["mix.0.name=a", "mix.1.name=a"], "mix entries need distinct names"),
    (RMTrainConfig, TRAIN, ["base_model.num_labels=2"], "base_model.num_labels"),
    (RMTrainConfig, TRAIN, ["totl=3"], r"unknown key 'totl' \(allowed here: base_model, mix, total"),
    (RMTrainConfig, TRAIN, ["mix.0.weight=1"], "unknown key 'mix.0.weight'.*fraction"),
    (RMTrainConfig, TRAIN, ["held_out_fraction=0.001"], "holds out no pair"),
    (RMTrainConfig, TRAIN, ["device=gpu"], "device must be one of"),
    (PairsConfig, PAIRS, ["labels=soft"], "labels: Input should be 'hard' or 'bradley_terry'"),
    (PairsConfig, PAIRS, ["sampling.samples_per_prompt=1"], "samples_per_prompt"),
    (PairsConfig, PAIRS, ["sampling.backend=vllm2"], "sampling.backend: Input should be 'hf' or 'vllm'"),
    (PairsConfig, PAIRS, ["min_gap=-1"], "min_gap"),
])
def test_bad_values_fail_at_load_with_one_line(tmp_path, cls, base, overrides, message):
    path = _write(tmp_path / "c.yaml", base)
    with pytest.raises(UserError, match=message) as err:
        load(cls, path, overrides)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_steps_count_as_the_trainer_does():
    cfg = RMTrainConfig.model_validate({**TRAIN, "batch_size": 8, "gradient_accumulation_steps": 2, "epochs": 1.5})
    assert cfg.steps(100) == 11  # 13 batches -> 7 updates per epoch (the last one short) -> ceil(1.5 * 7)
    assert cfg.steps(100, world=4) == 3  # 4 batches per process -> 2 updates per epoch -> 3


def test_checked_in_toy_presets_load():
    """The README's toy recipe: configs/rm_pairs_toy.yaml, rm_train_toy.yaml and study_rm_toy.yaml validate."""
    from rmteach.core.config import load_config
    from rmteach.study.config import StudyConfig

    root = Path(__file__).resolve().parents[1]
    pairs = load(PairsConfig, root / "configs" / "rm_pairs_toy.yaml")
    assert pairs.policy.path == str((root / "toy" / "policies" / "english").resolve())
    train = load(RMTrainConfig, root / "configs" / "rm_train_toy.yaml",
                 ["mix.0.fraction=0.75", "mix.1.fraction=0.25"])
    assert [m.fraction for m in train.mix] == [0.75, 0.25]
    assert train.mix[0].path == str((root / "runs" / "pairs_english" / "pairs.jsonl").resolve())
    study = load_config(StudyConfig, root / "configs" / "study_rm_toy.yaml")
    assert [rm.name for rm in study.reward_models][:5] == [f"rm_on{s}" for s in (100, 75, 50, 25, 0)]
