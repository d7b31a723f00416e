"""Shared fixtures: tiny real HF models and data sets written to disk once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

WORDS = [f"w{i}" for i in range(12)]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny policies (GPT-2, Llama), RMs (one with a different tokenizer, one with 2 outputs), data sets."""
    from rmteach.core.hf import quiet
    from rmteach.toy.tiny import build_policy, build_reward_model

    quiet()
    root = tmp_path_factory.mktemp("tiny")
    paths = {
        "policy_gpt2": root / "policy_gpt2",
        "policy_llama": root / "policy_llama",
        "rm_llama": root / "rm_llama",
        "rm_other_tok": root / "rm_other_tok",
        "rm_two_heads": root / "rm_two_heads",
    }
    build_policy(paths["policy_gpt2"], WORDS, arch="gpt2", seed=0)
    build_policy(paths["policy_llama"], WORDS, arch="llama", seed=1)
    build_reward_model(paths["rm_llama"], WORDS, arch="llama", seed=2)
    # Another vocabulary order, extra words and no chat template: responses must be re-tokenized.
    build_reward_model(paths["rm_other_tok"], ["zz", "yy"] + WORDS[::-1], arch="gpt2", seed=3, chat_template=None)
    build_reward_model(paths["rm_two_heads"], WORDS, arch="llama", seed=4, num_labels=2)
    paths["prompts"] = _write_jsonl(
        root / "prompts.jsonl", [{"id": f"p{i}", "prompt": " ".join(WORDS[i : i + 3])} for i in range(8)]
    )
    paths["prefs"] = _write_jsonl(
        root / "prefs.jsonl",
        [{"prompt": WORDS[i], "chosen": f"w1 {WORDS[i]}", "rejected": f"{WORDS[i]} w5 w6"} for i in range(6)],
    )
    return paths


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own sample cache, so no test sees another's samples."""
    monkeypatch.setenv("RMTEACH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The train tests' tiny learnable world (see train_world.py), built once."""
    from train_world import build_world

    return build_world(tmp_path_factory.mktemp("train_world"))
