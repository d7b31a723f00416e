"""The custom reward backend: a builder's scorer, its heads picked by `output`, checked as callables are."""

from __future__ import annotations

import numpy as np
import pytest

import rm_builders
from helpers import run_cli, write_eval_config
from rm_builders import heads
from rmteach.backends.rewards import check_reward_source, load_reward_model
from rmteach.core.blocks import RewardModelConfig
from rmteach.core.config import validate
from rmteach.core.errors import ItemError, UserError

PROMPTS = ["w1 w2", "w3", "w4 w5 w6 w7", "w0"] * 5
RESPONSES = ["w1", "w2 w3 w4 w5 w6", "w1 w8 w1", "w9 w10 w11 w0 w1 w2 w3"] * 5
H = heads(PROMPTS, RESPONSES)  # (20, 3), computed without the backend


def custom_rm(form="array", output=None, **extra):
    custom = {"builder": "rm_builders:multi_head", "kwargs": {"form": form}, "output": output}
    return load_reward_model(validate(RewardModelConfig, {"name": "r", "custom": custom, **extra}))


@pytest.mark.parametrize("form, output, expected", [
    ("object", "score", H[:, 0] - 0.5 * H[:, 1]),  # an (n, 1) attribute: its column
    ("object", ["rewards", 1], H[:, 1]),
    ("dict", "score", H[:, 0] - 0.5 * H[:, 1]),
    ("dict", ["rewards", 2], H[:, 2]),
    ("array", 0, H[:, 0]),
    ("array", 2, H[:, 2]),
    ("tensor", 1, H[:, 1]),
    ("rows", 2, H[:, 2]),
])
def test_output_picks_the_named_head(form, output, expected):
    rm = custom_rm(form, output, batch_size=3)
    np.testing.assert_array_equal(rm.score(PROMPTS, RESPONSES), expected)
    rm.close()


def test_the_builder_gets_path_device_dtype_and_kwargs(tmp_path):
    rm_builders.BUILT.clear()
    custom = {"builder": "rm_builders:multi_head", "path": str(tmp_path), "kwargs": {"form": "array", "extra": 3},
              "output": 0}
    load_reward_model(RewardModelConfig(name="r", custom=custom), device="cpu", dtype="auto")
    load_reward_model(RewardModelConfig(name="r", custom=custom, dtype="bfloat16"), device="cpu", dtype="float32")
    assert rm_builders.BUILT == [
        {"path": str(tmp_path), "device": "cpu", "dtype": "float32", "form": "array", "extra": 3},  # auto on a CPU
        {"path": str(tmp_path), "device": "cpu", "dtype": "bfloat16", "form": "array", "extra": 3},  # the RM's own
    ]


def test_batches_follow_batch_size_and_auto_halves_on_out_of_memory(capsys):
    rm_builders.CALLS.clear()
    fixed = custom_rm("array", 1, batch_size=6).score(PROMPTS, RESPONSES)
    assert rm_builders.CALLS == [6, 6, 6, 2]
    rm_builders.CALLS.clear()
    custom = {"builder": "rm_builders:multi_head", "kwargs": {"form": "array", "oom_above": 5}, "output": 1}
    rm = load_reward_model(RewardModelConfig(name="r", custom=custom, batch_size="auto"))
    assert rm.batches.size == 16  # auto starts at 16 on a CPU
    np.testing.assert_array_equal(rm.score(PROMPTS, RESPONSES), fixed)
    assert rm.batches.size == 4 and rm_builders.CALLS == [4] * 5  # 16 -> 8 -> 4 fits
    err = capsys.readouterr().err
    assert "out of memory on a batch of 16; batch size now 8" in err and "batch size now 4" in err
    rm_builders.CALLS.clear()
    rm.score(PROMPTS, RESPONSES)
    assert rm_builders.CALLS == [4] * 5  # the size that fits is kept
    # A fixed batch size does not hide the error: it names the RM and the first prompt of the call.
    rm = load_reward_model(RewardModelConfig(name="r", custom=custom, batch_size=8))
    with pytest.raises(ItemError, match="raised OutOfMemoryError: CUDA out of memory.*item 0"):
        rm.score(PROMPTS, RESPONSES)


def test_plan_is_the_scorers_batches():
    rm = custom_rm("array", 0, batch_size=6)
    assert rm.plan(PROMPTS, RESPONSES) == [list(range(0, 6)), list(range(6, 12)), list(range(12, 18)), [18, 19]]


def test_extras_reach_the_scorer_and_close_reaches_it():
    rm = load_reward_model(RewardModelConfig(name="r", custom={"builder": "rm_builders:with_extras"}, batch_size=3))
    got = rm.score(PROMPTS[:5], RESPONSES[:5], extras={"bonus": [1, 2, 3, 4, 5]})
    assert got.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    before = rm_builders.ClosingScorer.closed
    load_reward_model(RewardModelConfig(name="r", custom={"builder": "rm_builders:closing"})).close()
    assert rm_builders.ClosingScorer.closed == before + 1


def test_conversation_prompts_reach_the_scorer():
    conv = [[{"role": "user", "content": p}] for p in PROMPTS]
    np.testing.assert_array_equal(custom_rm("array", 2).score(conv, RESPONSES), H[:, 2])


