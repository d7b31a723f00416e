"""The Hugging Face RM's options: tokenizer, revision, chat template, system prompt, truncation, dtype, device map,
8/4-bit loading and `batch_size: auto`; every score checked against the model called by hand."""

from __future__ import annotations

import importlib.util
import os
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import WORDS
from helpers import run_cli, write_eval_config
from rmteach.backends import reward_hf
from rmteach.backends.rewards import check_reward_source, load_reward_model
from rmteach.core import hf
from rmteach.core.blocks import RewardModelConfig
from rmteach.core.config import resolve_paths
from rmteach.core.errors import UserError
from rmteach.core.chat import format_conversation
from rmteach.evaluate.score_cache import score_key
from rmteach.toy.tiny import word_tokenizer

PROMPTS = ["w1 w2 ", "w3 ", "w4 w5 w6 w7 ", "w0 "] * 3
RESPONSES = ["w1", "w2 w3 w4 w5 w6", "w7 w8", "w9 w10 w11 w0 w1 w2 w3"] * 3
# Like the tiny RMs' template, with a system turn of its own.
SYSTEM_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }} "
                   "{% elif m['role'] == 'user' %}User: {{ m['content'] }} "
                   "{% else %}Assistant: {{ m['content'] }} <eos>{% endif %}{% endfor %}")


def rm_of(tiny, **options):
    return load_reward_model(RewardModelConfig(name="r", path=str(tiny["rm_llama"]), **{"batch_size": 5, **options}))


def by_hand(model_dir, texts, tokenizer_dir=None, dtype=torch.float32) -> np.ndarray:
    """Rewards of `texts`, one at a time (no padding), straight through transformers."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype).eval()
    with torch.no_grad():
        return np.array([model(**tok(t, add_special_tokens=False, return_tensors="pt")).logits[0, 0].float().item()
                         for t in texts])


def templated(prompt: str, response: str) -> str:
    """The tiny RMs' chat template, written out by hand."""
    return f"User: {prompt} Assistant: {response} <eos>"


def fed(rm) -> list[list[int]]:
    """Record the token ids (padding removed) of every row the RM's model is called on."""
    seen, forward = [], rm.model.forward

    def recording(input_ids=None, attention_mask=None, **kw):
        seen.extend(row[: sum(m)] for row, m in zip(input_ids.tolist(), attention_mask.tolist()))
        return forward(input_ids=input_ids, attention_mask=attention_mask, **kw)

    rm.model.forward = recording
    return seen


# -- tokenizer and revision ---------------------------------------------------------------------------------


def test_another_tokenizer_is_read_from_its_own_folder(tiny, tmp_path):
    default = rm_of(tiny).score(PROMPTS, RESPONSES)
    AutoTokenizer.from_pretrained(tiny["rm_llama"]).save_pretrained(tmp_path / "copy")  # a tokenizer-only folder
    np.testing.assert_array_equal(rm_of(tiny, tokenizer=str(tmp_path / "copy")).score(PROMPTS, RESPONSES), default)
    word_tokenizer(WORDS[::-1]).save_pretrained(tmp_path / "other")  # as many tokens, other ids
    other = rm_of(tiny, tokenizer=str(tmp_path / "other")).score(PROMPTS, RESPONSES)
    assert not np.allclose(other, default)
    expected = by_hand(tiny["rm_llama"], [templated(p, r) for p, r in zip(PROMPTS, RESPONSES)], tmp_path / "other")
    np.testing.assert_allclose(other, expected, rtol=1e-5, atol=1e-5)


def test_a_tokenizer_that_does_not_fit_or_is_missing_is_refused(tiny, tmp_path):
    with pytest.raises(UserError, match="tokenizer has 19 tokens but the model's embedding has 17 rows"):
        rm_of(tiny, tokenizer=str(tiny["rm_other_tok"]))
    for folder, words in ((tmp_path / "none", "tokenizer path does not exist"), (tmp_path, "has no tokenizer")):
        cfg = RewardModelConfig(name="r", path=str(tiny["rm_llama"]), tokenizer=str(folder))
        with pytest.raises(UserError, match=words):
            check_reward_source(cfg, "reward model 'r'")


def _recording_loads(monkeypatch) -> list[tuple[str, dict]]:
    calls, real = [], hf.from_pretrained

    def recording(loader, path, what, **kwargs):
        calls.append((loader.__name__, {k: v for k, v in kwargs.items() if k in ("revision", "device_map")}))
        return real(loader, path, what, **kwargs)

    monkeypatch.setattr(hf, "from_pretrained", recording)
    monkeypatch.setattr(reward_hf, "from_pretrained", recording)
    return calls


