"""Data formats of prompt and preference sets: every source, column mapping, conversations, extra columns.

No test touches the network: the hub is switched to offline mode, and `hub:` sets are local copies of a hub
dataset repo (README configs + parquet files, as `hf download --local-dir` leaves them), read by the real
`datasets.load_dataset`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import run_cli, write_eval_config

from rmteach.core.blocks import DataConfig
from rmteach.core.chat import transcript
from rmteach.core.data import extras_of, hash_prompts, load_preferences, load_prompts
from rmteach.core.errors import UserError


def _u(text):
    return {"role": "user", "content": text}


def _a(text):
    return {"role": "assistant", "content": text}


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """No network, and `datasets`' cache of prepared sets under the test's folder."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# Reward functions with TRL's signature, imported by the runs as `test_data_formats:NAME`.


def reference_gold(prompts, completions, reference, **kwargs):
    """A checkable ground truth: how often the reference word occurs, + 0.5 for a conversation prompt."""
    return [c.split().count(r) + (0.5 if isinstance(p, list) else 0.0) for p, c, r in zip(prompts, completions,
                                                                                          reference)]


def world_reference_gold(prompts, completions, reference, **kwargs):
    """The train world's ground truth (1 + the share of target words), the target read from `reference`."""
    return [1.0 + (sum(w == r for w in c.split()) / len(c.split()) if c.split() else 0.0)
            for c, r in zip(completions, reference)]


# ----------------------------------------------------------------------------------------------------------
# Sources


ROWS = [{"id": "a", "prompt": "w1 w2", "reference": "w3"}, {"id": "b", "prompt": "w4", "reference": "w5"}]


def _source(kind: str, root: Path, rows) -> dict:
    """DataConfig fields of `rows` written as `kind`."""
    if kind == "jsonl":
        return {"path": str(_jsonl(root / "p.jsonl", rows))}
    if kind == "jsonl_data_files":
        return {"data_files": [str(_jsonl(root / "p.jsonl", rows))]}
    if kind == "json_array":
        (root / "p.json").write_text(json.dumps(rows), encoding="utf-8")
        return {"path": str(root / "p.json")}
    if kind == "parquet":
        pd.DataFrame(rows).to_parquet(root / "p.parquet")
        return {"path": str(root / "p.parquet")}
    if kind == "csv":
        pd.DataFrame(rows).to_csv(root / "p.csv", index=False)
        return {"path": str(root / "p.csv")}
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(root / "ds"))
    return {"path": str(root / "ds")}


@pytest.mark.parametrize("kind", ["jsonl", "jsonl_data_files", "json_array", "parquet", "csv", "save_to_disk"])
def test_every_source_gives_the_same_prompts(tmp_path, kind):
    prompts = load_prompts(DataConfig(**_source(kind, tmp_path, ROWS)))
    assert [(p.id, p.text, p.chat, dict(p.extra)) for p in prompts] == [
        ("a", "w1 w2", None, {"reference": "w3"}), ("b", "w4", None, {"reference": "w5"})]
    assert len(load_prompts(DataConfig(**_source(kind, tmp_path, ROWS), limit=1))) == 1


def test_data_files_by_split_and_their_errors(tmp_path):
    files = {"train": str(_jsonl(tmp_path / "a.jsonl", ROWS)), "test": str(_jsonl(tmp_path / "b.jsonl", ROWS[:1]))}
    assert [p.id for p in load_prompts(DataConfig(data_files=files, split="test"))] == ["a"]
    with pytest.raises(UserError, match=r"has splits \['test', 'train'\]: set 'split'"):
        load_prompts(DataConfig(data_files=files))
    with pytest.raises(UserError, match="prompt set not found: .*none.parquet"):
        load_prompts(DataConfig(data_files=str(tmp_path / "none.parquet")))
    with pytest.raises(UserError, match=r"must all be .json/.jsonl, .parquet or .csv \(got .*x.txt\)"):
        load_prompts(DataConfig(data_files=str(tmp_path / "x.txt")))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserError, match="bad.parquet: could not read it"):
        load_prompts(DataConfig(path=str(tmp_path / "bad.parquet")))
    with pytest.raises(UserError, match="'split' is for .* this is one file"):
        load_prompts(DataConfig(path=files["train"], split="train"))


