"""Small helpers shared by test files (config writing, CLI calls)."""

from __future__ import annotations

from pathlib import Path

import yaml

from rmteach.cli import main


def write_eval_config(path: Path, tiny: dict, **changes) -> Path:
    """An evaluate config over the tiny fixtures; `changes` replace top-level keys (None deletes)."""
    cfg = {
        "policy": {"path": str(tiny["policy_gpt2"]), "name": "tiny-gpt2"},
        "reward_models": [
            {"name": "rm_llama", "path": str(tiny["rm_llama"]), "batch_size": 5},
            {"name": "rm_other_tok", "path": str(tiny["rm_other_tok"]), "batch_size": 7},
            {"name": "gold_cubed", "callable": "rm_fns:gold_cubed"},
        ],
        "ground_truth": {"name": "gold", "callable": "rm_fns:gold"},
        "prompts": {"path": str(tiny["prompts"])},
        "preferences": {"path": str(tiny["prefs"])},
        "sampling": {"samples_per_prompt": 4, "max_new_tokens": 6, "batch_size": 3, "seed": 7},
        "device": "cpu",
        "bootstrap_samples": 200,
    }
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run `rmteach ARGS` in process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