def test_revision_reaches_every_load_of_path_and_a_local_folder_ignores_it(tiny, tmp_path, monkeypatch):
    default = rm_of(tiny).score(PROMPTS, RESPONSES)
    calls = _recording_loads(monkeypatch)
    got = rm_of(tiny, revision="v1.0").score(PROMPTS, RESPONSES)
    assert calls == [("AutoConfig", {"revision": "v1.0"}), ("AutoTokenizer", {"revision": "v1.0"}),
                     ("AutoModelForSequenceClassification", {"revision": "v1.0"})]
    np.testing.assert_array_equal(got, default)  # transformers reads a local folder as it is
    calls.clear()
    AutoTokenizer.from_pretrained(tiny["rm_llama"]).save_pretrained(tmp_path / "tok")
    rm_of(tiny, revision="v1.0", tokenizer=str(tmp_path / "tok"))
    assert ("AutoTokenizer", {}) in calls  # another repo's tokenizer: path's revision is not its


# -- what the RM reads: chat template, system prompt, conversations, truncation ------------------------------


def test_chat_template_none_scores_the_plain_text(tiny):
    got = rm_of(tiny, chat_template="none").score(PROMPTS, RESPONSES)
    np.testing.assert_allclose(got, by_hand(tiny["rm_llama"], [p + r for p, r in zip(PROMPTS, RESPONSES)]),
                               rtol=1e-5, atol=1e-5)
    default = rm_of(tiny).score(PROMPTS, RESPONSES)
    texts = [templated(p, r) for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(default, by_hand(tiny["rm_llama"], texts), rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, default)


def test_a_chat_template_string_replaces_the_tokenizers(tiny):
    got = rm_of(tiny, chat_template="{% for m in messages %}{{ m['content'] }} {% endfor %}").score(PROMPTS, RESPONSES)
    np.testing.assert_allclose(got, by_hand(tiny["rm_llama"], [f"{p} {r} " for p, r in zip(PROMPTS, RESPONSES)]),
                               rtol=1e-5, atol=1e-5)


def test_a_chat_template_that_fails_is_one_line_at_load_time(tiny):
    with pytest.raises(UserError, match=r"reward model 'r': its chat_template fails \(TemplateError: no system"):
        rm_of(tiny, chat_template="{{ raise_exception('no system role') }}")


def test_the_system_prompt_comes_first(tiny):
    rm = rm_of(tiny, system_prompt="w5 w6", chat_template=SYSTEM_TEMPLATE)
    seen = fed(rm)
    rm.score(["w1 w2"], ["w3"])
    tok = AutoTokenizer.from_pretrained(tiny["rm_llama"])
    assert seen == [tok("w5 w6 User: w1 w2 Assistant: w3 <eos>", add_special_tokens=False).input_ids]
    # with the tokenizer's own template, and as plain text
    text = format_conversation(tok, "w1", "w2", system_prompt="w9 w10")
    assert "w9 w10" in text and text.index("w9 w10") < text.index("w1")
    assert format_conversation(tok, "w1 ", "w2", chat_template="none", system_prompt="w9") == "w9\n\nw1 w2"


def test_conversation_prompts_are_rendered_as_their_turns(tiny):
    rm = rm_of(tiny)
    as_turns = [[{"role": "user", "content": p}] for p in PROMPTS]
    np.testing.assert_array_equal(rm.score(as_turns, RESPONSES), rm.score(PROMPTS, RESPONSES))
    chat = [{"role": "user", "content": "w1"}, {"role": "assistant", "content": "w2"},
            {"role": "user", "content": "w3"}]
    expected = by_hand(tiny["rm_llama"], ["User: w1 Assistant: w2 <eos> User: w3 Assistant: w4 <eos>"])
    np.testing.assert_allclose(rm.score([chat], ["w4"]), expected, rtol=1e-5, atol=1e-5)
    # the RM's system prompt replaces the conversation's own; without a template, turns are blank-line separated
    tok = AutoTokenizer.from_pretrained(tiny["rm_llama"])
    sys_chat = [{"role": "system", "content": "w9"}, *chat]
    assert format_conversation(tok, sys_chat, "w4", chat_template=SYSTEM_TEMPLATE, system_prompt="w5") == (
        "w5 User: w1 Assistant: w2 <eos>User: w3 Assistant: w4 <eos>")
    assert format_conversation(tok, sys_chat, " w4", chat_template="none") == (
        "System: w9\n\nUser: w1\n\nAssistant: w2\n\nUser: w3\n\nAssistant: w4")  # the policy's text + response
    # a conversation of one user turn is the same prompt as its text, with or without a template
    for template in (None, "none"):
        assert format_conversation(tok, [{"role": "user", "content": "w1 "}], "w2", chat_template=template) == (
            format_conversation(tok, "w1 ", "w2", chat_template=template))


@pytest.mark.parametrize("side", ["left", "right", None])
def test_truncation_keeps_the_chosen_end(tiny, side):
    prompt, response = "w1 w2 w3 w4 w5 w6", "w7 w8 w9 w10"
    tok = AutoTokenizer.from_pretrained(tiny["rm_llama"])
    full = tok(templated(prompt, response), add_special_tokens=False).input_ids
    assert len(full) == 13
    rm = rm_of(tiny, max_length=8, **({"truncation_side": side} if side else {}))
    seen = fed(rm)
    rm.score([prompt, "w1"], [response, "w2"])
    kept = full[:8] if side == "right" else full[-8:]  # left is the default: the response's end is kept
    assert seen == [tok(templated("w1", "w2"), add_special_tokens=False).input_ids, kept]


# -- how it is loaded: dtype, device map, 8/4 bits ------------------------------------------------------------


def test_an_rms_own_dtype_wins_over_the_commands(tiny):
    rm = load_reward_model(RewardModelConfig(name="r", path=str(tiny["rm_llama"]), dtype="bfloat16"), dtype="float32")
    assert rm.model.dtype == torch.bfloat16
    got = rm.score(PROMPTS, RESPONSES)
    texts = [templated(p, r) for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(got, by_hand(tiny["rm_llama"], texts, dtype=torch.bfloat16), atol=0.05)
    rm = load_reward_model(RewardModelConfig(name="r", path=str(tiny["rm_llama"]), dtype="float32"), dtype="bfloat16")
    assert rm.model.dtype == torch.float32


def test_device_map_auto_places_the_model_with_accelerate(tiny, monkeypatch):
    default = rm_of(tiny).score(PROMPTS, RESPONSES)
    calls = _recording_loads(monkeypatch)
    rm = rm_of(tiny, device_map="auto")
    assert ("AutoModelForSequenceClassification", {"device_map": "auto"}) in calls
    assert rm.device == torch.device("cpu")  # no GPU here: accelerate puts everything on the CPU
    np.testing.assert_allclose(rm.score(PROMPTS, RESPONSES), default, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bits", ["load_in_8bit", "load_in_4bit"])
def test_8_and_4_bits_need_bitsandbytes_and_cuda_before_anything_loads(tiny, monkeypatch, bits):
    assert importlib.util.find_spec("bitsandbytes") is None  # not installable here
    cfg = RewardModelConfig(name="r", path=str(tiny["rm_llama"]), **{bits: True})
    with pytest.raises(UserError, match=f"{bits} needs bitsandbytes, which is not installed: pip install 'rmteach"):
        check_reward_source(cfg, "reward model 'r'")
    monkeypatch.setattr(hf, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(UserError, match="needs bitsandbytes"):
        load_reward_model(cfg)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "bitsandbytes" else real(
        name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=f"{bits} needs a CUDA GPU"):
        check_reward_source(cfg, "reward model 'r'")


def test_8_bits_without_bitsandbytes_exit_2_through_the_cli(tiny, tmp_path, capsys):
    rms = [{"name": "r", "path": str(tiny["rm_llama"]), "load_in_8bit": True}]
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, reward_models=rms)
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "out"], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("rmteach evaluate: error: reward model 'r': load_in_8bit needs "
                                            "bitsandbytes, which is not installed: pip install 'rmteach[quant]'")


def test_options_of_path_rms_are_refused_on_a_callable(tiny, tmp_path, capsys):
    rms = [{"name": "r", "callable": "rm_fns:gold", "chat_template": "none"}]
    code, _, err = run_cli(["evaluate", "-c", write_eval_config(tmp_path / "e.yaml", tiny, reward_models=rms), "-o",
                            tmp_path / "out"], capsys)
    assert code == 2 and "chat_template is an option of 'path' RMs only; this one uses 'callable'" in err


# -- batch_size: auto ---------------------------------------------------------------------------------------


def _oom_above(rm, limit: int, error=None, tokens=False) -> list[int]:
    """Make the RM's model fail as a GPU out of memory does on batches of more than `limit` sequences (or tokens,
    padding included); returns the sizes of the batches run."""
    sizes, forward = [], rm.model.forward

    def failing(input_ids=None, **kw):
        if (input_ids.numel() if tokens else input_ids.shape[0]) > limit:
            raise error or torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        sizes.append(input_ids.shape[0])
        return forward(input_ids=input_ids, **kw)

    rm.model.forward = failing
    return sizes


def test_auto_batch_size_halves_on_out_of_memory_to_the_same_scores(tiny, capsys):
    prompts, responses = PROMPTS * 2, RESPONSES * 2  # 24 pairs
    fixed = rm_of(tiny, batch_size=4).score(prompts, responses)
    rm = rm_of(tiny, batch_size="auto")
    assert rm.batches.size == 16  # auto starts at 16 on a CPU (64 on a GPU)
    sizes = _oom_above(rm, 4)
    got = rm.score(prompts, responses)
    assert got.tobytes() == fixed.tobytes() and sizes == [4] * 6  # 16, then 8 failed: the same batches as 4
    assert rm.batches.size == 4 and rm.plan(prompts, responses) == rm_of(tiny, batch_size=4).plan(prompts, responses)
    err = capsys.readouterr().err
    assert "reward model 'r': out of memory on a batch of 16; batch size now 8" in err
    assert "out of memory on a batch of 8; batch size now 4" in err
    sizes.clear()
    rm.score(PROMPTS, RESPONSES)
    assert sizes == [4, 4, 4]  # the size that fits is kept
    # A batch that fails late keeps the batches before it. By length the 24 conversations are 6 of 6 tokens, 12 of
    # 9, 6 of 11: at most 80 tokens fit, so 16 (x 9 tokens) fails, 8 x 9 fits twice, 8 x 11 fails, 4 x 11 fits.
    rm = rm_of(tiny, batch_size="auto")
    sizes = _oom_above(rm, 80, tokens=True)
    np.testing.assert_allclose(rm.score(prompts, responses), fixed, rtol=1e-6, atol=1e-6)
    assert sizes == [8, 8, 4, 4] and rm.batches.size == 4


def test_auto_batch_size_gives_up_at_one_and_passes_other_errors_on(tiny):
    rm = rm_of(tiny, batch_size="auto")
    _oom_above(rm, 0)
    with pytest.raises(UserError, match="runs out of memory on a single sequence: lower max_length"):
        rm.score(PROMPTS, RESPONSES)
    rm = rm_of(tiny, batch_size="auto")
    _oom_above(rm, 0, RuntimeError("something else broke"))
    with pytest.raises(RuntimeError, match="something else broke"):
        rm.score(PROMPTS, RESPONSES)
    rm = rm_of(tiny, batch_size=8)  # a fixed size does not hide an out-of-memory
    _oom_above(rm, 4)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        rm.score(PROMPTS, RESPONSES)


def test_auto_batch_size_of_a_callable_is_its_default():
    rm = load_reward_model(RewardModelConfig(name="g", callable="rm_fns:gold", batch_size="auto"))
    assert rm.score(PROMPTS, RESPONSES).shape == (len(PROMPTS),)


# -- the score cache and the config file --------------------------------------------------------------------


def test_the_score_cache_key_holds_the_options_and_the_tokenizers_files(tiny, tmp_path):
    shutil.copytree(tiny["rm_llama"], tmp_path / "tok")

    def key(**options):
        cfg = RewardModelConfig(name="r", path=str(tiny["rm_llama"]), **options)
        return score_key(cfg, "samples", None, device="cpu", dtype="float32", limit=None)

    base, tok = key(), key(tokenizer=str(tmp_path / "tok"))
    others = [key(chat_template="none"), key(system_prompt="w1"), key(truncation_side="right"), key(revision="v2"),
              key(dtype="bfloat16"), key(device_map="auto"), tok]
    assert len({base, *others}) == len(others) + 1
    assert key(batch_size="auto") == base and key(tokenizer=str(tmp_path / "tok")) == tok
    stat = os.stat(tmp_path / "tok" / "tokenizer.json")
    os.utime(tmp_path / "tok" / "tokenizer.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert key(tokenizer=str(tmp_path / "tok")) != tok  # the tokenizer's files changed


def test_a_config_files_tokenizer_and_custom_path_are_read_from_its_folder(tmp_path):
    (tmp_path / "tok").mkdir()
    rm = {"name": "r", "path": "org/rm", "tokenizer": "tok", "custom": {"builder": "m:f", "path": "org/model"}}
    hub = {"name": "h", "path": "org/rm", "tokenizer": "org/tokenizer"}
    got = resolve_paths({"reward_models": [rm, hub]}, tmp_path)["reward_models"]
    assert got[0]["tokenizer"] == str(tmp_path / "tok") and got[0]["custom"]["path"] == "org/model"
    assert got[1]["tokenizer"] == "org/tokenizer"  # a hub id stays one