def test_one_source_and_hub_options_only_with_hub(tmp_path):
    from pydantic import ValidationError

    for bad in ({}, {"path": "a.jsonl", "hub": "x/y"}, {"path": "a.jsonl", "data_files": "b.jsonl"}):
        with pytest.raises(ValidationError, match="exactly one of 'path' or 'hub' or 'data_files'"):
            DataConfig(**bad)
    with pytest.raises(ValidationError, match="'subset' and 'revision' are options of a 'hub'"):
        DataConfig(path="a.jsonl", subset="x")
    assert DataConfig(hub="x/y", data_files="data/*.parquet").where == "hub x/y"


def test_relative_data_files_and_hub_folders_resolve_against_the_config(tmp_path):
    from rmteach.core.config import load_config
    from rmteach.evaluate.config import EvaluateConfig

    cfg = {"policy": {"path": "policy"}, "reward_models": [{"name": "g", "callable": "rm_fns:gold"}]}
    cfg["prompts"] = {"data_files": ["d/p.jsonl"]}
    cfg["preferences"] = {"hub": "./repo", "split": "test_prefs"}
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(cfg))
    loaded = load_config(EvaluateConfig, tmp_path / "e.yaml")
    assert loaded.prompts.data_files == [str(tmp_path / "d" / "p.jsonl")]
    assert loaded.preferences.hub == str(tmp_path / "repo")
    cfg["preferences"] = {"hub": "HuggingFaceH4/ultrafeedback_binarized", "data_files": "data/test*"}
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(cfg))
    loaded = load_config(EvaluateConfig, tmp_path / "e.yaml")
    assert (loaded.preferences.hub, loaded.preferences.data_files) == (cfg["preferences"]["hub"], "data/test*")


# ----------------------------------------------------------------------------------------------------------
# Hub datasets (a local copy of an UltraFeedback-schema repo) and column mapping


def _uf_row(i: int) -> dict:
    q = f"w{i} w{i + 1}"
    return {"prompt": q, "prompt_id": f"h{i}", "chosen": [_u(q), _a(f"w1 w{i}")], "rejected": [_u(q), _a(f"w{i} w5")],
            "messages": [_u(q), _a(f"w1 w{i}")], "score_chosen": 8.0, "score_rejected": 3.5}


def ultrafeedback_repo(root: Path, n: int = 6) -> Path:
    """A local copy of a repo laid out as HuggingFaceH4/ultrafeedback_binarized (splits from README configs)."""
    (root / "data").mkdir(parents=True)
    for split, rows in (("train_prefs", range(n)), ("test_prefs", range(n, 2 * n))):
        pd.DataFrame([_uf_row(i % 10) for i in rows]).to_parquet(root / "data" / f"{split}-00000-of-00001.parquet")
    (root / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train_prefs\n"
                                    "    path: data/train_prefs-*\n  - split: test_prefs\n    path: data/test_prefs-*\n"
                                    "---\n# UltraFeedback, binarized (test copy)\n", encoding="utf-8")
    return root


def test_ultrafeedback_schema_from_a_hub_copy(tmp_path):
    repo = str(ultrafeedback_repo(tmp_path / "uf"))
    prompts = load_prompts(DataConfig(hub=repo, split="test_prefs", limit=4))
    assert [p.text for p in prompts] == [_uf_row(i)["prompt"] for i in range(6, 10)]
    assert all(p.chat is None for p in prompts)
    assert set(prompts[0].extra) == {"prompt_id", "chosen", "rejected", "messages", "score_chosen", "score_rejected"}
    pairs = load_preferences(DataConfig(hub=repo, split="train_prefs", columns={"id": "prompt_id"}))
    p = pairs[2]
    assert (p.id, p.prompt, p.chosen, p.rejected, p.chat) == ("h2", "w2 w3", "w1 w2", "w2 w5", None)
    assert p.input == "w2 w3" and p.extra["score_chosen"] == 8.0 and "prompt_id" not in p.extra
    with pytest.raises(UserError, match=r"has splits \['test_prefs', 'train_prefs'\]: set 'split'"):
        load_prompts(DataConfig(hub=repo))
    with pytest.raises(UserError, match="has no split 'test' \\(has: test_prefs, train_prefs\\)"):
        load_prompts(DataConfig(hub=repo, split="test"))


