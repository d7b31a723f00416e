"""TRL wiring of `rmteach train`: GRPO scaling, checkpointing fields, dry runs, GPU presets, bad input."""

from __future__ import annotations


import pytest
from helpers import run_cli
from train_world import ROOT, make_config, metrics, train, write_config


# ----------------------------------------------------------------------------------------------------------
# GRPO and TRL fields


@pytest.mark.parametrize("scale", ["group", "none"])
def test_grpo_runs_with_its_reward_scaling(world, tmp_path, scale):
    from rmteach.train.trainer import build_trl_config

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
    from rmteach.train.trainer import build_trl_config

    from transformers import AutoModelForCausalLM

    from rmteach.backends.rewards import load_reward_model
    from rmteach.core.data import load_prompts
    from rmteach.core.hf import load_tokenizer
    from rmteach.train.rewards import gold_reward
    from rmteach.core.trl import quiet_third_party
    from rmteach.train.trainer import train_dataset, trainer_class

    cfg = make_config(world, gradient_checkpointing=on, steps=1, eval_every=None)
    args = build_trl_config(cfg, tmp_path, 1, cfg.layout(1), use_cpu=True)
    tok = load_tokenizer(str(world / "policy"), "policy", padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(world / "policy")
    gold = gold_reward(load_reward_model(cfg.ground_truth))
    with quiet_third_party():  # as run_train does
        trainer = trainer_class("rloo")(model=model, reward_funcs=[gold, gold],  # proxy and ground truth
                                        args=args, train_dataset=train_dataset(tok, load_prompts(cfg.train_prompts)),
                                        processing_class=tok)
        trainer.train()  # the Trainer switches checkpointing on when training starts
    m = trainer.model  # the model itself, not a config field (transformers 5.2x renamed the property too)
    assert (m.is_activation_checkpointing if hasattr(type(m), "is_activation_checkpointing")
            else m.is_gradient_checkpointing) is on


def test_gradient_checkpointing_goes_to_the_old_field_name_on_older_transformers(world, tmp_path, monkeypatch):
    import trl

    from rmteach.train.trainer import build_trl_config

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
    from rmteach.core.config import load_config
    from rmteach.train.config import TrainConfig

    pythia = load_config(TrainConfig, ROOT / "configs" / "train_pythia1b.yaml")
    llama = load_config(TrainConfig, ROOT / "configs" / "train_llama32_1b.yaml")
    assert pythia.policy.path == "EleutherAI/pythia-1b-deduped" and pythia.algorithm == "rloo"
    assert (pythia.learning_rate, pythia.kl_coef, pythia.samples_per_prompt, pythia.epochs) == (1e-7, 0.05, 2, 6)
    assert llama.policy.path == "meta-llama/Llama-3.2-1B-Instruct" and llama.algorithm == "grpo" and llama.use_vllm
    assert pythia.ground_truth.path == llama.ground_truth.path == "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2"


def test_gpu_presets_keep_the_proxy_rm_hub_id():
    from rmteach.core.config import load_config
    from rmteach.train.config import TrainConfig

    cfg = load_config(TrainConfig, ROOT / "configs" / "train_pythia1b.yaml")
    assert cfg.reward_model.path == "Ray2333/GRM-Gemma2-2B-rewardmodel-ft"
