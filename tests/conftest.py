"""Shared fixtures: tiny real HF models, data sets and the tiny toy world, written to disk once per run.

Under pytest-xdist (`make test` runs the suite on every core) each worker is a session of its own; the
session fixtures below are built once for all of them, in a folder the workers share, by whichever worker asks
first, while the others wait on a file lock.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

WORDS = [f"w{i}" for i in range(12)]


def pytest_configure(config):
    """Under pytest-xdist the workers already fill the cores: one torch thread each, so that two workers' thread
    pools do not fight over two cores (the tiny models gain nothing from more threads)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """`build(folder)` run once per test run, whichever xdist worker comes first; returns the folder.

    A folder is done only once `build` returned (a `.done` file then marks it), so a worker that died half-way
    leaves nothing the others take for finished.
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    folder = base / f"shared-{name}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".done").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            (folder / ".done").touch()
    return folder


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny policies (GPT-2, Llama), RMs (one with a different tokenizer, one with 2 outputs), data sets."""
    from rmteach.core.hf import quiet

    quiet()
    root = built_once(tmp_path_factory, "tiny", _build_tiny)
    paths = {name: root / name for name in ("policy_gpt2", "policy_llama", "rm_llama", "rm_other_tok", "rm_two_heads")}
    paths["prompts"] = root / "prompts.jsonl"
    paths["prefs"] = root / "prefs.jsonl"
    return paths


def _build_tiny(root: Path) -> None:
    from rmteach.toy.tiny import build_policy, build_reward_model

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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own sample cache, so no test sees another's samples."""
    monkeypatch.setenv("RMTEACH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def shared_sample_cache(tmp_path_factory, monkeypatch) -> Path:
    """One sample cache for the whole run, for tests that only check what happens after sampling (a bad RM,
    a bad scorer output): the tiny policy's samples are drawn once instead of once per test. Cache entries are
    keyed by everything that makes the samples and written atomically, so sharing them is safe."""
    folder = built_once(tmp_path_factory, "sample-cache", lambda f: None)
    monkeypatch.setenv("RMTEACH_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The train tests' tiny learnable world (see train_world.py), built once."""
    from train_world import build_world

    return built_once(tmp_path_factory, "train_world", build_world)


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory) -> tuple[Path, dict]:
    """The toy world's `tiny` preset (policies, pairs, the RM zoo, configs), built once: (folder, manifest)."""
    from rmteach.toy.build import run_build

    folder = built_once(tmp_path_factory, "toy_world", lambda f: run_build(f / "world", seed=0, preset="tiny",
                                                                          workers=1))
    return folder / "world", json.loads((folder / "world" / "manifest.json").read_text())
