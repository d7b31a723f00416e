"""`rmteach train` on a tiny learnable world: tracking recomputed independently, resume after a kill, NaN stops,
determinism, the ground truth never trains, dry runs of the GPU presets, bad input, and the acceptance curves.

The world: a 1-layer GPT-2 (d=32) over the words t0..t7, f0..f7; prompt "t<i> f.. f.." has the target word
t<(i+3) mod 8>. The ground truth is 1 + the fraction of response words equal to the target: the 1 makes the
rewards uncentred, as a real RM's are, so that scaling half the prompts by 0.001 (the paper's perfectly
accurate low-variance RM) collapses the normalized reward variance. Reward functions live in this module and
are named in configs as `test_train:NAME` (the tests folder is on sys.path; subprocesses get it on PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import run_cli

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
# Fixtures and helpers


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from rmteach.data import write_jsonl
    from rmteach.hf import quiet
    from rmteach.toy.tiny import build_policy

    quiet()
    root = tmp_path_factory.mktemp("train_world")
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
        "reward_model": {"name": "gold", "callable": "test_train:gold"},
        "ground_truth": {"name": "gold", "callable": "test_train:gold"},
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
    from rmteach.config import validate
    from rmteach.train_config import TrainConfig

    return validate(TrainConfig, config_dict(world, **changes))


def write_config(path: Path, world: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump(config_dict(world, **changes)), encoding="utf-8")
    return path


def metrics(out: Path, drop=("wall_time",)) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def train(world: Path, out: Path, **changes) -> dict:
    from rmteach.train import run_train

    return run_train(make_config(world, **changes), out)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


# ----------------------------------------------------------------------------------------------------------
# Tracking: every number in metrics.jsonl recomputed from the raw rewards the RMs returned


def _reward_calls(log_prefix: Path) -> dict[int, list[dict]]:
    """Scoring calls per process id, in call order."""
    calls = {}
    for f in sorted(log_prefix.parent.glob(log_prefix.name + ".*")):
        calls[int(f.suffix[1:])] = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
    return calls


def _recompute(calls: dict[int, list[dict]], train_texts: set[str], k: int, m: int, norm: dict) -> dict:
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
        steps.append({"proxy_reward": np.mean(z), "reward_variance": np.mean(groups), "gold_reward": np.mean(g)})
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


def _check_against_logs(out: Path, log: Path, world: Path, k: int, m: int, eval_steps: list[int]) -> None:
    run = json.loads((out / "run.json").read_text())
    train_texts = {json.loads(line)["prompt"] for line in (world / "train.jsonl").read_text().splitlines()}
    ref = _recompute(_reward_calls(log), train_texts, k, m, run["normalization"])
    assert run["normalization"]["mean"] == pytest.approx(ref["normalization"][0], abs=1e-12)
    assert run["normalization"]["std"] == pytest.approx(ref["normalization"][1], abs=1e-12)
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(run["steps"] + 1))
    for row, want in zip(rows[1:], ref["steps"], strict=True):
        for key, value in want.items():  # TRL averages in float32
            assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (row["step"], key)
    evaluated = [r for r in rows if r["eval_gold_reward"] is not None]
    assert [r["step"] for r in evaluated] == eval_steps
    for row, want in zip(evaluated, ref["evals"], strict=True):
        for key, value in want.items():
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (row["step"], key)


def test_tracking_matches_recomputation_from_raw_rewards(world, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("RMTEACH_TEST_REWARD_LOG", str(tmp_path / "calls"))
    out = tmp_path / "run"
    summary = train(world, out, steps=6, eval_every=3, prompts_per_step=4, eval_samples_per_prompt=4,
                    reward_model={"name": "count", "callable": "test_train:logged_count"},
                    ground_truth={"name": "gold", "callable": "test_train:logged_gold"}, report_to=["tensorboard"])
    _check_against_logs(out, tmp_path / "calls", world, k=4, m=4, eval_steps=[0, 3, 6])
    from rmteach.train_tracking import FIELDS

    rows = metrics(out)
    assert all(set(r) == set(FIELDS) - {"wall_time"} for r in rows)
    assert summary["final"]["eval_gold_reward"] == rows[-1]["eval_gold_reward"]
    assert all(r["kl"] is not None and r["learning_rate"] == 0.01 for r in rows[1:])
    # TensorBoard through TRL's report_to: TRL's own per-function statistics, and our evaluations.
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tb_gold = {e.step: e.value for e in acc.Scalars("train/rewards/gold/mean")}
    assert tb_gold == {r["step"]: pytest.approx(r["gold_reward"], rel=1e-6) for r in rows[1:]}
    assert {e.step for e in acc.Scalars("train/rewards/proxy/mean")} == set(range(1, 7))
    assert {e.step for e in acc.Scalars("eval/gold_reward")} == {0, 3, 6}
    assert (out / "final" / "model.safetensors").is_file() and (out / "final" / "tokenizer.json").is_file()


def test_same_seed_same_metrics_and_the_ground_truth_never_trains(world, tmp_path):
    changes = dict(steps=5, eval_every=5, reward_model={"name": "count", "callable": "test_train:target_count"})
    train(world, tmp_path / "a", **changes)
    train(world, tmp_path / "b", **changes)
    train(world, tmp_path / "no_gold", **changes, ground_truth=None)
    a, b, no_gold = metrics(tmp_path / "a"), metrics(tmp_path / "b"), metrics(tmp_path / "no_gold")
    assert a == b
    assert all(r["gold_reward"] is None and r["eval_gold_reward"] is None for r in no_gold)
    # Weight 0: the training is the same to the last bit (the proxy's logged batch mean, a float32 reduction over
    # one column of a wider tensor, may differ in its last digit).
    strip = ("wall_time", "gold_reward", "eval_gold_reward", "proxy_reward")
    assert metrics(tmp_path / "a", strip) == metrics(tmp_path / "no_gold", strip)
    assert [r["proxy_reward"] for r in a[1:]] == pytest.approx([r["proxy_reward"] for r in no_gold[1:]], rel=1e-6)
    assert len({r["proxy_reward"] for r in a[1:]}) > 1  # and the policy did move


# ----------------------------------------------------------------------------------------------------------
# Reliability: kill and resume, NaN, determinism


def test_resume_after_kill_equals_uninterrupted_run(world, tmp_path, capsys):
    # 2 steps per epoch (4 of 8 prompts per step): the kill lands mid-epoch, the resume must skip the right
    # batches and replay the same shuffle.
    changes = dict(steps=9, prompts_per_step=4, checkpoint_every=3, eval_every=4,
                   ground_truth={"name": "gold", "callable": "test_train:slow_gold"})
    train(world, tmp_path / "whole", **changes)
    cfg_path = write_config(tmp_path / "train.yaml", world, **changes)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rmteach", "train", "--config", str(cfg_path), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint-3" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "final").exists()
    assert metrics(out)[-1]["step"] >= 3  # the kill left lines beyond the checkpoint or none: both are fine
    code, _, err = run_cli(["train", "--config", cfg_path, "--out", out], capsys)
    assert code == 2 and "--resume" in err  # a plain rerun refuses to clobber the interrupted run
    code, _, err = run_cli(["train", "--config", cfg_path, "--out", out, "--resume"], capsys)
    assert code == 0, err
    assert metrics(out) == metrics(tmp_path / "whole")
    walls = [r["wall_time"] for r in metrics(out, drop=())]
    assert walls == sorted(walls)
    # A finished run resumed again is returned as it is.
    before = (out / "metrics.jsonl").read_bytes()
    assert run_cli(["train", "--config", cfg_path, "--out", out, "--resume"], capsys)[0] == 0
    assert (out / "metrics.jsonl").read_bytes() == before


def test_nan_reward_stops_naming_the_step_and_keeps_the_last_good_checkpoint(world, tmp_path, capsys):
    # Calls of the proxy: normalization 1, step-0 eval 2, steps 1-4 are 3..6, the step-4 eval 7, step 5 is 8.
    cfg_path = write_config(tmp_path / "train.yaml", world, steps=8, checkpoint_every=2,
                            reward_model={"name": "flaky", "callable": "test_train:nan_gold"})
    out = tmp_path / "run"
    NAN.update(from_call=8, calls=0)
    try:
        code, _, err = run_cli(["train", "--config", cfg_path, "--out", out], capsys)
    finally:
        NAN.update(from_call=None)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("rmteach train: error: step 5: reward model 'flaky' returned nan")
    assert "last good checkpoint" in lines[-1] and str(out / "checkpoint-4") in lines[-1]
    assert "Traceback" not in err and not (out / "final").exists()
    assert [r["step"] for r in metrics(out)] == [0, 1, 2, 3, 4]
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    # Cause fixed: --resume continues from checkpoint-4 and ends with every step exactly once.
    code, _, err = run_cli(["train", "--config", cfg_path, "--out", out, "--resume"], capsys)
    assert code == 0, err
    assert [r["step"] for r in metrics(out)] == list(range(9))


@pytest.mark.parametrize(
    ("logs", "message"),
    [({"loss": float("nan"), "grad_norm": 1.0}, "step 7: loss is nan"),
     ({"loss": 0.1, "grad_norm": float("inf")}, "step 7: grad_norm is inf")],
)
def test_nonfinite_loss_or_gradient_stops_the_run(logs, message):
    from rmteach.train_tracking import TrainingStopped, train_fields

    with pytest.raises(TrainingStopped, match=message):
        train_fields({"rewards/proxy/mean": 0.0, **logs}, 7)


def test_train_fields_read_trl_logs():
    from rmteach.train_tracking import train_fields

    logs = {"rewards/proxy/mean": 0.5, "rewards/gold/mean": 1.25, "rmteach/reward_variance": 0.75, "kl": 0.1,
            "learning_rate": 1e-3, "loss": 0.0, "grad_norm": 2.0, "entropy": 1.5, "completions/mean_length": 6.0}
    assert train_fields(logs, 1) == {
        "proxy_reward": 0.5, "gold_reward": 1.25, "reward_variance": 0.75, "kl": 0.1, "learning_rate": 1e-3,
        "loss": 0.0, "grad_norm": 2.0, "entropy": 1.5, "completion_length": 6.0}
    assert train_fields({"rewards/proxy/mean": 0.5}, 1)["gold_reward"] is None  # no ground truth, beta=0


def test_doctests():
    import doctest

    import rmteach.train_tracking

    assert doctest.testmod(rmteach.train_tracking).failed == 0


@pytest.mark.parametrize(
    ("prompts", "rewards"),
    [(["a"] * 4, [1.0, 2.0, 4.0, 8.0]), (["a", "a", "b", "b", "b", "c"], [0.0, 2.0, 1.0, 1.0, 4.0, 9.0])],
)
def test_group_variances_are_per_run_of_equal_prompts(prompts, rewards):
    from rmteach.train_tracking import group_variances

    want = []
    for p in dict.fromkeys(prompts):  # each prompt's samples, sum of squares by hand
        xs = [r for q, r in zip(prompts, rewards) if q == p]
        if len(xs) >= 2:
            mean = sum(xs) / len(xs)
            want.append(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    assert group_variances(np.array(rewards), prompts) == pytest.approx(want)


# ----------------------------------------------------------------------------------------------------------
# Output folder rules, normalization from an evaluate report, GRPO, the sampling refactor


def test_out_folder_rules(world, tmp_path, capsys):
    cfg_path = write_config(tmp_path / "train.yaml", world, steps=2, eval_every=None)
    out = tmp_path / "run"
    assert run_cli(["train", "--config", cfg_path, "--out", out], capsys)[0] == 0
    code, _, err = run_cli(["train", "--config", cfg_path, "--out", out], capsys)
    assert code == 2 and "already holds a finished run" in err
    other = write_config(tmp_path / "other.yaml", world, steps=3, eval_every=None)
    code, _, err = run_cli(["train", "--config", other, "--out", out, "--resume"], capsys)
    assert code == 2 and "different train run" in err
    assert run_cli(["train", "--config", other, "--out", out, "--overwrite"], capsys)[0] == 0
    assert [r["step"] for r in metrics(out)] == [0, 1, 2, 3]


def test_normalization_comes_from_an_evaluate_report(world, tmp_path, capsys):
    eval_cfg = {
        "policy": {"path": str(world / "policy")},
        "reward_models": [{"name": "gold", "callable": "test_train:gold"}],
        "prompts": {"path": str(world / "train.jsonl")},
        "sampling": {"samples_per_prompt": 4, "max_new_tokens": 8},
        "device": "cpu", "bootstrap_samples": 10, "cache_dir": str(tmp_path / "cache"),
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(eval_cfg), encoding="utf-8")
    assert run_cli(["evaluate", "--config", tmp_path / "eval.yaml", "--out", tmp_path / "eval"], capsys)[0] == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    summary = train(world, tmp_path / "run", steps=1, normalization={"path": str(tmp_path / "eval" / "report.json")})
    want = report["reward_models"][0]["normalization"]
    assert summary["normalization"]["mean"] == want["mean"] and summary["normalization"]["std"] == want["std"]
    # The same name with another transform is another RM: its normalization would be wrong.
    report_path = {"path": str(tmp_path / "eval" / "report.json")}
    cfg_path = write_config(tmp_path / "t.yaml", world, steps=1, normalization=report_path,
                            reward_model={"name": "gold", "callable": "test_train:gold", "transform": {"factor": 0.5}})
    code, _, err = run_cli(["train", "--config", cfg_path, "--out", tmp_path / "bad"], capsys)
    assert code == 2 and "another path, callable or transform" in err


@pytest.mark.parametrize("scale", ["group", "none"])
def test_grpo_runs_with_its_reward_scaling(world, tmp_path, scale):
    from rmteach.train import build_trl_config

    cfg = make_config(world, algorithm="grpo", grpo_scale_rewards=scale, steps=2, eval_every=None)
    assert build_trl_config(cfg, tmp_path, 2, cfg.layout(1), use_cpu=True).scale_rewards == scale
    train(world, tmp_path / "run", algorithm="grpo", grpo_scale_rewards=scale, steps=2, eval_every=None)
    rows = metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, 1, 2] and rows[-1]["eval_gold_reward"] is not None
    assert all(r["kl"] is not None and r["gold_reward"] is not None for r in rows[1:])


@pytest.mark.parametrize("on", [True, False])
def test_gradient_checkpointing_reaches_trl_under_either_field_name(world, tmp_path, on):
    # transformers renamed TrainingArguments.gradient_checkpointing to activation_checkpointing; the setting must
    # land in whichever field the installed release has (seen on a GPU machine with transformers 5.17)
    from rmteach.train import build_trl_config

    cfg = make_config(world, gradient_checkpointing=on, steps=2, eval_every=None)
    args = build_trl_config(cfg, tmp_path, 2, cfg.layout(1), use_cpu=True)
    fields = type(args).__dataclass_fields__
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    assert getattr(args, name) is on


def test_gradient_checkpointing_goes_to_the_old_field_name_on_older_transformers(world, tmp_path, monkeypatch):
    import trl

    from rmteach.train import build_trl_config

    real = trl.RLOOConfig.__dataclass_fields__

    class OldRLOOConfig:  # the fields of a release before the rename
        __dataclass_fields__ = {k: v for k, v in real.items() if k != "activation_checkpointing"}
        __dataclass_fields__["gradient_checkpointing"] = real.get("gradient_checkpointing")

        def __init__(self, **kwargs):
            unknown = set(kwargs) - set(self.__dataclass_fields__)
            if unknown:
                raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
            self.kwargs = kwargs

    monkeypatch.setattr(trl, "RLOOConfig", OldRLOOConfig)
    cfg = make_config(world, gradient_checkpointing=True, steps=2, eval_every=None)
    args = build_trl_config(cfg, tmp_path, 2, cfg.layout(1), use_cpu=True)
    assert args.kwargs["gradient_checkpointing"] is True and "activation_checkpointing" not in args.kwargs


def test_generate_responses_on_a_loaded_model_equals_sample_responses(world):
    from transformers import AutoModelForCausalLM

    from rmteach.config import PolicyConfig, SamplingConfig
    from rmteach.data import Prompt
    from rmteach.hf import load_tokenizer
    from rmteach.policy import generate_responses, sample_responses

    texts = ["t1 f2", "t3", "t4 f5 f6 f7"]
    s = SamplingConfig(samples_per_prompt=3, max_new_tokens=5, batch_size=2, seed=4)
    want = sample_responses(PolicyConfig(path=str(world / "policy")), [Prompt(str(i), t) for i, t in enumerate(texts)],
                            s, device="cpu", dtype="float32")
    tok = load_tokenizer(str(world / "policy"), "policy", padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(world / "policy").eval()
    assert generate_responses(model, tok, texts, s) == want
    assert tok.padding_side == "right"  # restored


def test_generate_responses_stops_at_every_eos_id_of_the_model(world):
    from transformers import AutoModelForCausalLM

    from rmteach.config import SamplingConfig
    from rmteach.hf import load_tokenizer
    from rmteach.policy import generate_responses

    tok = load_tokenizer(str(world / "policy"), "policy", padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(world / "policy").eval()
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids("t3")]  # as Llama 3 has
    out = generate_responses(model, tok, ["t1 f2", "t5"], SamplingConfig(samples_per_prompt=16, max_new_tokens=8))
    words = [r.split() for row in out for r in row]
    assert any("t3" in w for w in words)  # sampled, and then
    assert all(w.index("t3") == len(w) - 1 for w in words if "t3" in w)  # nothing after it


# ----------------------------------------------------------------------------------------------------------
# Bad input, dry runs, presets


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"algorithm": "ppo"}, "algorithm: Input should be 'rloo' or 'grpo'"),
        ({"reward_model": None}, "missing required key 'reward_model'"),
        ({"steps": 0}, "steps: Input should be greater than or equal to 1"),
        ({"eval_prompts": "EMPTY"}, "eval_prompts: prompt set is empty"),
        ({"prompts_per_step": 9}, "prompts_per_step (9) is larger than the train prompt set (8)"),
        ({"trl_args": {"bogus": 1}}, "trl_args: RLOOConfig has no field 'bogus'"),
        ({"reward_model": {"name": "x", "callable": "no_such_module:f"}}, "cannot import module 'no_such_module'"),
        ({"samples_per_prompt": 3, "gradient_accumulation_steps": 5}, "must be divisible by gradient_accumulation"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(world, tmp_path, capsys, changes, message):
    if changes.get("eval_prompts") == "EMPTY":
        changes = {"eval_prompts": {"path": str(world / "empty.jsonl")}}
    cfg_path = write_config(tmp_path / "train.yaml", world, **changes)
    code, out, err = run_cli(["train", "--config", cfg_path, "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rmteach train: error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_dry_run_loads_nothing_and_writes_nothing(world, tmp_path, capsys, monkeypatch):
    import transformers

    def boom(*args, **kwargs):
        raise AssertionError("a dry run must not load weights or tokenizers")

    for cls in (transformers.PreTrainedModel, transformers.AutoTokenizer, transformers.AutoConfig):
        monkeypatch.setattr(cls, "from_pretrained", classmethod(boom))
    cfg_path = write_config(tmp_path / "train.yaml", world, algorithm="grpo", epochs=2, checkpoint_every=5)
    code, out, err = run_cli(["train", "--config", cfg_path, "--out", tmp_path / "out", "--dry-run"], capsys)
    assert code == 0 and err == ""
    assert "GRPOTrainer" in out and "scale_rewards=group" in out and "2 (" not in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("preset", ["train_pythia1b.yaml", "train_llama32_1b.yaml"])
def test_gpu_presets_dry_run_offline(preset, tmp_path, capsys, monkeypatch):
    import transformers

    def boom(*args, **kwargs):
        raise AssertionError("a dry run must not load weights or tokenizers")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for cls in (transformers.PreTrainedModel, transformers.AutoTokenizer, transformers.AutoConfig):
        monkeypatch.setattr(cls, "from_pretrained", classmethod(boom))
    code, out, err = run_cli(["train", "--config", ROOT / "configs" / preset, "--out", tmp_path / "out", "--dry-run"],
                             capsys)
    assert code == 0, err
    assert ("RLOOTrainer" if "pythia" in preset else "GRPOTrainer") in out
    assert "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2" in out  # hub ids stay hub ids
    assert not (tmp_path / "out").exists()


def test_gpu_presets_validate():
    from rmteach.config import load_config
    from rmteach.train_config import TrainConfig

    pythia = load_config(TrainConfig, ROOT / "configs" / "train_pythia1b.yaml")
    llama = load_config(TrainConfig, ROOT / "configs" / "train_llama32_1b.yaml")
    assert pythia.policy.path == "EleutherAI/pythia-1b-deduped" and pythia.algorithm == "rloo"
    assert (pythia.learning_rate, pythia.kl_coef, pythia.samples_per_prompt, pythia.epochs) == (1e-7, 0.05, 2, 6)
    assert llama.policy.path == "meta-llama/Llama-3.2-1B-Instruct" and llama.algorithm == "grpo" and llama.use_vllm
    assert pythia.ground_truth.path == llama.ground_truth.path == "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2"


def test_gpu_presets_keep_the_proxy_rm_hub_id():
    from rmteach.config import load_config
    from rmteach.train_config import TrainConfig

    cfg = load_config(TrainConfig, ROOT / "configs" / "train_pythia1b.yaml")
    assert cfg.reward_model.path == "Ray2333/GRM-Gemma2-2B-rewardmodel-ft"


# ----------------------------------------------------------------------------------------------------------
# Acceptance: the ground truth teaches; the perfectly accurate low-variance RM teaches slower


LOW_VARIANCE = {"fraction": 0.5, "factor": 0.001, "seed": 0}


def _eval_gold(out: Path) -> list[float]:
    return [r["eval_gold_reward"] for r in metrics(out) if r["eval_gold_reward"] is not None]


# Two optimizers. AdamW with the default KL coefficient: Adam undoes a global scale of the gradient, so the
# low-variance RM is slow because its tiny rewards are swamped by the KL penalty (with kl_coef 0 and AdamW it is
# not slower in this world). SGD without clipping and without KL: the paper's gradient flow, where the gradient
# itself shrinks with the reward variance.
OPTIMIZERS = {"adamw": {}, "sgd": {"optimizer": "sgd", "learning_rate": 0.05, "max_grad_norm": 0, "kl_coef": 0}}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gold_rises_and_the_low_variance_rm_is_slower(world, tmp_path, seed, optimizer):
    from rmteach.config import ScaleTransform
    from rmteach.rewards import scaled_prompt_mask

    texts = [json.loads(line)["prompt"] for line in (world / "train.jsonl").read_text().splitlines()]
    assert scaled_prompt_mask(texts, ScaleTransform(**LOW_VARIANCE)).sum() == 4  # half the train prompts
    # The default step budget (20 steps), 8 prompts x 8 samples per step, the same learning rate for both RMs.
    opt = OPTIMIZERS[optimizer]
    gold_run = train(world, tmp_path / "gold", seed=seed, samples_per_prompt=8, **opt)
    low_run = train(world, tmp_path / "low", seed=seed, samples_per_prompt=8, **opt,
                    reward_model={"name": "gold_lowvar", "callable": "test_train:gold", "transform": LOW_VARIANCE})
    g, low = _eval_gold(tmp_path / "gold"), _eval_gold(tmp_path / "low")
    assert gold_run["steps"] == 20 and len(g) == len(low) == 6  # steps 0, 4, ..., 20
    assert g[0] == low[0]  # same initial policy, same evaluation samples
    assert np.mean(g[-2:]) - g[0] > 0.03  # the ground truth teaches: the target fraction at least doubles
    gain, low_gain = np.mean(g[1:]) - g[0], np.mean(low[1:]) - low[0]
    assert low_gain < 0.6 * gain  # area under the curve: clearly slower on every seed
    # The reason, measured: its normalized reward variance at the start is a small fraction of the gold's.
    assert low_run["initial"]["eval_reward_variance"] < 0.2 * gold_run["initial"]["eval_reward_variance"]


# ----------------------------------------------------------------------------------------------------------
# Several processes (gloo on CPU), metrics gathered across them


@pytest.mark.slow
def test_two_cpu_processes_under_accelerate_gather_metrics(world, tmp_path):
    log = tmp_path / "calls"
    cfg_path = write_config(tmp_path / "train.yaml", world, steps=4, eval_every=2, eval_samples_per_prompt=4,
                            reward_model={"name": "count", "callable": "test_train:logged_count"},
                            ground_truth={"name": "gold", "callable": "test_train:logged_gold"})
    out = tmp_path / "run"
    with socket.socket() as s:  # a free port for the process group's rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
           str(ROOT / "configs" / "accelerate_cpu2.yaml"), "--main_process_port", str(port), "-m", "rmteach", "train",
           "--config", str(cfg_path), "--out", str(out)]
    r = subprocess.run(cmd, env={**_env(), "RMTEACH_TEST_REWARD_LOG": str(log)}, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["processes"] == 2
    assert len(_reward_calls(log)) == 2  # both processes scored
    _check_against_logs(out, log, world, k=4, m=4, eval_steps=[0, 2, 4])


def test_a_checkpoint_cut_off_mid_write_is_not_resumed_from(tmp_path):
    from rmteach.train import last_checkpoint

    for step, state in ((2, '{"global_step": 2}'), (4, ""), (6, '{"global_st')):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-8").mkdir()  # no state file at all
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
