"""rm.trainer on the tiny toy world: the written folder scores as trained, resume, agreement with the toy loop,
LoRA, and bad input that writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rmteach.backends.rewards import load_reward_model
from rmteach.core.blocks import RewardModelConfig
from rmteach.core.data import write_jsonl
from rmteach.core.errors import UserError
from rmteach.core.metrics import offpolicy_accuracy
from rmteach.rm.config import RMTrainConfig
from rmteach.rm.trainer import run_rm_train


@pytest.fixture(scope="module")
def world(toy_world) -> Path:
    """The toy world's tiny preset: policies, on-/off-policy pairs, the zoo trained by the toy loop (built once
    per test run: conftest's `toy_world`)."""
    return toy_world[0]


def _cfg(world: Path, **changes) -> RMTrainConfig:
    base = {
        "base_model": {"path": str(world / "policies" / "english"), "num_labels": 1},
        "mix": [{"path": str(world / "on_policy" / "preferences_on_policy_train.jsonl"), "fraction": 0.5,
                 "name": "on_policy"},
                {"path": str(world / "data" / "preferences_off_policy_train.jsonl"), "fraction": 0.5,
                 "name": "off_policy"}],
        "total": 200, "held_out_fraction": 0.2, "epochs": 2, "batch_size": 20, "learning_rate": 5e-3,
        "eval_every": 5, "checkpoint_every": 5, "device": "cpu", "cpu_threads": 1,
    }
    return RMTrainConfig.model_validate({**base, **changes})


def _scores(path: Path, prompts: list[str], responses: list[str]) -> np.ndarray:
    rm = load_reward_model(RewardModelConfig(name="rm", path=str(path)))  # as `rmteach evaluate` loads it
    try:
        return rm.score(prompts, responses)
    finally:
        rm.close()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("rm_train") / "rm50"
    return out, run_rm_train(_cfg(world), out)


def test_the_written_folder_scores_as_the_trained_model(trained):
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from rmteach.rm.data import encode

    out, summary = trained
    mcfg = AutoConfig.from_pretrained(out / "model")
    assert mcfg.num_labels == 1 and mcfg.pad_token_id is not None
    assert mcfg.architectures == ["LlamaForSequenceClassification"]
    held = _jsonl(out / "data" / "held_out.jsonl")
    assert len(held) == 40 and len(_jsonl(out / "data" / "train.jsonl")) == 160
    # What the trainer fed the model (TRL's collator on `rm.data`'s ids) == what `evaluate` scores.
    tok = AutoTokenizer.from_pretrained(out / "model")
    model = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    rows = held[:6]
    batch = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(
        [{"chosen_ids": encode(tok, r["prompt"], r["chosen"]), "rejected_ids": encode(tok, r["prompt"], r["rejected"])}
         for r in rows])
    with torch.no_grad():
        trained_scores = model(**batch).logits[:, 0].numpy()  # (2 * 6,): chosen then rejected
    scored = _scores(out / "model", [r["prompt"] for r in rows] * 2,
                     [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
    np.testing.assert_allclose(scored, trained_scores, rtol=1e-5, atol=1e-5)
    # run.json's held-out accuracy is the written folder's; TRL's last evaluation saw the same.
    assert summary["held_out"]["accuracy"] == pytest.approx(summary["held_out"]["trl_eval_accuracy"], abs=1e-6)
    acc = offpolicy_accuracy(*np.split(_scores(out / "model", [r["prompt"] for r in held] * 2,
                                               [r["chosen"] for r in held] + [r["rejected"] for r in held]), 2))
    assert summary["held_out"]["accuracy"] == acc


def test_run_json_metrics_and_the_drawn_mix(trained):
    out, summary = trained
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["summary"] == summary and summary["steps"] == 16
    assert [(m["name"], m["drawn"]) for m in run["data"]["mix"]] == [("on_policy", 100), ("off_policy", 100)]
    lines = _jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in lines] == list(range(1, 17))
    assert [r["step"] for r in lines if r["eval_accuracy"] is not None] == [5, 10, 15, 16]
    assert all(r["loss"] is not None and r["learning_rate"] is not None for r in lines)
    assert lines[-1]["loss"] < lines[0]["loss"] and summary["final"] == lines[-1]
    ids = [r["id"] for r in _jsonl(out / "data" / "train.jsonl") + _jsonl(out / "data" / "held_out.jsonl")]
    assert len(set(ids)) == 200 and sum(i.startswith("on_policy/") for i in ids) == 100


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(world, trained, tmp_path):
    out, summary = trained
    killed = tmp_path / "killed"
    shutil.copytree(out, killed)
    # As if killed after the checkpoint of step 10: later checkpoints and the model are not there yet.
    for name in ("checkpoint-15", "checkpoint-16", "model"):
        shutil.rmtree(killed / name)
    run = json.loads((killed / "run.json").read_text())
    (killed / "run.json").write_text(json.dumps({**run, "status": "running", "summary": None}))
    with pytest.raises(UserError, match="holds an unfinished run of this config; pass --resume"):
        run_rm_train(_cfg(world), killed)
    resumed = run_rm_train(_cfg(world), killed, resume=True)
    lines, first = _jsonl(killed / "metrics.jsonl"), _jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in lines] == list(range(1, 17))
    for a, b in zip(lines, first):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), a["step"]
    assert resumed["held_out"]["accuracy"] == pytest.approx(summary["held_out"]["accuracy"], abs=0.03)
    assert run_rm_train(_cfg(world), killed, resume=True) == resumed  # finished: nothing to do


