"""The tiny learnable world of the train tests, and their shared helpers.

A 1-layer GPT-2 (d=32) over the words t0..t7, f0..f7; prompt "t<i> f.. f.." has the target word
t<(i+3) mod 8>. The ground truth is 1 + the fraction of response words equal to the target: the 1 makes the
rewards uncentred, as a real RM's are, so that scaling half the prompts by 0.001 (the paper's perfectly
accurate low-variance RM) collapses the normalized reward variance. Reward functions live in this module and
are named in configs as `train_world:NAME` (the tests folder is on sys.path; subprocesses get it on
PYTHONPATH through `env()`). The `world` fixture (conftest.py) builds it once per session.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TARGETS = [f"t{i}" for i in range(8)]
FILLERS = [f"f{i}" for i in range(8)]

# ----------------------------------------------------------------------------------------------------------
# Reward functions (TRL's signature), imported by the runs


def target_of(prompt: str) -> str:
    return TARGETS[(int(prompt.split()[0][1:]) + 3) % len(TARGETS)]


def target_fraction(prompts, completions, **kwargs):
    """Fraction of response words equal to the prompt's target word (0 for an empty response)."""
    out = []
    for p, c in zip(prompts, completions):
        words = c.split()
        out.append(sum(w == target_of(p) for w in words) / len(words) if words else 0.0)
    return out


def gold(prompts, completions, **kwargs):
    """The toy ground truth: 1 + target_fraction."""
    return [1.0 + f for f in target_fraction(prompts, completions)]


def target_count(prompts, completions, **kwargs):
    """A proxy that is not the ground truth: how many target words (longer responses earn more)."""
    return [float(c.split().count(target_of(p))) for p, c in zip(prompts, completions)]


def _log(fn: str, prompts, completions, rewards) -> None:
    """Append every scoring call to $RMTEACH_TEST_REWARD_LOG.<pid> (one file per process)."""
    path = os.environ.get("RMTEACH_TEST_REWARD_LOG")
    if path:
        with open(f"{path}.{os.getpid()}", "a", encoding="utf-8") as f:
            f.write(json.dumps({"fn": fn, "prompts": list(prompts), "completions": list(completions),
                                "rewards": list(rewards)}) + "\n")


def logged_count(prompts, completions, **kwargs):
    r = target_count(prompts, completions)
    _log("proxy", prompts, completions, r)
    return r


def logged_gold(prompts, completions, **kwargs):
    r = gold(prompts, completions)
    _log("gold", prompts, completions, r)
    return r


def slow_gold(prompts, completions, **kwargs):
    time.sleep(0.03)  # so that a kill lands mid-run
    return gold(prompts, completions)


NAN = {"from_call": None, "calls": 0}


def nan_gold(prompts, completions, **kwargs):
    """`gold`, but NaN from call NAN['from_call'] on (None: never)."""
    NAN["calls"] += 1
    r = gold(prompts, completions)
    return [float("nan")] * len(r) if NAN["from_call"] and NAN["calls"] >= NAN["from_call"] else r


# ----------------------------------------------------------------------------------------------------------
# Building the world, configs, runs


def build_world(root: Path) -> Path:
    """The tiny policy and the prompt sets under `root`."""
    from rmteach.core.data import write_jsonl
    from rmteach.core.hf import quiet
    from rmteach.toy.tiny import build_policy

    quiet()
    build_policy(root / "policy", TARGETS + FILLERS, arch="gpt2", seed=0, d=32, layers=1, heads=2)
    write_jsonl(root / "train.jsonl", [{"id": f"tr{i}", "prompt": f"t{i} f{i} f{(i + 1) % 8}"} for i in range(8)])
    write_jsonl(root / "eval.jsonl", [{"id": f"ev{i}", "prompt": f"t{i} f{(i + 4) % 8} f{(i + 6) % 8}"}
                                      for i in range(8)])
    (root / "empty.jsonl").write_text("\n", encoding="utf-8")
    return root


def config_dict(world: Path, **changes) -> dict:
    """A train config over the tiny world; `changes` replace top-level keys (None deletes one)."""
    cfg = {
        "policy": {"path": str(world / "policy"), "name": "tiny"},
        "reward_model": {"name": "gold", "callable": "train_world:gold"},
        "ground_truth": {"name": "gold", "callable": "train_world:gold"},
        "train_prompts": {"path": str(world / "train.jsonl")},
        "eval_prompts": {"path": str(world / "eval.jsonl")},
        "learning_rate": 0.01,
        "max_new_tokens": 8,
        "prompts_per_step": 8,
        "samples_per_prompt": 4,
        "eval_every": 4,
        "eval_samples_per_prompt": 16,
        "device": "cpu",
        "report_to": [],
    }
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def make_config(world: Path, **changes):
    from rmteach.core.config import validate
    from rmteach.train.config import TrainConfig

    return validate(TrainConfig, config_dict(world, **changes))


