"""A fake study world whose outcomes are known by construction, shared by the study tests.

The train block is validated by the real `TrainConfig`; only `run_train` itself is replaced (`fake_train`).
The fakes are module-level so that worker processes (`jobs: 2`) can import them by name.

`WORLD` checks the plumbing: its seeds shift every RM alike and its gold_rate is 10 x the outcome, so its claims
cannot fail. `fake_train_null` / `fake_evaluate_null` are a null world with realistic noise, where no claim is
true: every RM raises the gold reward alike up to seed noise, and the forecast knows nothing.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from rmteach.core import io
from rmteach.core.config import to_plain, validate
from rmteach.core.data import write_jsonl
from rmteach.study.config import StudyConfig
from rmteach.train.config import TrainConfig

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


NULL_INCREASE, NULL_SEED_SD = 0.30, 0.05  # the null world: every RM's true gold increase, and its seed std


def _draw(*key) -> float:
    """A standard normal number fixed by `key` (the same in every process)."""
    return float(np.random.default_rng(zlib.crc32(repr(key).encode())).normal())


def null_gold_increase(policy: str, rm: str, seed: int) -> float:
    return NULL_INCREASE + NULL_SEED_SD * _draw("increase", policy, rm, seed)


def fake_train(cfg: TrainConfig, out: Path, *, resume: bool, overwrite: bool) -> dict:
    """Write metrics.jsonl with a straight gold curve rising by `gold_increase` over the run."""
    return _train(cfg, out, gold_increase(cfg.policy.display_name, cfg.reward_model.name, cfg.seed), resume, overwrite)


def fake_train_threads(cfg: TrainConfig, out: Path, *, resume: bool, overwrite: bool) -> dict:
    """`fake_train` that also writes the `cpu_threads` it was given and torch's thread count to threads.json."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    (out / "threads.json").write_text(json.dumps({"cpu_threads": cfg.cpu_threads, "torch": torch.get_num_threads()}))
    return fake_train(cfg, out, resume=resume, overwrite=overwrite)


def fake_train_sleep(cfg: TrainConfig, out: Path, *, resume: bool, overwrite: bool) -> dict:
    """A run that never ends on its own: writes its process id to pid, then sleeps for 10 minutes."""
    import os
    import time

    out.mkdir(parents=True, exist_ok=True)
    (out / "pid").write_text(str(os.getpid()))
    time.sleep(600)
    return {}


def fake_train_null(cfg: TrainConfig, out: Path, *, resume: bool, overwrite: bool) -> dict:
    """`fake_train` in the null world: the gold increase is `null_gold_increase`."""
    inc = null_gold_increase(cfg.policy.display_name, cfg.reward_model.name, cfg.seed)
    return _train(cfg, out, inc, resume, overwrite)


def _train(cfg: TrainConfig, out: Path, inc: float, resume: bool, overwrite: bool) -> dict:
    assert resume != overwrite  # the fake writes the whole run either way
    report = json.loads(Path(cfg.normalization.path).read_text())  # the normalization must be readable
    assert cfg.reward_model.name in [c["name"] for c in report["reward_models"]]
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


def fake_evaluate(ecfg, folder: Path, *, null: bool = False) -> dict:
    """A report.json with the WORLD's predictors; normalization (mean i/10, std 1 + i) by RM position; a
    gold_rate forecast proportional to the RM's true gold increase (a perfect forecast, for claim (d)), or
    with `null` a random one."""
    policy = ecfg.policy.display_name
    cards = []
    for i, rm in enumerate(ecfg.all_reward_models()):
        var, on, off, inc = WORLD[(policy, rm.name)]
        if null:
            inc = 1.0 + _draw("forecast", policy, rm.name)
        forecast = {"gold_rate": {"value": 10 * inc, "ci95": [9 * inc, 11 * inc]},  # ranks like the outcome
                    "lookahead": {"value": var * on, "ci95": None}, "best_of_k_gold_lift": {"value": on, "ci95": None},
                    "gradient_alignment": None}
        cards.append({"name": rm.name, "is_ground_truth": rm.name == GOLD,
                      "normalization": {"mean": i / 10, "std": 1.0 + i},
                      "reward_variance": {"mean": var}, "onpolicy_accuracy": on, "offpolicy_accuracy": 0.5,
                      "offpolicy_accuracy_vs_gold": off, "forecast": forecast})
    report = {"schema": "rmteach.evaluate/1", "policy": policy, "reward_models": cards, "config": to_plain(ecfg)}
    io.write_json(folder / "report.json", report)
    return report


def fake_evaluate_null(ecfg, folder: Path) -> dict:
    """`fake_evaluate` in the null world: the WORLD's predictors, a random gold_rate."""
    return fake_evaluate(ecfg, folder, null=True)


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


class Counting:
    """A trainer that records which runs it trained and fails on the `fail_at`-th call (a "kill")."""

    def __init__(self, fail_at: int | None = None):
        self.calls: list[str] = []
        self.resumed: list[str] = []  # the calls told to resume the run in their folder
        self.fail_at = fail_at

    def __call__(self, cfg, out, *, resume, overwrite):
        self.calls.append(f"{cfg.policy.display_name}/{cfg.reward_model.name}/seed{cfg.seed}")
        assert resume != overwrite
        if resume:
            self.resumed.append(self.calls[-1])
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            out.mkdir(parents=True, exist_ok=True)
            (out / "run.json").write_text(json.dumps({"config": to_plain(cfg), "status": "running"}))
            (out / "metrics.jsonl").write_text('{"step": 0}\n')  # half a run
            raise KeyboardInterrupt
        return fake_train(cfg, out, resume=resume, overwrite=overwrite)