@pytest.mark.parametrize("custom, words", [
    ({"builder": "mb"}, ["builder must look like 'module:attribute'"]),
    ({"builder": "m:f", "output": -1}, ["column index >= 0"]),
    ({"builder": "m:f", "output": []}, ["non-empty list"]),
    ({"builder": "m:f", "kwargs": {"device": "cuda"}}, ["kwargs: device", "the builder's own"]),
    ({"builder": "m:f", "unknown": 1}, ["unknown key"]),
])
def test_bad_custom_blocks_fail_at_load_time(custom, words):
    with pytest.raises(UserError) as e:
        validate(RewardModelConfig, {"name": "r", "custom": custom})
    assert all(w in str(e.value) for w in words), str(e.value)


def test_hf_options_are_refused_on_other_backends():
    with pytest.raises(UserError, match="max_length, tokenizer are options of 'path' RMs only; this one uses 'custom'"):
        validate(RewardModelConfig, {"name": "r", "custom": {"builder": "m:f"}, "max_length": 9, "tokenizer": "t"})
    with pytest.raises(UserError, match="dtype is an option of 'path' or 'custom' RMs only"):
        validate(RewardModelConfig, {"name": "r", "callable": "rm_fns:gold", "dtype": "float16"})
    with pytest.raises(UserError, match="needs exactly one of 'path' or 'callable' or 'http' or 'custom'"):
        validate(RewardModelConfig, {"name": "r", "callable": "rm_fns:gold", "custom": {"builder": "m:f"}})
    # a config dumped whole (every option at its default) is fine
    whole = RewardModelConfig(name="r", callable="rm_fns:gold").model_dump()
    assert validate(RewardModelConfig, whole).callable == "rm_fns:gold"


def test_check_reward_source_imports_the_builder():
    check_reward_source(RewardModelConfig(name="r", custom={"builder": "rm_builders:multi_head"}), "rm")
    with pytest.raises(UserError, match="rm builder: module 'rm_builders' has no attribute 'nope'"):
        check_reward_source(RewardModelConfig(name="r", custom={"builder": "rm_builders:nope"}), "rm")


# -- through the command line: one line, exit code 2 ---------------------------------------------------------


@pytest.mark.parametrize("custom, words", [
    ({"kwargs": {"form": "array"}, "output": 3},
     ["reward model 'r' (rm_builders:multi_head, output 3)", "returned 3 heads", "not one of columns 0 to 2",
      "prompt id 'p0'"]),
    ({"kwargs": {"form": "object"}, "output": "reward"},
     ["returned a HeadsOutput without the attribute 'reward' that output names"]),
    ({"kwargs": {"form": "dict"}, "output": "reward"},
     ["returned a dict without the key 'reward'", "keys: rewards, score"]),
    ({"kwargs": {"form": "short"}, "output": 0}, ["returned 15 rewards for 16 completions"]),
    ({"kwargs": {"form": "array"}}, ["returned an array of shape (16, 3)", "custom.output picks the reward"]),
    ({"kwargs": {"form": "rows"}, "output": "score"}, ["returned a list without the attribute 'score'"]),
    ({"kwargs": {"form": "none"}, "output": 0}, ["returned a NoneType; output 0 picks a column"]),
    ({"kwargs": {"form": "dict"}, "output": "rewards"}, ["returned a list (", "at position 0; expected a number"]),
])
def test_bad_scorer_outputs_exit_2_with_one_line(tiny, tmp_path, capsys, custom, words, shared_sample_cache):
    rm = {"name": "r", "custom": {"builder": "rm_builders:multi_head", **custom}}
    check_cli_error(tiny, tmp_path, capsys, rm, words)


@pytest.mark.parametrize("builder, words", [
    ("rm_builders:raises", ["reward model 'r': builder rm_builders:raises raised FileNotFoundError: no model at"]),
    ("rm_builders:not_a_scorer", ["builder rm_builders:not_a_scorer returned a int, not a scorer"]),
    ("rm_builders:absent", ["reward model 'r' builder: module 'rm_builders' has no attribute 'absent'"]),
])
def test_bad_builders_exit_2_with_one_line(tiny, tmp_path, capsys, builder, words, shared_sample_cache):
    check_cli_error(tiny, tmp_path, capsys, {"name": "r", "custom": {"builder": builder}}, words)


def check_cli_error(tiny, tmp_path, capsys, rm: dict, words: list[str]) -> None:
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, reward_models=[rm], preferences=None)
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "out"], capsys)
    assert code == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rmteach evaluate: error: ") and [ln for ln in err.splitlines() if ": error: " in ln] == [
        last], err
    for w in words:
        assert w in last, (w, last)
    assert not (tmp_path / "out").exists()


def test_a_custom_rm_in_an_evaluation_is_scored_and_reported(tiny, tmp_path, capsys):
    rms = [{"name": "heads", "custom": {"builder": "rm_builders:multi_head", "kwargs": {"form": "object"},
                                        "output": ["rewards", 0]}, "batch_size": "auto"},
           {"name": "gold_cubed", "callable": "rm_fns:gold_cubed", "batch_size": "auto"}]
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, reward_models=rms)
    code, out, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "out"], capsys)
    assert code == 0, err
    import json

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [c["name"] for c in report["reward_models"]] == ["heads", "gold_cubed", "gold"]