@pytest.mark.slow
def test_agrees_with_the_toy_loop_on_the_same_pairs(world, tmp_path):
    """The zoo's rm_on0 (toy loop: 400 off-policy pairs, 4 epochs, batch 64, lr 5e-3) retrained with TRL."""
    from rmteach.toy.pairs import mix

    on = _jsonl(world / "on_policy" / "preferences_on_policy_train.jsonl")
    off = _jsonl(world / "data" / "preferences_off_policy_train.jsonl")
    write_jsonl(tmp_path / "rm_on0.jsonl", mix(on, off, 0.0, 400))
    cfg = _cfg(world, mix=[{"path": str(tmp_path / "rm_on0.jsonl"), "fraction": 1.0}], total=400,
               held_out_fraction=0.0, epochs=4, batch_size=64, eval_every=None, checkpoint_every=None)
    run_rm_train(cfg, tmp_path / "out")
    test = _jsonl(world / "data" / "preferences_off_policy_test.jsonl")
    prompts = [r["prompt"] for r in test] * 2
    responses = [r["chosen"] for r in test] + [r["rejected"] for r in test]
    ours = offpolicy_accuracy(*np.split(_scores(tmp_path / "out" / "model", prompts, responses), 2))
    toy = offpolicy_accuracy(*np.split(_scores(world / "reward_models" / "rm_on0", prompts, responses), 2))
    assert abs(ours - toy) <= 0.05 and ours > 0.65, (ours, toy)  # chance: 0.5


def test_lora_is_merged_into_a_plain_folder(world, tmp_path):
    pytest.importorskip("peft")
    cfg = _cfg(world, lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
               total=60, epochs=1, eval_every=None, checkpoint_every=None)
    summary = run_rm_train(cfg, tmp_path / "lora")
    files = {p.name for p in (tmp_path / "lora" / "model").iterdir()}
    assert "model.safetensors" in files and not any("adapter" in f for f in files)
    held = summary["held_out"]  # TRL evaluated the adapters in memory; run.json's accuracy is the merged folder's
    assert held["pairs"] == 12 and held["accuracy"] == pytest.approx(held["trl_eval_accuracy"], abs=1e-6)


@pytest.mark.parametrize("change, message", [
    ({"base_model": {"path": "BASE"}}, "is a LlamaForCausalLM, not a 1-output sequence classifier: set "
                                       "base_model.num_labels: 1"),
    ({"base_model": {"path": "TWO_HEADS"}}, "is a classifier with 2 outputs"),
    ({"total": 5000}, "mix entry 'on_policy' has 400 pairs, but 0.5 of total 5000 needs 2500"),
    ({"rows": "identical"}, r"1 pairs have the same text as chosen and rejected \(first: id 'same'\)"),
    ({"held_out": {"path": "/nonexistent/h.jsonl"}}, "held_out: preference set not found"),
    ({"trl_args": {"num_train_epoch": 2}}, "trl_args: RewardConfig has no field 'num_train_epoch'"),
    ({"rows": "long"}, "every training pair is longer than 8 tokens: raise max_length"),
])
def test_bad_input_writes_nothing(world, tiny, tmp_path, change, message):
    if "base_model" in change:
        change = {"base_model": {"path": str({"BASE": world / "policies" / "english",
                                              "TWO_HEADS": tiny["rm_two_heads"]}[change["base_model"]["path"]])}}
    if "rows" in change:
        ok = [{"id": f"ok{i}", "prompt": "list cat dog", "chosen": "cat dog", "rejected": "dog"} for i in range(4)]
        same = [{"id": "same", "prompt": "list cat", "chosen": "cat", "rejected": "cat"}]
        long = [{**r, "chosen": "cat dog " * 10} for r in ok]
        write_jsonl(tmp_path / "set.jsonl", ok + same if change["rows"] == "identical" else long)
        change = {"mix": [{"path": str(tmp_path / "set.jsonl"), "fraction": 1.0}], "total": 4,
                  "held_out_fraction": 0.0, "max_length": 8}
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message) as err:
        run_rm_train(_cfg(world, **change), out)
    assert "\n" not in str(err.value) and not out.exists()
