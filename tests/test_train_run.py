"""`rmteach train` end to end on the tiny world: tracking recomputed independently, resume after a kill, NaN stops,
determinism, the ground truth never trains, the output folder, the acceptance curves, two processes."""

from __future__ import annotations

import json
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
from train_world import NAN, ROOT, check_against_logs, env, metrics, reward_calls, train, write_config


def test_tracking_matches_recomputation_from_raw_rewards(world, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("RMTEACH_TEST_REWARD_LOG", str(tmp_path / "calls"))
    out = tmp_path / "run"
    summary = train(world, out, steps=6, eval_every=3, prompts_per_step=4, eval_samples_per_prompt=4,
                    reward_model={"name": "count", "callable": "train_world:logged_count"},
                    ground_truth={"name": "gold", "callable": "train_world:logged_gold"}, report_to=["tensorboard"])
    check_against_logs(out, tmp_path / "calls", world, k=4, m=4, eval_steps=[0, 3, 6])
    from rmteach.train.callback import FIELDS

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
    changes = dict(steps=5, eval_every=5, reward_model={"name": "count", "callable": "train_world:target_count"})
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


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(world, tmp_path, capsys):
    # 2 steps per epoch (4 of 8 prompts per step): the kill lands mid-epoch, the resume must skip the right
    # batches and replay the same shuffle.
    changes = dict(steps=9, prompts_per_step=4, checkpoint_every=3, eval_every=4,
                   ground_truth={"name": "gold", "callable": "train_world:slow_gold"})
    train(world, tmp_path / "whole", **changes)
    cfg_path = write_config(tmp_path / "train.yaml", world, **changes)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rmteach", "train", "--config", str(cfg_path), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
                            reward_model={"name": "flaky", "callable": "train_world:nan_gold"})
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
        "reward_models": [{"name": "gold", "callable": "train_world:gold"}],
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
                            reward_model={"name": "gold", "callable": "train_world:gold", "transform": {"factor": 0.5}})
    code, _, err = run_cli(["train", "--config", cfg_path, "--out", tmp_path / "bad"], capsys)
    assert code == 2 and "another path, callable, judge or transform" in err


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


@pytest.mark.parametrize("optimizer", ["adamw", pytest.param("sgd", marks=pytest.mark.slow)])
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_gold_rises_and_the_low_variance_rm_is_slower(world, tmp_path, seed, optimizer):
    from rmteach.core.blocks import ScaleTransform
    from rmteach.backends.rewards import scaled_prompt_mask

    texts = [json.loads(line)["prompt"] for line in (world / "train.jsonl").read_text().splitlines()]
    assert scaled_prompt_mask(texts, ScaleTransform(**LOW_VARIANCE)).sum() == 4  # half the train prompts
    # The default step budget (20 steps), 8 prompts x 8 samples per step, the same learning rate for both RMs.
    opt = OPTIMIZERS[optimizer]
    gold_run = train(world, tmp_path / "gold", seed=seed, samples_per_prompt=8, **opt)
    low_run = train(world, tmp_path / "low", seed=seed, samples_per_prompt=8, **opt,
                    reward_model={"name": "gold_lowvar", "callable": "train_world:gold", "transform": LOW_VARIANCE})
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
                            reward_model={"name": "count", "callable": "train_world:logged_count"},
                            ground_truth={"name": "gold", "callable": "train_world:logged_gold"})
    out = tmp_path / "run"
    with socket.socket() as s:  # a free port for the process group's rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
           str(ROOT / "configs" / "accelerate_cpu2.yaml"), "--main_process_port", str(port), "-m", "rmteach", "train",
           "--config", str(cfg_path), "--out", str(out)]
    r = subprocess.run(cmd, env={**env(), "RMTEACH_TEST_REWARD_LOG": str(log)}, capture_output=True, text=True,
                       timeout=300)
    # both ranks' stderr in full: a rank's own last words (e.g. an abort at exit) come before torchrun's report
    assert r.returncode == 0, f"exit {r.returncode}\n--- stdout ---\n{r.stdout[-2000:]}\n--- stderr ---\n{r.stderr}"
    assert json.loads((out / "run.json").read_text())["processes"] == 2
    assert len(reward_calls(log)) == 2  # both processes scored
    check_against_logs(out, log, world, k=4, m=4, eval_steps=[0, 2, 4])


def test_a_checkpoint_cut_off_mid_write_is_not_resumed_from(tmp_path):
    from rmteach.core.run_dir import last_checkpoint

    for step, state in ((2, '{"global_step": 2}'), (4, ""), (6, '{"global_st')):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-8").mkdir()  # no state file at all
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