def test_a_hub_id_without_network_is_one_line(tmp_path):
    with pytest.raises(UserError) as e:
        load_prompts(DataConfig(hub="rmteach-tests/no-such-set", split="train"))
    msg = str(e.value)
    assert "no network / dataset not in the local cache" in msg and "HF_DATASETS_OFFLINE" in msg
    assert "hf download --repo-type dataset rmteach-tests/no-such-set" in msg and "\n" not in msg


def test_column_mapping(tmp_path):
    rows = [{"uid": 10, "instruction": "w1", "good": "w2", "bad": "w3", "prompt": "ignored", "note": "n"}]
    p = _jsonl(tmp_path / "q.jsonl", rows)
    (pair,) = load_preferences(DataConfig(path=str(p), columns={"prompt": "instruction", "chosen": "good",
                                                                "rejected": "bad", "id": "uid"}))
    assert (pair.id, pair.prompt, pair.chosen, pair.rejected, dict(pair.extra)) == ("10", "w1", "w2", "w3",
                                                                                   {"note": "n"})
    (prompt,) = load_prompts(DataConfig(path=str(p), columns={"prompt": "instruction"}))
    assert prompt.text == "w1" and set(prompt.extra) == {"uid", "good", "bad", "note"}
    with pytest.raises(UserError, match="row 0 has no 'question' column"):
        load_prompts(DataConfig(path=str(p), columns={"prompt": "question"}))


# ----------------------------------------------------------------------------------------------------------
# Conversations


def test_multi_turn_context_before_the_last_assistant_turn(tmp_path):
    ctx = [{"role": "system", "content": "Be brief."}, _u("w1"), _a("w2"), _u("w3")]
    rows = [{"chosen": ctx + [_a("w4 w1")], "rejected": ctx + [_a("w5")]}]  # HH-style: no prompt column
    (pair,) = load_preferences(DataConfig(path=str(_jsonl(tmp_path / "q.jsonl", rows))))
    assert (pair.chosen, pair.rejected, list(pair.chat), pair.input) == ("w4 w1", "w5", ctx, ctx)
    assert pair.prompt == transcript(ctx) == "System: Be brief.\n\nUser: w1\n\nAssistant: w2\n\nUser: w3"
    # As a prompt set (`prompt: chosen`), the final assistant turn is the set's response and is left out.
    (p,) = load_prompts(DataConfig(path=str(tmp_path / "q.jsonl"), columns={"prompt": "chosen"}))
    assert (p.text, list(p.chat), set(p.extra)) == (pair.prompt, ctx, {"rejected"})
    # TRL's explicit form: a conversation prompt, chosen and rejected only the assistant's turn.
    rows = [{"prompt": ctx, "chosen": [_a("w4")], "rejected": [_a("w5")]}]
    (pair,) = load_preferences(DataConfig(path=str(_jsonl(tmp_path / "r.jsonl", rows))))
    assert (pair.input, pair.chosen) == (ctx, "w4")


def test_one_user_turn_is_the_same_prompt_as_its_text(tmp_path):
    from rmteach.backends.rewards import scaled_prompt_mask
    from rmteach.core.blocks import ScaleTransform

    plain = load_prompts(DataConfig(path=str(_jsonl(tmp_path / "a.jsonl", [{"prompt": f"w{i}"} for i in range(20)]))))
    conv = load_prompts(DataConfig(path=str(_jsonl(tmp_path / "b.jsonl", [{"prompt": [_u(f"w{i}")]}
                                                                          for i in range(20)]))))
    assert plain == conv and hash_prompts(plain) == hash_prompts(conv)
    t = ScaleTransform(fraction=0.5, seed=1)
    multi = [[{"role": "system", "content": "s"}, _u(f"w{i}")] for i in range(20)]
    assert scaled_prompt_mask([[_u(f"w{i}")] for i in range(20)], t).tolist() == scaled_prompt_mask(
        [p.input for p in plain], t).tolist()
    assert scaled_prompt_mask(multi, t).tolist() == scaled_prompt_mask([transcript(m) for m in multi], t).tolist()


