"""The bad-input contract of every command: exit code 2, one line naming what was wrong, nothing new in --out.

Each case is (command line, key words of the message). Most fail while the config or the flags are checked,
before any model loads; a few load the tiny models (a checkpoint that does not fit, a reward function that
fails on its first call) and must still leave --out as it was.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from helpers import run_cli, write_eval_config
from study_world import study_dict
from train_world import config_dict

LATIN1 = '{"id": "a", "prompt": "caf\xe9"}\n'.encode("latin-1")


@dataclass
class Ctx:
    """What a case builds its command line from."""

    tiny: dict[str, Path]
    world: Path
    bad: dict[str, Path]
    tmp: Path
    out: Path  # --out (inside `outs`, whose listing must not change)
    monkeypatch: Any

    def file(self, name: str, content: str | bytes) -> Path:
        p = self.tmp / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return p

    def jsonl(self, name: str, rows: list[Any]) -> Path:
        return self.file(name, "".join(json.dumps(r) + "\n" for r in rows))

    def evaluate(self, *extra: str, **changes: Any) -> list[str]:
        cfg = write_eval_config(self.tmp / "evaluate.yaml", self.tiny, **changes)
        return ["evaluate", "-c", cfg, "-o", self.out, *extra]

    def train(self, *extra: str, **changes: Any) -> list[str]:
        cfg = self.tmp / "train.yaml"
        cfg.write_text(yaml.safe_dump(config_dict(self.world, **{"steps": 1, "eval_every": None, **changes})))
        return ["train", "-c", cfg, "-o", self.out, *extra]

    def study(self, *extra: str, **changes: Any) -> list[str]:
        real = {"policies": [{"name": "alpha", "path": str(self.tiny["policy_gpt2"])}],
                "prompts": {"train": {"path": str(self.tiny["prompts"])}, "eval": {"path": str(self.tiny["prompts"])}},
                "preferences": {"path": str(self.tiny["prefs"])}}
        cfg = self.tmp / "study.yaml"
        cfg.write_text(yaml.safe_dump(study_dict(**{**real, **changes})))
        return ["study", "-c", cfg, "-o", self.out, *extra]

    def prompts(self, content: str | bytes | list, *, deny: bool = False) -> list[str]:
        """`evaluate` on a prompt set holding `content` (rows, text or bytes)."""
        p = self.jsonl("p.jsonl", content) if isinstance(content, list) else self.file("p.jsonl", content)
        return self.evaluate(prompts={"path": str(self.deny(p) if deny else p)})

    def prefs(self, content: str | bytes | list) -> list[str]:
        p = self.jsonl("q.jsonl", content) if isinstance(content, list) else self.file("q.jsonl", content)
        return self.evaluate(preferences={"path": str(p)})

    def policy(self, path: Path) -> list[str]:
        return self.evaluate(policy={"path": str(path)})

    def rm(self, **source: str) -> list[str]:
        """`evaluate` with one candidate RM 'r' from `source` (path= or callable=)."""
        return self.evaluate(reward_models=[{"name": "r", **source}])

    def deny(self, path: Path) -> Path:
        """Make reading `path` fail as an unreadable file does (tests run as root: chmod cannot)."""
        import os

        original = os.open  # every file the user names is opened by rmteach.core.io.open_user_file

        def refuse(p: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if Path(p) == path:
                raise PermissionError(13, "Permission denied", str(p))
            return original(p, flags, *args, **kwargs)

        self.monkeypatch.setattr(os, "open", refuse)
        return path


Case = tuple[Callable[[Ctx], list[Any]], list[str]]


CASES: dict[str, Case] = {
    # -- evaluate: files ------------------------------------------------------------------------------
    "evaluate/prompts_not_utf8": (lambda c: c.prompts(LATIN1), ["prompt set", "p.jsonl", "not UTF-8", "line 1"]),
    "evaluate/preferences_not_utf8": (lambda c: c.prefs(LATIN1), ["preference set", "q.jsonl", "not UTF-8"]),
    "evaluate/config_not_utf8": (lambda c: ["evaluate", "-c", c.file("e.yaml", b"policy: caf\xe9\n"), "-o", c.out],
                                 ["config file", "e.yaml", "not UTF-8"]),
    "evaluate/config_is_a_folder": (lambda c: ["evaluate", "-c", c.tmp, "-o", c.out], ["config file", "is a folder"]),
    "evaluate/config_missing": (lambda c: ["evaluate", "-c", c.tmp / "none.yaml", "-o", c.out],
                                ["config file not found", "none.yaml"]),
    "evaluate/config_not_a_mapping": (lambda c: ["evaluate", "-c", c.file("l.yaml", "- 1\n- 2\n"), "-o", c.out],
                                      ["expected a mapping"]),
    "evaluate/prompts_is_a_folder": (lambda c: c.evaluate(prompts={"path": str(c.tmp)}),
                                     ["prompt set", "not a dataset saved with save_to_disk", "JSONL"]),
    "evaluate/prompts_empty_file": (lambda c: c.prompts(""), ["prompt set is empty", "p.jsonl"]),
    "evaluate/prompts_blank_lines_only": (lambda c: c.prompts("\n \n"), ["prompt set is empty"]),
    "evaluate/prompts_unreadable": (lambda c: c.prompts([{"prompt": "w1"}], deny=True),
                                    ["prompt set", "p.jsonl", "permission denied"]),
    "evaluate/duplicate_prompt_ids": (lambda c: c.prompts([{"id": "a", "prompt": "w1"}, {"id": "a", "prompt": "w2"}]),
                                      ["id 'a' appears more than once"]),
    "evaluate/prompt_id_not_scalar": (lambda c: c.prompts([{"id": {"x": 1}, "prompt": "w1"}]),
                                      ["row 0", "'id' must be a string or a number"]),
    "evaluate/prompt_not_a_string": (lambda c: c.prompts([{"prompt": 3}]), ["row 0", "'prompt' must be a string"]),
    "evaluate/line_not_json": (lambda c: c.prompts('{"prompt": "w1"}\n{oops\n'), ["p.jsonl:2", "not valid JSON"]),
    "evaluate/line_not_an_object": (lambda c: c.prompts("[1, 2]\n"), ["p.jsonl:1", "must be a JSON object"]),
    "evaluate/chosen_equals_rejected": (lambda c: c.prefs([{"id": "x", "prompt": "w", "chosen": "a", "rejected": "a"}]),
                                        ["same text as chosen and rejected", "'x'"]),
    "evaluate/split_on_a_file": (lambda c: c.evaluate(prompts={"path": str(c.tiny["prompts"]), "split": "train"}),
                                 ["'split' is for a dataset folder", "remove 'split'"]),
    # -- evaluate: models -----------------------------------------------------------------------------
    "evaluate/policy_is_a_file": (lambda c: c.policy(c.tiny["prompts"]), ["policy path", "is a file", "model folder"]),
    "evaluate/policy_is_a_reward_model": (lambda c: c.policy(c.tiny["rm_llama"]),
                                          ["does not fit LlamaForCausalLM", "lm_head.weight", "score.weight"]),
    "evaluate/policy_folder_without_a_model": (lambda c: c.policy(c.tmp), ["policy folder", "has no config.json"]),
    "evaluate/policy_without_tokenizer": (lambda c: c.policy(c.bad["no_tokenizer"]), ["policy folder", "no tokenizer"]),
    "evaluate/policy_weights_corrupt": (lambda c: c.policy(c.bad["corrupt"]),
                                        ["could not load policy", "corrupt", "SafetensorError"]),
    "evaluate/policy_config_disagrees_with_weights": (lambda c: c.policy(c.bad["vocab"]),
                                                      ["another shape", "transformer.wte.weight", "config.json"]),
    "evaluate/prompt_longer_than_the_policy_reads": (lambda c: c.prompts([{"id": "long", "prompt": "w1 " * 200}]),
                                                     ["prompt id 'long'", "positions", "max_new_tokens"]),
    "evaluate/reward_model_is_a_policy": (lambda c: c.rm(path=str(c.tiny["policy_gpt2"])),
                                          ["reward model 'r'", "GPT2LMHeadModel", "not a sequence classifier",
                                           "allow_new_head"]),
    "evaluate/reward_model_without_head": (lambda c: c.rm(path=str(c.bad["headless_rm"])),
                                           ["reward model 'r'", "no weights in the checkpoint for score.weight",
                                            "allow_new_head"]),
    "evaluate/device_not_here": (lambda c: c.evaluate(device="mps"), ["device 'mps'", "not available"]),
    # -- evaluate: user code --------------------------------------------------------------------------
    "evaluate/callable_raises": (lambda c: c.rm(callable="rm_fns:raises"),
                                 ["reward model 'r'", "raised ValueError: the judge is down", "prompt id 'p0'"]),
    "evaluate/callable_returns_strings": (lambda c: c.rm(callable="rm_fns:returns_strings"),
                                          ["returned a str ('1.5') at position 0", "a number", "prompt id 'p0'"]),
    "evaluate/callable_returns_none": (lambda c: c.evaluate(ground_truth={"name": "g",
                                                                          "callable": "rm_fns:returns_none"}),
                                       ["reward model 'g'", "returned None", "expected a list of"]),
    "evaluate/callable_returns_generator": (lambda c: c.rm(callable="rm_fns:returns_generator"),
                                            ["returned a generator", "expected a list of"]),
    "evaluate/callable_returns_2d": (lambda c: c.rm(callable="rm_fns:returns_pairs"),
                                     ["returned an array of shape", "one per completion"]),
    "evaluate/callable_module_fails_to_import": (lambda c: c.rm(callable="broken_module:f"),
                                                 ["importing module 'broken_module' raised ZeroDivisionError"]),
    "evaluate/callable_without_attribute": (lambda c: c.rm(callable="rm_fns:"), ["must look like 'module:attribute'"]),
    # -- evaluate: values and --out -------------------------------------------------------------------
    "evaluate/seed_too_large": (lambda c: c.evaluate(sampling={"samples_per_prompt": 2, "seed": 2**40}),
                                ["sampling.seed", "less than or equal to 4294967295"]),
    "evaluate/path_with_nul": (lambda c: c.evaluate(prompts={"path": "a\x00b"}), ["NUL character"]),
    "evaluate/path_name_too_long": (lambda c: c.evaluate(prompts={"path": "x" * 300}), ["File name too long"]),
    "evaluate/set_index_not_ascii_digit": (lambda c: c.evaluate("--set", "reward_models.\u00b2=x"),
                                           ["reward_models", "valid list"]),
    "evaluate/set_into_a_null_list_item": (lambda c: c.evaluate("--set", "reward_models.0.name=x",
                                                                reward_models=[None]),
                                           ["reward_models.0", "needs exactly one of 'path' or 'callable'"]),
    "evaluate/out_is_a_file": (lambda c: ["evaluate", "-c", write_eval_config(c.tmp / "e.yaml", c.tiny), "-o",
                                          c.out.parent / "f.txt"], ["--out", "is a file, not a folder"]),
    "evaluate/out_under_a_file": (lambda c: ["evaluate", "-c", write_eval_config(c.tmp / "e.yaml", c.tiny), "-o",
                                             c.out.parent / "f.txt" / "run"], ["f.txt is a file, not a folder"]),
    # -- train ----------------------------------------------------------------------------------------
    "train/prompts_not_utf8": (lambda c: c.train(train_prompts={"path": str(c.file("p.jsonl", LATIN1))}),
                               ["train_prompts", "not UTF-8"]),
    "train/dry_run_prompts_not_utf8": (lambda c: c.train("--dry-run", epochs=1, train_prompts={"path": str(
        c.file("p.jsonl", LATIN1))}), ["train_prompts", "not UTF-8"]),
    "train/eval_prompts_is_a_folder": (lambda c: c.train(eval_prompts={"path": str(c.tmp)}),
                                       ["eval_prompts", "not a dataset saved with save_to_disk"]),
    "train/trl_args_wrong_type": (lambda c: c.train(trl_args={"num_train_epochs": "many"}),
                                  ["trl_args.num_train_epochs", "valid number"]),
    "train/report_to_unknown": (lambda c: c.train(report_to=["nope"]), ["report_to", "unknown logger 'nope'"]),
    "train/seed_too_large": (lambda c: c.train(seed=2**32), ["seed", "less than or equal to 4294967295"]),
    "train/normalization_report_not_json": (lambda c: c.train(normalization={"path": str(c.tiny["prompts"])}),
                                            ["normalization report", "not valid JSON"]),
    "train/normalization_report_a_list": (lambda c: c.train(normalization={"path": str(c.file("r.json", "[1]"))}),
                                          ["normalization report", "not an `rmteach evaluate` report.json"]),
    "train/policy_is_a_reward_model": (lambda c: c.train(policy={"path": str(c.tiny["rm_llama"])}),
                                       ["policy", "does not fit", "score.weight"]),
    "train/prompt_longer_than_the_policy_reads": (lambda c: c.train(max_new_tokens=500),
                                                  ["train_prompts", "prompt id 'tr0'", "positions"]),
    "train/proxy_raises": (lambda c: c.train(reward_model={"name": "j", "callable": "rm_fns:raises"}),
                           ["reward model 'j'", "raised ValueError: the judge is down", "prompt id 'tr0'"]),
    "train/gold_raises_at_step_0": (lambda c: c.train(ground_truth={"name": "g", "callable": "rm_fns:returns_strings"}),
                                    ["step 0", "reward model 'g'", "returned a str", "prompt id 'ev0'"]),
    # -- study ----------------------------------------------------------------------------------------
    "study/train_prompts_not_utf8": (lambda c: c.study(prompts={"train": {"path": str(c.file("p.jsonl", LATIN1))},
                                                                "eval": {"path": str(c.tiny["prompts"])}}),
                                     ["prompt set", "not UTF-8"]),
    "study/eval_prompts_missing": (lambda c: c.study(prompts={"train": {"path": str(c.tiny["prompts"])},
                                                              "eval": {"path": str(c.tmp / "none.jsonl")}}),
                                   ["eval_prompts", "not found", "none.jsonl"]),
    "study/preferences_all_the_same": (lambda c: c.study(preferences={"path": str(c.jsonl("q.jsonl", [
        {"prompt": "w1", "chosen": "w2", "rejected": "w2"}]))}), ["same text as chosen and rejected"]),
    "study/train_block_trl_args": (lambda c: c.study(train={"steps": 2, "eval_every": 1, "trl_args": {"seed": "x"}}),
                                   ["trl_args.seed"]),
    "study/train_block_report_to": (lambda c: c.study(train={"steps": 2, "eval_every": 1, "report_to": ["nope"]}),
                                    ["report_to", "unknown logger"]),
    "study/jobs_too_many": (lambda c: c.study(jobs=10**30), ["jobs", "less than or equal to 1024"]),
    "study/seed_too_large": (lambda c: c.study(seeds=[2**33]), ["seed", "4294967295"]),
    "study/policy_is_a_file": (lambda c: c.study(policies=[{"name": "alpha", "path": str(c.tiny["prompts"])}]),
                               ["policy path", "is a file"]),
    # -- toy build, theory, demo, the command line ----------------------------------------------------
    "toy/seed_not_an_int": (lambda c: ["toy", "build", "--out", c.out, "--seed", "1e3"], ["invalid int value"]),
    "toy/seed_negative": (lambda c: ["toy", "build", "--out", c.out, "--seed", "-1"], ["--seed", ">= 0"]),
    "toy/unknown_preset": (lambda c: ["toy", "build", "--out", c.out, "--preset", "huge"], ["unknown --preset 'huge'"]),
    "toy/out_under_a_file": (lambda c: ["toy", "build", "--out", c.out.parent / "f.txt" / "w", "--preset", "tiny"],
                             ["f.txt is a file"]),
    "theory/unknown_experiment": (lambda c: ["theory", "--out", c.out, "--experiment", "varience"],
                                  ["unknown --experiment 'varience'", "variance"]),
    "theory/seed_negative": (lambda c: ["theory", "--out", c.out, "--seed", "-3"], ["--seed must be >= 0"]),
    "theory/out_is_a_file": (lambda c: ["theory", "--out", c.out.parent / "f.txt"], ["is a file, not a folder"]),
    "demo/seed_negative": (lambda c: ["demo", "--out", c.out, "--seed", "-1"], ["--seed must be between 0 and"]),
    "demo/seed_too_large": (lambda c: ["demo", "--out", c.out, "--seed", str(2**40)], ["--seed must be between"]),
    "demo/no_seeds": (lambda c: ["demo", "--out", c.out, "--quick", "--seeds", "0"], ["--seeds must be between 1 and"]),
    "demo/out_is_a_file": (lambda c: ["demo", "--out", c.out.parent / "f.txt", "--quick"], ["is a file, not a folder"]),
    "cli/unknown_demo_flag": (lambda c: ["demo", "--out", c.out, "--fast"], ["unrecognized arguments: --fast"]),
    "cli/no_command": (lambda c: [], ["required: COMMAND"]),
    "cli/unknown_command": (lambda c: ["evalute"], ["invalid choice: 'evalute'"]),
}


@pytest.fixture(scope="module")
def bad(tiny, tmp_path_factory) -> dict[str, Path]:
    """Model folders that do not load: no tokenizer, corrupt weights, a config that disagrees with the weights,
    an RM whose checkpoint has no head; and a module that fails when imported."""
    root = tmp_path_factory.mktemp("bad_models")

    def copy(name: str, src: str) -> Path:
        shutil.copytree(tiny[src], root / name)
        return root / name

    def edit_config(folder: Path, **changes: Any) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**cfg, **changes}))

    folders = {name: copy(name, src) for name, src in (("no_tokenizer", "policy_gpt2"), ("corrupt", "policy_gpt2"),
                                                       ("vocab", "policy_gpt2"), ("headless_rm", "policy_llama"))}
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (folders["no_tokenizer"] / f).unlink()
    (folders["corrupt"] / "model.safetensors").write_bytes(b"corrupt" * 10)
    edit_config(folders["vocab"], vocab_size=99)
    edit_config(folders["headless_rm"], architectures=["LlamaForSequenceClassification"], id2label={"0": "LABEL_0"},
                label2id={"LABEL_0": 0})
    (root / "modules").mkdir()
    (root / "modules" / "broken_module.py").write_text("x = 1 / 0\n")
    folders["modules"] = root / "modules"
    return folders


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def check_bad(code: int, err: str, command: str, words: list[str]) -> str:
    """Exit 2, no traceback, the last line of stderr the one error line, holding every key word."""
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    errors = [ln for ln in err.splitlines() if ": error: " in ln and ln.startswith("rmteach")]
    assert errors == [last] and last.startswith(f"rmteach{' ' + command if command else ''}"), err
    for w in words:
        assert w in last, (w, last)
    return last


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, tiny, world, bad, tmp_path, capsys, monkeypatch,
                                                           shared_sample_cache):
    build, words = CASES[case]
    monkeypatch.syspath_prepend(str(bad["modules"]))
    outs = tmp_path / "outs"
    outs.mkdir()
    (outs / "f.txt").write_text("a file where a folder is expected")
    ctx = Ctx(tiny, world, bad, tmp_path, outs / "run", monkeypatch)
    argv = build(ctx)
    before = listing(outs)
    code, _, err = run_cli(argv, capsys)
    check_bad(code, err, case.split("/")[0] if case.split("/")[0] != "cli" else "", words)
    assert listing(outs) == before


def test_a_folder_holding_another_run_is_left_alone(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    ctx = Ctx(tiny, tmp_path, {}, tmp_path, out, None)
    for argv, command in ((ctx.evaluate(), "evaluate"), (ctx.study(), "study"),
                          (["toy", "build", "--out", out, "--preset", "tiny"], "toy")):
        code, _, err = run_cli(argv, capsys)
        check_bad(code, err, command, ["already holds a different", "--overwrite"])
        assert listing(out) == ["notes.txt"]


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root reads a chmod 000 file; the 'unreadable' case monkeypatches the read instead")
def test_a_chmod_000_prompt_set_is_named(tiny, tmp_path, capsys):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "w1"}\n')
    p.chmod(0)
    try:
        code, _, err = run_cli(Ctx(tiny, tmp_path, {}, tmp_path, tmp_path / "o", None).evaluate(
            prompts={"path": str(p)}), capsys)
    finally:
        p.chmod(0o644)
    check_bad(code, err, "evaluate", ["permission denied"])


def test_debug_shows_the_user_callables_own_traceback(tiny, tmp_path, capsys, monkeypatch):
    ctx = Ctx(tiny, tmp_path, {}, tmp_path, tmp_path / "o", None)
    argv = ctx.evaluate(reward_models=[{"name": "j", "callable": "rm_fns:raises"}], preferences=None)
    code, _, err = run_cli(["--debug", *argv], capsys)
    assert code == 2 and "Traceback" in err and 'raise ValueError("the judge is down")' in err
    assert err.strip().splitlines()[-1].startswith("rmteach evaluate: error: reward model 'j'")
    monkeypatch.setenv("RMTEACH_DEBUG", "1")
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "rm_fns.py" in err and "Traceback" in err
    monkeypatch.setenv("RMTEACH_DEBUG", "0")
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "Traceback" not in err


def test_version(capsys):
    from rmteach import __version__

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"rmteach {__version__}"


def test_a_new_head_is_refused_unless_allowed_and_then_seeded(tiny):
    import numpy as np

    from rmteach.backends.rewards import load_reward_model
    from rmteach.core.blocks import RewardModelConfig
    from rmteach.core.errors import UserError

    with pytest.raises(UserError, match="not a sequence classifier"):
        load_reward_model(RewardModelConfig(name="p", path=str(tiny["policy_llama"])))
    cfg = RewardModelConfig(name="p", path=str(tiny["policy_llama"]), allow_new_head=True)
    scores = []
    for _ in range(2):
        rm = load_reward_model(cfg)
        scores.append(rm.score(["w1", "w2"], ["w3 w4", "w5"]))
        rm.close()
    assert np.isfinite(scores[0]).all() and np.array_equal(scores[0], scores[1])  # the same head every time


def test_a_reward_function_failing_in_a_later_step_keeps_the_failed_run(world, tmp_path, capsys):
    """Stopping after the first step is not bad input found early: run.json records it, for --resume."""
    from train_world import NAN

    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(world, steps=3, eval_every=None, reward_model={
        "name": "flaky", "callable": "train_world:nan_gold"})))
    NAN.update(from_call=4, calls=0)  # normalization 1, step-0 eval 2, step 1 is 3, step 2 is 4
    try:
        code, _, err = run_cli(["train", "-c", cfg, "-o", tmp_path / "run"], capsys)
    finally:
        NAN.update(from_call=None)
    check_bad(code, err, "train", ["step 2", "returned nan", "no checkpoint was saved"])
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_a_reward_function_failing_in_the_first_step_leaves_nothing(world, tmp_path, capsys):
    """Found while training step 1 (after the normalization and the step-0 evaluation): --out as it was."""
    from train_world import NAN

    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(world, steps=3, eval_every=None, report_to=["tensorboard"],
                                              reward_model={"name": "flaky", "callable": "train_world:nan_gold"})))
    NAN.update(from_call=3, calls=0)  # normalization 1, step-0 eval 2, step 1 is 3
    try:
        code, _, err = run_cli(["train", "-c", cfg, "-o", tmp_path / "run"], capsys)
    finally:
        NAN.update(from_call=None)
    last = check_bad(code, err, "train", ["step 1", "reward model 'flaky' returned nan"])
    assert "checkpoint" not in last and not (tmp_path / "run").exists()