def write_config(path: Path, world: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump(config_dict(world, **changes)), encoding="utf-8")
    return path


def metrics(out: Path, drop=("wall_time",)) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def train(world: Path, out: Path, **changes) -> dict:
    from rmteach.train.run import run_train

    return run_train(make_config(world, **changes), out)


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


# ----------------------------------------------------------------------------------------------------------
# Tracking: every number in metrics.jsonl recomputed from the raw rewards the RMs returned


def reward_calls(log_prefix: Path) -> dict[int, list[dict]]:
    """Scoring calls per process id, in call order."""
    calls = {}
    for f in sorted(log_prefix.parent.glob(log_prefix.name + ".*")):
        calls[int(f.suffix[1:])] = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
    return calls


def recompute(calls: dict[int, list[dict]], train_texts: set[str], k: int, m: int, norm: dict) -> dict:
    """Per step, from the logged calls of every process (plain loops, not rmteach code).

    Per process, the proxy's first call on train prompts fits the normalization, each later one is a step; the
    ground truth is scored on steps only. Calls on eval prompts are the evaluations, in order.
    """
    def split(fn):
        per_proc = [[c for c in cs if c["fn"] == fn] for cs in calls.values()]
        train_calls = [[c for c in cs if c["prompts"][0] in train_texts] for cs in per_proc]
        eval_calls = [[c for c in cs if c["prompts"][0] not in train_texts] for cs in per_proc]
        return train_calls, eval_calls

    (p_train, p_eval), (g_train, g_eval) = split("proxy"), split("gold")
    norm_raw = [r for cs in p_train for r in cs[0]["rewards"]]
    steps = []
    for i in range(1, len(p_train[0])):
        z, groups, g = [], [], []
        for cs, gs in zip(p_train, g_train):
            zs = [(r - norm["mean"]) / norm["std"] for r in cs[i]["rewards"]]
            z += zs
            for s in range(0, len(zs), k):
                assert len(set(cs[i]["prompts"][s : s + k])) == 1  # TRL lays out K samples of a prompt in a row
                groups.append(np.var(zs[s : s + k], ddof=1))
            g += gs[i - 1]["rewards"]
        steps.append({"proxy_reward": np.mean(z), "reward_variance": np.mean(groups), "gold_reward": np.mean(g),
                      # TRL's, over the whole batch (the gold has weight 0). Its frac_reward_zero_std is taken on
                      # RLOO's KL-penalized rewards, which the logged calls do not show: checked by range only.
                      "reward_std": np.std(z, ddof=1)})
    evals = []
    for j in range(len(p_eval[0])):
        z, var, g = [], [], []
        for cs, gs in zip(p_eval, g_eval):
            zs = [(r - norm["mean"]) / norm["std"] for r in cs[j]["rewards"]]
            z += zs
            var += [np.var(zs[s : s + m], ddof=1) for s in range(0, len(zs), m)]
            g += gs[j]["rewards"]
        evals.append({"eval_proxy_reward": np.mean(z), "eval_reward_variance": np.mean(var),
                      "eval_gold_reward": np.mean(g)})
    return {"normalization": (np.mean(norm_raw), np.std(norm_raw, ddof=1)), "steps": steps, "evals": evals}


def check_against_logs(out: Path, log: Path, world: Path, k: int, m: int, eval_steps: list[int]) -> None:
    run = json.loads((out / "run.json").read_text())
    train_texts = {json.loads(line)["prompt"] for line in (world / "train.jsonl").read_text().splitlines()}
    ref = recompute(reward_calls(log), train_texts, k, m, run["normalization"])
    assert run["normalization"]["mean"] == pytest.approx(ref["normalization"][0], abs=1e-12)
    assert run["normalization"]["std"] == pytest.approx(ref["normalization"][1], abs=1e-12)
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(run["steps"] + 1))
    assert all(0.0 <= r["frac_reward_zero_std"] <= 1.0 for r in rows[1:])
    for row, want in zip(rows[1:], ref["steps"], strict=True):
        for key, value in want.items():  # TRL averages in float32
            assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (row["step"], key, row[key], value)
    evaluated = [r for r in rows if r["eval_gold_reward"] is not None]
    assert [r["step"] for r in evaluated] == eval_steps
    for row, want in zip(evaluated, ref["evals"], strict=True):
        for key, value in want.items():
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (row["step"], key)