def test_format_prompt_renders_a_conversation(tiny):
    from transformers import AutoTokenizer

    from rmteach.core.chat import format_prompt

    tok = AutoTokenizer.from_pretrained(tiny["policy_gpt2"])
    ctx = [_u("w1"), _a("w2"), _u("w3")]
    assert format_prompt(tok, ctx) == tok.apply_chat_template(ctx, tokenize=False, add_generation_prompt=True)
    assert format_prompt(tok, [_u("w1")]) == format_prompt(tok, "w1")
    tok.chat_template = None
    assert format_prompt(tok, ctx) == "User: w1\n\nAssistant: w2\n\nUser: w3\n\nAssistant:"
    assert format_prompt(tok, [_u("w1 w2")]) == "w1 w2"


@pytest.mark.parametrize("row, message", [
    ({"prompt": "w1", "chosen": [_u("w1"), _a("w2")], "rejected": [_a("w3"), _u("w1")]},
     "row 0: 'rejected' is a conversation, but its last message is a 'user' turn"),
    ({"prompt": "w1", "chosen": [_u("w9"), _a("w2")], "rejected": "w3"},
     "row 0: the turns before the response in 'chosen' differ from 'prompt' \\(from message 0 on\\)"),
    ({"chosen": [_u("w1"), _a("w2")], "rejected": [_u("w1"), _a("w3"), _u("w4"), _a("w5")]},
     "the turns before the response in 'rejected' differ from 'chosen' \\(from message 1 on\\)"),
    ({"chosen": "w2", "rejected": "w3"}, "row 0 has no 'prompt' column, and 'chosen' is no conversation"),
    ({"prompt": [{"role": "user"}], "chosen": "a", "rejected": "b"}, "'prompt' message 0 \\(user\\): 'content' must"),
    ({"prompt": [_a("w1")], "chosen": "a", "rejected": "b"}, "'prompt' holds only a response"),
])
def test_bad_conversations(tmp_path, row, message):
    with pytest.raises(UserError, match=message):
        load_preferences(DataConfig(path=str(_jsonl(tmp_path / "q.jsonl", [row]))))


def test_whitespace_around_a_turn_does_not_count(tmp_path):
    rows = [{"prompt": "w1 ", "chosen": [_u("w1"), _a("w2")], "rejected": [_u(" w1"), _a("w3")]}]
    (pair,) = load_preferences(DataConfig(path=str(_jsonl(tmp_path / "q.jsonl", rows))))
    assert (pair.prompt, pair.chat) == ("w1 ", None)


# ----------------------------------------------------------------------------------------------------------
# Through the commands


def _report(out: Path) -> dict:
    return {k: v for k, v in json.loads((out / "report.json").read_text()).items() if k != "config"}


@pytest.mark.slow
def test_conversation_rows_give_the_report_of_plain_rows(tiny, tmp_path, capsys):
    prompts = [json.loads(line) for line in tiny["prompts"].read_text().splitlines()]
    prefs = [json.loads(line) for line in tiny["prefs"].read_text().splitlines()]
    conv_prompts = [{"id": r["id"], "prompt": [_u(r["prompt"])]} for r in prompts]
    conv_prefs = [{"prompt": r["prompt"], "chosen": [_u(r["prompt"]), _a(r["chosen"])],
                   "rejected": [_u(r["prompt"]), _a(r["rejected"])]} for r in prefs]
    pd.DataFrame(conv_prefs).to_parquet(tmp_path / "prefs.parquet")
    outs = []
    for name, p, q in (("plain", {"path": str(tiny["prompts"])}, {"path": str(tiny["prefs"])}),
                       ("conv", {"path": str(_jsonl(tmp_path / "p.jsonl", conv_prompts))},
                        {"data_files": str(tmp_path / "prefs.parquet")})):
        cfg = write_eval_config(tmp_path / f"{name}.yaml", tiny, prompts=p, preferences=q,
                                cache_dir=str(tmp_path / f"cache_{name}"))  # each samples anew
        code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / name], capsys)
        assert code == 0, err
        outs.append(tmp_path / name)
    assert _report(outs[0]) == _report(outs[1])
    a, b = (pd.read_parquet(o / "rewards.parquet") for o in outs)
    pd.testing.assert_frame_equal(a, b)


