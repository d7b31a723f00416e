"""The toy world's manifest and configs: the zoo's entries, the per-policy evaluate configs, manifest.json.

Everything here is plain data with paths relative to the world's folder, so a world can be moved or copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core import io
from ..core.blocks import ScaleTransform
from ..core.config import validate
from ..evaluate.config import EvaluateConfig
from . import task
from .config import ToyConfig

SCHEMA = "rmteach.toy/1"
GROUND_TRUTH = "rmteach.toy.task:ground_truth"
RM_BATCH = 128  # scoring batch written into the evaluate configs
LONG_RM = "rm_long"


def mix_name(share: float) -> str:
    """`rm_on75` for share 0.75.

    >>> mix_name(0.75)
    'rm_on75'
    """
    return f"rm_on{int(round(share * 100))}"


def low_variance_transform(cfg: ToyConfig, seed: int) -> ScaleTransform:
    """The paper's perfectly accurate, low-variance RM: the ground truth scaled on a seeded share of prompts.

    Its seed is the world's: the transform hashes (seed, prompt text), so that is all it needs.
    """
    z = cfg.zoo
    return ScaleTransform(fraction=z.low_variance_fraction, factor=z.low_variance_factor, seed=seed)


def zoo_entries(cfg: ToyConfig, seed: int, infos: dict[str, dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """The zoo as manifest entries: each has a `config` block that is a valid `RewardModelConfig`."""
    entries = []
    for share in cfg.zoo.mixes:
        name = mix_name(share)
        entries.append({
            "name": name, "role": "mixed", "onpolicy_fraction": share,
            "description": f"Bradley-Terry on {int(round(share * 100))}% on-policy pairs (rest off-policy)",
            "config": {"name": name, "path": f"reward_models/{name}", "batch_size": RM_BATCH},
            "weights_sha256": io.file_sha256(root / "reward_models" / name / "model.safetensors"),
            **infos[name],
        })
    entries.append({
        "name": LONG_RM, "role": "high_variance_inaccurate", "onpolicy_fraction": 0.0,
        "description": "Bradley-Terry on the off-policy pairs whose chosen answer is longer: learns length",
        "config": {"name": LONG_RM, "path": f"reward_models/{LONG_RM}", "batch_size": RM_BATCH},
        "weights_sha256": io.file_sha256(root / "reward_models" / LONG_RM / "model.safetensors"),
        **infos[LONG_RM],
    })
    t = low_variance_transform(cfg, seed)
    entries.append({
        "name": "gt_lowvar", "role": "perfect_accuracy_low_variance",
        "description": f"the ground truth, rewards x{t.factor} on a seeded {t.fraction:.0%} of prompts",
        "config": {"name": "gt_lowvar", "callable": GROUND_TRUTH, "transform": t.model_dump(mode="json")},
    })
    return entries


def evaluate_config(policy: str, zoo: list[dict[str, Any]], cfg: ToyConfig) -> dict[str, Any]:
    """An `EvaluateConfig` (as plain data, paths relative to `--out`) for one policy and the whole zoo."""
    data = {
        "policy": {"path": f"policies/{policy}", "name": policy},
        "reward_models": [e["config"] for e in zoo],
        "ground_truth": {"name": "ground_truth", "callable": GROUND_TRUTH},
        "prompts": {"path": "data/prompts_eval.jsonl"},
        "preferences": {"path": "data/preferences_off_policy_test.jsonl"},
        "sampling": {"samples_per_prompt": cfg.sampling.samples_per_prompt, "temperature": cfg.sampling.temperature,
                     "top_p": 1.0, "max_new_tokens": cfg.sampling.max_new_tokens,
                     "batch_size": cfg.sampling.batch_size, "seed": 0},
        "device": "cpu",
        "dtype": "float32",
    }
    validate(EvaluateConfig, data, source=f"generated evaluate config for '{policy}'")  # a bug if it fails
    return data


def build_manifest(cfg: ToyConfig, seed: int, root: Path, infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """manifest.json's content: everything a study config needs, paths relative to the world's folder."""
    zoo = zoo_entries(cfg, seed, infos, root)
    policies = [{
        "name": p.name, "path": f"policies/{p.name}", "arch": p.arch, "description": p.description,
        "role": "first" if i == 0 else "other",
        "weights_sha256": io.file_sha256(root / "policies" / p.name / "model.safetensors"),
        **infos[f"policy:{p.name}"],
    } for i, p in enumerate(cfg.policies)]
    return {
        "schema": SCHEMA,
        "seed": seed,
        "preset": cfg.preset,
        "task": {
            "description": "list the animals the prompt names (English or Spanish), in order, nothing else",
            "ground_truth": GROUND_TRUTH,
            "reward_range": list(task.REWARD_RANGE),
            "vocabulary": list(task.WORDS),
            "max_response_words": task.MAX_RESPONSE_WORDS,
            "labels": "argmax of the ground truth; tied pairs dropped",
        },
        "prompts": {"train": "data/prompts_train.jsonl", "eval": "data/prompts_eval.jsonl"},
        "preferences": {
            "off_policy": {"train": "data/preferences_off_policy_train.jsonl",
                           "test": "data/preferences_off_policy_test.jsonl"},
            "on_policy": {"train": "on_policy/preferences_on_policy_train.jsonl",
                          "test": "on_policy/preferences_on_policy_test.jsonl", "policy": cfg.policies[0].name},
        },
        "policies": policies,
        "reward_models": zoo,
        "ground_truth": {"name": "ground_truth", "callable": GROUND_TRUTH},
        "sampling": cfg.sampling.model_dump(mode="json"),
        "configs": {
            "evaluate": "evaluate.yaml",
            "evaluate_per_policy": {p.name: f"evaluate_{p.name}.yaml" for p in cfg.policies},
        },
        "counts": infos["data"] | infos["on_policy"],
        "config": cfg.model_dump(mode="json"),
    }
