"""Interim demo until the toy world lands: build tiny models, then `rmteach evaluate` on them.

    python scripts/demo_tiny.py runs/demo
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from rmteach.cli import main
from rmteach.hf import quiet
from rmteach.toy.tiny import build_policy, build_reward_model

WORDS = [f"w{i}" for i in range(16)]


def run(out: Path) -> int:
    quiet()
    models = out.parent / (out.name + "_models")
    if not (models / "eval.yaml").exists():
        build_policy(models / "policy", WORDS, seed=0)
        for i in range(3):
            build_reward_model(models / f"rm{i}", WORDS, seed=i + 1)
        rows = [{"id": f"p{i}", "prompt": " ".join(WORDS[i % 16 : i % 16 + 3])} for i in range(24)]
        (models / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        cfg = {
            "policy": {"path": "policy", "name": "tiny-gpt2"},
            "reward_models": [{"name": f"rm{i}", "path": f"rm{i}"} for i in range(3)],
            "ground_truth": {"name": "gold", "path": "rm0"},
            "prompts": {"path": "prompts.jsonl"},
            "sampling": {"samples_per_prompt": 8, "max_new_tokens": 12},
            "device": "cpu",
            "cache_dir": ".cache",
        }
        (models / "eval.yaml").write_text(yaml.safe_dump(cfg))
    return main(["evaluate", "--config", str(models / "eval.yaml"), "--out", str(out), "--overwrite"])


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")))