def test_extra_columns_reach_a_callable_ground_truth_in_evaluate(tiny, tmp_path, capsys):
    ctx = [_u("w7"), _a("w8"), _u("w9")]
    rows = [{"id": f"p{i}", "prompt": ctx if i % 2 else f"w{i} w{i + 1}", "reference": f"w{i + 1}"} for i in range(6)]
    prefs = [{"prompt": f"w{i}", "chosen": f"w{i} w{i}", "rejected": "w0", "reference": f"w{i}"} for i in range(1, 4)]
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, prompts={"path": str(_jsonl(tmp_path / "p.jsonl", rows))},
                            preferences={"path": str(_jsonl(tmp_path / "q.jsonl", prefs))},
                            ground_truth={"name": "ref", "callable": "test_data_formats:reference_gold"})
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "out"], capsys)
    assert code == 0, err
    df = pd.read_parquet(tmp_path / "out" / "rewards.parquet")
    got = df[df.reward_model == "ref"]
    ref = {r["id"]: (r["reference"], isinstance(r["prompt"], list)) for r in rows}
    want = [r.split().count(ref[i][0]) + 0.5 * ref[i][1] for i, r in zip(got.prompt_id, got.response)]
    assert got.reward.tolist() == pytest.approx(want)
    assert set(got[got.prompt_id == "p1"].prompt) == {transcript(ctx)}
    pref = pd.read_parquet(tmp_path / "out" / "preference_rewards.parquet")
    pref = pref[pref.reward_model == "ref"]
    assert pref.reward_chosen.tolist() == [2.0, 2.0, 2.0] and pref.reward_rejected.tolist() == [0.0, 0.0, 0.0]


def test_extra_columns_reach_the_ground_truth_in_train(world, tmp_path):
    from train_world import metrics, target_of, train

    for split in ("train", "eval"):
        rows = [json.loads(line) for line in (world / f"{split}.jsonl").read_text().splitlines()]
        _jsonl(tmp_path / f"{split}.jsonl", [{**r, "reference": target_of(r["prompt"])} for r in rows])
    common = dict(steps=2, eval_every=None, eval_samples_per_prompt=4)
    train(world, tmp_path / "plain", **common)
    train(world, tmp_path / "ref", **common, train_prompts={"path": str(tmp_path / "train.jsonl")},
          eval_prompts={"path": str(tmp_path / "eval.jsonl")},
          ground_truth={"name": "gold", "callable": "test_data_formats:world_reference_gold"})
    rows = metrics(tmp_path / "ref")
    assert rows == metrics(tmp_path / "plain") and len(rows) == 3
    assert None not in (rows[0]["eval_gold_reward"], rows[-1]["eval_gold_reward"], rows[1]["gold_reward"])


@pytest.mark.parametrize("name", ["evaluate_pythia1b", "train_llama32_1b"])
def test_the_paper_configs_read_ultrafeedback_from_the_hub(name):
    from rmteach.core.config import load_config
    from rmteach.evaluate.config import EvaluateConfig
    from rmteach.train.config import TrainConfig

    path = Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml"
    cfg = load_config(EvaluateConfig if name.startswith("evaluate") else TrainConfig, path)
    sets = [cfg.prompts, cfg.preferences] if name.startswith("evaluate") else [cfg.train_prompts, cfg.eval_prompts]
    assert {(s.hub, s.path) for s in sets} == {("HuggingFaceH4/ultrafeedback_binarized", None)}
    assert all(s.split in ("train_prefs", "test_prefs") and s.limit for s in sets)


def test_trl_reward_forwards_the_set_columns():
    from rmteach.train.rewards import TRLReward

    class Recorder:
        name = "rec"

        def score(self, prompts, completions, progress=None, *, extras=None):
            self.got = (prompts, completions, extras)
            return np.arange(len(prompts), dtype=np.float64)

    rm, ctx = Recorder(), [_u("w1"), _a("w2"), _u("w3")]
    r = TRLReward(rm, "gold")(prompts=["x", "y"], completions=[[_a("c1")], [_a("c2")]], rmteach_text=["t", "u"],
                              rmteach_chat=[None, ctx], rmteach_id=["0", "1"], reference=["r0", "r1"],
                              completion_ids=[[1], [2]], trainer_state=None, log_metric=None, log_extra=print)
    assert r == [0.0, 1.0]
    assert rm.got == (["t", ctx], ["c1", "c2"], {"reference": ["r0", "r1"]})
    TRLReward(rm, "gold")(prompts=[[_u("a")]], completions=["c"])  # a set built elsewhere: TRL's prompts as they are
    assert rm.got == ([[_u("a")]], ["c"], None)


