"""`rmteach train` with LoRA on the policy: only the adapters train, final/ is a plain merged HF folder, a
resumed run ends where an uninterrupted one does, and bad `lora` settings or a missing peft fail in one line."""

from __future__ import annotations

import json
import math
import sys

import pytest
import yaml
from helpers import run_cli
from train_world import config_dict, metrics

TARGETS = ["q_proj", "v_proj"]
FAIL = {"at": None, "calls": 0}  # w1_count returns NaN on call number `at` (counted from 1) when set


def w1_count(prompts, completions, **kwargs):
    """A reward the tiny Llama can learn: how many times its response says w1 (NaN on the FAIL call)."""
    FAIL["calls"] += 1
    if FAIL["at"] is not None and FAIL["calls"] >= FAIL["at"]:
        return [math.nan] * len(completions)
    return [float(c.split().count("w1")) for c in completions]


def lora_config(tiny, **changes) -> dict:
    """A train config of the tiny Llama policy with LoRA on q_proj and v_proj; `changes` replace top-level keys."""
    base = dict(policy={"path": str(tiny["policy_llama"]), "name": "llama"},
                reward_model={"name": "w1", "callable": "test_train_lora:w1_count"}, ground_truth=None,
                train_prompts={"path": str(tiny["prompts"])}, eval_prompts={"path": str(tiny["prompts"])},
                steps=2, prompts_per_step=4, samples_per_prompt=2, eval_samples_per_prompt=2,
                learning_rate=0.05, lora={"r": 4, "alpha": 8, "target_modules": TARGETS})
    return config_dict(tiny["prompts"].parent, **{**base, **changes})


def write(path, cfg: dict):
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def state(path) -> dict:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).state_dict()


def test_lora_trains_only_the_targeted_weights_and_saves_a_plain_merged_folder(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--config", write(tmp_path / "t.yaml", lora_config(tiny)), "--out", out], capsys)
    assert code == 0, err
    assert [r["step"] for r in metrics(out)] == [0, 1, 2]
    final = out / "final"
    names = {p.name for p in final.iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not any("adapter" in n for n in names)  # no adapter_config.json / adapter_model.safetensors
    assert "peft" not in (final / "config.json").read_text(encoding="utf-8").lower()
    before, after = state(tiny["policy_llama"]), state(final)  # loads with plain transformers
    assert before.keys() == after.keys()
    changed = {k for k in before if not before[k].equal(after[k])}
    assert changed and all(any(t in k for t in TARGETS) and k.endswith(".weight") for k in changed)
    assert any("q_proj" in k for k in changed) and any("v_proj" in k for k in changed)
    for k in before.keys() - changed:  # every other tensor is byte for byte the initial one
        assert before[k].numpy().tobytes() == after[k].numpy().tobytes()


@pytest.mark.slow  # a variant of the fast tier's run: the full tier (make test-all)
def test_grpo_with_peft_default_targets_on_gpt2(tiny, tmp_path, capsys):
    # No target_modules: peft's default for GPT-2 is the fused attention projection c_attn.
    cfg = lora_config(tiny, algorithm="grpo", grpo_scale_rewards="batch", lora={},
                      policy={"path": str(tiny["policy_gpt2"]), "name": "gpt2"})
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--config", write(tmp_path / "t.yaml", cfg), "--out", out], capsys)
    assert code == 0, err
    before, after = state(tiny["policy_gpt2"]), state(out / "final")
    changed = {k for k in before if not before[k].equal(after[k])}
    assert changed and all("attn.c_attn.weight" in k for k in changed)


@pytest.mark.slow  # a variant of the fast tier's run: the full tier (make test-all)
def test_lora_resume_ends_where_the_uninterrupted_run_ends(tiny, tmp_path, capsys):
    cfg = lora_config(tiny, steps=3, checkpoint_every=1)
    whole = tmp_path / "whole"
    assert run_cli(["train", "--config", write(tmp_path / "t.yaml", cfg), "--out", whole], capsys)[0] == 0
    # Proxy calls: normalization 1, step-0 eval 2, steps 1..3 are 3..5: NaN at step 3 stops after checkpoint-2.
    out = tmp_path / "stopped"
    FAIL.update(at=5, calls=0)
    try:
        code, _, err = run_cli(["train", "--config", tmp_path / "t.yaml", "--out", out], capsys)
    finally:
        FAIL.update(at=None)
    assert code == 2 and "checkpoint-2" in err
    assert (out / "checkpoint-2" / "adapter_model.safetensors").is_file()  # checkpoints hold the adapters
    code, _, err = run_cli(["train", "--config", tmp_path / "t.yaml", "--out", out, "--resume"], capsys)
    assert code == 0, err
    assert metrics(out, drop=("wall_time",)) == metrics(whole, drop=("wall_time",))
    a, b = state(whole / "final"), state(out / "final")
    assert all(a[k].allclose(b[k], atol=1e-6) for k in a)


def test_dry_run_shows_the_lora_settings_and_trainable_parameters(tiny, tmp_path):
    from rmteach.core.config import validate
    from rmteach.train.config import TrainConfig
    from rmteach.train.run import run_train

    result = run_train(validate(TrainConfig, lora_config(tiny)), tmp_path / "run", dry_run=True)
    # The tiny Llama: 2 layers, hidden 32; q_proj and v_proj 32 -> 32: 2 x 2 x r (32 + 32) adapter weights.
    line = result["plan"]["lora"]
    assert line.startswith("r 4, alpha 8, dropout 0, target_modules q_proj, v_proj; trains 1,024 of "), line
    assert not result["missing"] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("lora, says", [
    ({"r": 8, "rank": 4}, "lora.rank"),
    ({"r": 0}, "lora.r"),
    ({"dropout": 1.0}, "lora.dropout"),
    ({"target_modules": []}, "lora.target_modules"),
])
def test_bad_lora_settings_exit_2_with_one_line(tiny, tmp_path, capsys, lora, says):
    code, _, err = run_cli(["train", "--config", write(tmp_path / "t.yaml", lora_config(tiny, lora=lora)), "--out",
                            tmp_path / "run"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "run").exists()


def test_target_modules_the_policy_lacks_exit_2(tiny, tmp_path, capsys):
    cfg = lora_config(tiny, lora={"target_modules": ["c_attn"]})
    code, _, err = run_cli(["train", "--config", write(tmp_path / "t.yaml", cfg), "--out", tmp_path / "run"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith("rmteach train: error: lora:"), err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_missing_peft_is_one_line_before_any_model_loads(tiny, tmp_path, capsys, monkeypatch):
    import rmteach.core.hf as hf

    monkeypatch.setitem(sys.modules, "peft", None)  # import peft -> ImportError, as where it is not installed
    monkeypatch.setattr(hf, "load_causal_lm", lambda *a, **k: pytest.fail("a model loaded"))
    code, _, err = run_cli(["train", "--config", write(tmp_path / "t.yaml", lora_config(tiny)), "--out",
                            tmp_path / "run"], capsys)
    assert code == 2
    want = "rmteach train: error: lora needs the peft package: pip install 'rmteach[lora]'"
    assert err.strip().splitlines() == [want]
    assert not (tmp_path / "run").exists()


def test_no_lora_block_means_no_peft(tiny, tmp_path):
    from rmteach.core.config import validate
    from rmteach.train.config import TrainConfig

    cfg = validate(TrainConfig, lora_config(tiny, lora=None))
    assert cfg.lora is None and json.loads(cfg.model_dump_json())["lora"] is None
    full = validate(TrainConfig, lora_config(tiny, lora={}))
    assert full.lora.model_dump() == {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": None}