def test_train_dataset_carries_the_extra_columns(tiny, tmp_path):
    from transformers import AutoTokenizer

    from rmteach.train.trainer import train_dataset

    ctx = [_u("w1"), _a("w2"), _u("w3")]
    prompts = load_prompts(DataConfig(path=str(_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "w4", "reference": "w5", "prompt_id": "x"}, {"prompt": ctx, "reference": "w6", "prompt_id": "y"}]))))
    assert extras_of(prompts) == {"reference": ["w5", "w6"], "prompt_id": ["x", "y"]}
    tok = AutoTokenizer.from_pretrained(tiny["policy_gpt2"])
    ds = train_dataset(tok, prompts)
    assert ds["prompt"] == [[_u("w4")], ctx] and ds["reference"] == ["w5", "w6"] and ds["prompt_id"] == ["x", "y"]
    assert ds["rmteach_chat"] == [None, ctx] and ds["rmteach_text"] == ["w4", transcript(ctx)]
    tok.chat_template = None
    assert train_dataset(tok, prompts)["prompt"] == ["w4", transcript(ctx) + "\n\nAssistant:"]


@pytest.mark.parametrize("prefs, words", [
    ([{"prompt": "w1", "chosen": [_u("w1"), _a("w2")], "rejected": [_u("w1"), _u("w3")]}],
     ["'rejected' is a conversation", "last message is a 'user' turn"]),
    ([{"prompt": "w1", "chosen": [_u("w2"), _a("w2")], "rejected": "w3"}], ["differ from 'prompt'"]),
])
def test_bad_conversation_rows_through_the_cli(tiny, tmp_path, capsys, prefs, words):
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, preferences={"path": str(_jsonl(tmp_path / "q.jsonl", prefs))})
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "out"], capsys)
    assert code == 2 and all(w in err for w in words) and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("source, words", [
    ({"hub": "rmteach-tests/no-such-set"}, ["no network / dataset not in the local cache", "HF_DATASETS_OFFLINE"]),
    ({"hub": "UF", "split": "dev"}, ["has no split 'dev'", "test_prefs, train_prefs"]),
    ({"data_files": "none.parquet"}, ["prompt set not found", "none.parquet"]),
    ({"path": "p.jsonl", "hub": "x/y"}, ["prompts", "exactly one of 'path' or 'hub'"]),
])
def test_bad_sources_through_the_cli(tiny, tmp_path, capsys, source, words):
    if source.get("hub") == "UF":
        source = {**source, "hub": str(ultrafeedback_repo(tmp_path / "uf"))}
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, prompts=source)
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "out"], capsys)
    assert code == 2 and all(w in err for w in words) and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1


def test_rm_train_reads_conversation_pairs_and_refuses_identical_ones(tmp_path):
    from rmteach.rm.data import read_set

    ctx = [_u("w1"), _a("w2"), _u("w3")]
    rows = [{"id": "a", "chosen": ctx + [_a("w4")], "rejected": ctx + [_a("w5")]},
            {"id": "b", "chosen": [_u("w6"), _a("w7")], "rejected": [_u("w6"), _a("w8")]}]
    got = read_set(DataConfig(path=str(_jsonl(tmp_path / "q.jsonl", rows))), "mix entry 'hh'")
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in got] == [(ctx, "w4", "w5"), ("w6", "w7", "w8")]
    rows[1]["rejected"] = rows[1]["chosen"]
    with pytest.raises(UserError, match=r"1 pairs have the same text as chosen and rejected \(first: id 'b'\)"):
        read_set(DataConfig(path=str(_jsonl(tmp_path / "q.jsonl", rows))), "mix entry 'hh'")
