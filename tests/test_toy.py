"""The toy world: ground truth and transform by hand, the writer, the build (tiny preset), its quality bar."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmteach.cli import main
from rmteach.core.blocks import RewardModelConfig, ScaleTransform
from rmteach.core.config import load_config
from rmteach.evaluate.config import EvaluateConfig
from rmteach.core.errors import UserError
from rmteach.toy import task
from rmteach.toy.config import PRESETS, resolve_config
from rmteach.toy.pairs import label, mix
from rmteach.toy.parts import Part, derive_seed

# ----------------------------------------------------------------------------------------------------------
# Ground truth, by hand


@pytest.mark.parametrize(
    "prompt, completion, expected",
    [
        ("list cat dog", "cat dog", 1.0),  # perfect
        ("list cat dog", "gato perro", 1.0),  # perfect in Spanish
        ("list cat dog frog", "cat perro frog", 1.0),  # mixed languages are fine
        ("list cat dog", "", 0.5),  # silence: q = 0
        ("list cat dog", "dog cat", 0.5),  # both off their slots: q = 0
        ("list cat dog", "cat", 0.75),  # q = 1/2
        ("list cat dog frog", "cat frog", (1 + 1 / 3) / 2),  # dog skipped, frog off its slot: q = 1/3
        ("list cat dog", "cat the dog", (1 + 0.5 - 0.2) / 2),  # filler takes a slot and adds a word
        ("list cat dog", "cat dog dog dog", (1 + 1.0 - 0.4) / 2),  # two extra words
        ("list cat dog", "cow pig", 0.5),  # unasked animals: no hit, no extra word
        ("list cat dog", " ".join(["the"] * 12), 0.0),  # q = -2, clipped at -1
        ("list cat dog", "cat dog <eos> the the", 1.0),  # an undecoded EOS ends the answer
        ("hello there", "cat", 0.5),  # a prompt naming no animal
        ("User: list cat dog Assistant:", "cat dog", 1.0),  # chat-formatted prompt parses the same
    ],
)
def test_ground_truth_by_hand(prompt, completion, expected):
    assert task.ground_truth([prompt], [completion]) == [pytest.approx(expected, abs=1e-12)]


def test_ground_truth_depends_on_the_prompt_and_takes_trl_arguments():
    got = task.ground_truth(
        prompts=["list cat dog", "list dog cat", [{"role": "user", "content": "list dog cat"}]],
        completions=["cat dog", "cat dog", [{"role": "assistant", "content": "dog cat"}]],
        completion_ids=[[1], [2], [3]],  # TRL passes extra columns; they are ignored
    )
    assert got == [1.0, 0.5, 1.0]
    assert all(isinstance(x, float) for x in got)


def _second_formula(prompt: str, completion: str) -> float:
    """r_G written another way: slot hits via an explicit translation table, extra words by subtraction."""
    english = {e: e for e, _ in task.ITEMS} | {s: e for e, s in task.ITEMS}
    wanted = []
    for w in prompt.split():
        if w in dict(task.ITEMS) and w not in wanted:
            wanted.append(w)
    words = completion.split()
    hits = sum(1 for slot, w in zip(wanted, words) if english.get(w) == slot)
    q = hits / len(wanted) - 0.2 * (len(words) - min(len(words), len(wanted)))
    return (1 + max(q, -1)) / 2


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(st.sampled_from(task.ENGLISH), min_size=2, max_size=4, unique=True),
    words=st.lists(st.sampled_from(task.WORDS[1:]), max_size=12),
)
def test_ground_truth_matches_a_second_formula_and_range(items, words):
    prompt, completion = "list " + " ".join(items), " ".join(words)
    r = task.score(prompt, completion)
    assert r == pytest.approx(_second_formula(prompt, completion), abs=1e-12)
    assert 0.0 <= r <= 1.0


def test_perfect_writer_and_spanish_writer():
    rng = np.random.default_rng(0)
    prompts = task.sample_prompts(50, rng)
    perfect = task.Style(spanish=0.0, keep=1.0, shuffle=0.0, junk=0.0)
    assert [task.score(p, task.write_response(p, perfect, rng)) for p in prompts] == [1.0] * 50
    spanish = task.Style(spanish=1.0, keep=0.7, shuffle=0.5, junk=2.0, wrong_item=0.5, repeat=0.3)
    for p in prompts:
        words = task.write_response(p, spanish, rng).split()
        assert len(words) <= task.MAX_RESPONSE_WORDS
        assert not set(words) & set(task.ENGLISH)  # a Spanish writer never uses an English animal


def test_sample_prompts_distinct_and_excluded():
    rng = np.random.default_rng(1)
    first = task.sample_prompts(200, rng)
    second = task.sample_prompts(200, rng, exclude=set(first))
    assert len(set(first)) == 200 and not set(first) & set(second)
    for p in first:
        words = p.split()
        assert words[0] == "list" and 2 <= len(words) - 1 <= 4 and len(set(words)) == len(words)


def test_label_is_the_ground_truth_argmax_and_drops_ties():
    row = label("list cat dog", "cat", "cat dog")
    assert (row["chosen"], row["rejected"]) == ("cat dog", "cat")
    assert (row["chosen_reward"], row["rejected_reward"]) == (1.0, 0.75)
    assert label("list cat dog", "dog cat", "") is None  # both 0.5
    rows = mix([{"id": f"on{i}"} for i in range(4)], [{"id": f"off{i}"} for i in range(4)], 0.75, 4)
    assert [r["id"] for r in rows] == ["on0", "on1", "on2", "off0"]


# ----------------------------------------------------------------------------------------------------------
# The low-variance transform on the toy ground truth, by hand


def test_low_variance_transform_by_hand():
    from rmteach.backends.rewards import load_reward_model

    t = ScaleTransform(fraction=0.5, factor=0.001, seed=7)
    rm = load_reward_model(
        RewardModelConfig(name="gt_lowvar", callable="rmteach.toy.task:ground_truth", transform=t)
    )
    prompts = task.sample_prompts(400, np.random.default_rng(2))
    completions = [" ".join(p.split()[1:]) for p in prompts]  # perfect answers: r_G = 1
    got = rm.score(prompts, completions)
    # Every perfect answer scores 1 or 0.001, the same for a prompt wherever it is scored.
    scaled = [x == 0.001 for x in got.tolist()]
    assert all(x in (0.001, 1.0) for x in got.tolist())
    assert rm.score(prompts[::-1], completions[::-1]).tolist() == got.tolist()[::-1]
    assert 160 <= sum(scaled) <= 240  # Binomial(400, 0.5) within 4 sd
    # Per-prompt order is kept (accuracy 1) while the scaled prompts' gaps shrink 1000x: naming only the
    # first of k animals scores (1 + 1/k) / 2, so the gap to the perfect answer is (1 - 1/k) / 2.
    worse = [p.split()[1] for p in prompts]
    gap = rm.score(prompts, completions) - rm.score(prompts, worse)
    k = np.array([len(p.split()) - 1 for p in prompts])
    assert np.allclose(gap, np.where(scaled, 0.001, 1.0) * (1 - 1 / k) / 2, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["toy", "build", *args])
    return code, capsys.readouterr().err.strip()


def test_bad_seed_preset_and_out(tmp_path, capsys):
    code, err = _cli(capsys, "--out", str(tmp_path / "w"), "--seed", "-1")
    assert code == 2 and err == "rmteach toy: error: --seed must be an integer >= 0 (got -1)"
    code, err = _cli(capsys, "--out", str(tmp_path / "w"), "--preset", "huge")
    assert code == 2 and err == "rmteach toy: error: unknown --preset 'huge' (allowed: default, tiny)"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, err = _cli(capsys, "--out", str(other), "--preset", "tiny")
    assert code == 2 and "already holds a different toy build run" in err and "\n" not in err
    (tmp_path / "file").write_text("x")
    code, err = _cli(capsys, "--out", str(tmp_path / "file"), "--preset", "tiny")
    assert code == 2 and "is a file" in err
    assert (other / "notes.txt").read_text() == "mine" and sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    (other / "data").mkdir()  # even --overwrite never wipes a folder the build did not write
    code, err = _cli(capsys, "--out", str(other), "--preset", "tiny", "--overwrite")
    assert code == 2 and err.endswith("is not an rmteach output (it holds data); choose another folder")
    assert sorted(p.name for p in other.iterdir()) == ["data", "notes.txt"]


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"zoo": {"pairs": 0}}, "zoo.pairs"),
        ({"zoo": {"mixes": [1.0, 1.5]}}, "mixes must be distinct on-policy shares in [0, 1]"),
        ({"zoo": {"mixes": [0.331, 0.332]}}, "distinct whole percents"),
        ({"zoo": {"pairs": 6000}}, "must be at most 8000 distinct prompts (got 9129)"),
        ({"prompts": {"eval": -3}}, "prompts.eval"),
        ({"off_policy": {"wrong_item": 0.8, "repeat": 0.5}}, "wrong_item + repeat must be <= 1"),
        ({"zoo": {"pair": 10}}, "unknown key 'zoo.pair'"),
    ],
)
def test_bad_sizes_are_one_line_user_errors(overrides, needle):
    with pytest.raises(UserError) as e:
        resolve_config("tiny", overrides)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_presets_validate_and_parts_keys():
    for name in PRESETS:
        cfg = resolve_config(name)
        assert cfg.preset == name and len(cfg.policies) >= 2 and cfg.zoo.mixes == [1.0, 0.75, 0.5, 0.25, 0.0]
    a = Part.at(Path("/x"), "p", {"a": 1})
    assert a.key == Part.at(Path("/y"), "p", {"a": 1}).key != Part.at(Path("/x"), "p", {"a": 2}).key
    assert len({derive_seed(s, n) for s in range(3) for n in ("a", "b")}) == 6


# ----------------------------------------------------------------------------------------------------------
# The tiny world


@pytest.fixture(scope="module")
def world(toy_world) -> tuple[Path, dict]:
    """The tiny preset, built once per test run (conftest's `toy_world`)."""
    return toy_world


def _evaluate(root: Path, config: str, cache: Path):
    cfg = load_config(EvaluateConfig, root / config, [f"cache_dir={cache}"])
    from rmteach.evaluate.run import evaluate

    report, data = evaluate(cfg)
    return {rm["name"]: rm for rm in report["reward_models"]}, data


@pytest.fixture(scope="module")
def reports(world, tmp_path_factory):
    root, manifest = world
    cache = tmp_path_factory.mktemp("cache")
    return {name: _evaluate(root, cfg, cache) for name, cfg in manifest["configs"]["evaluate_per_policy"].items()}


def test_manifest_names_every_part_with_relative_paths(world):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from rmteach.core.data import load_preferences, load_prompts
    from rmteach.core.blocks import DataConfig
    from rmteach.core.chat import format_prompt

    root, m = world
    assert json.loads((root / "manifest.json").read_text()) == m
    assert m["schema"] == "rmteach.toy/1" and m["seed"] == 0 and m["preset"] == "tiny"
    assert m["ground_truth"]["callable"] == "rmteach.toy.task:ground_truth"
    train = [p.text for p in load_prompts(DataConfig(path=str(root / m["prompts"]["train"])))]
    evals = [p.text for p in load_prompts(DataConfig(path=str(root / m["prompts"]["eval"])))]
    assert (len(train), len(evals)) == (64, 64) and not set(train) & set(evals)
    for kind in ("off_policy", "on_policy"):
        for split in ("train", "test"):
            pairs = load_preferences(DataConfig(path=str(root / m["preferences"][kind][split])))
            # Labels are the ground truth's argmax: recompute it.
            assert all(task.score(p.prompt, p.chosen) > task.score(p.prompt, p.rejected) for p in pairs)
    assert len(m["policies"]) == 2 and {p["arch"] for p in m["policies"]} == {"gpt2", "llama"}
    for p in m["policies"]:
        assert not Path(p["path"]).is_absolute()
        tok = AutoTokenizer.from_pretrained(root / p["path"])
        assert format_prompt(tok, "list cat dog") == "User: list cat dog Assistant:"
        model = AutoModelForCausalLM.from_pretrained(root / p["path"])
        assert model.generation_config.eos_token_id == tok.eos_token_id == 1
    roles = {rm["name"]: rm["role"] for rm in m["reward_models"]}
    assert roles == {
        "rm_on100": "mixed", "rm_on75": "mixed", "rm_on50": "mixed", "rm_on25": "mixed", "rm_on0": "mixed",
        "rm_long": "high_variance_inaccurate", "gt_lowvar": "perfect_accuracy_low_variance",
    }
    for rm in m["reward_models"]:
        cfg = RewardModelConfig(**rm["config"])  # every entry is a ready RM config
        if cfg.path:
            hf = AutoConfig.from_pretrained(root / cfg.path)
            assert hf.num_labels == 1 and hf.architectures[0].endswith("ForSequenceClassification")
        if rm["role"] == "mixed":
            assert rm["train_pairs"] == 400 and rm["on_policy_pairs"] == round(400 * rm["onpolicy_fraction"])
        if rm["name"] == "rm_long":  # the slice: off-policy pairs whose chosen answer is longer
            assert 100 <= rm["train_pairs"] <= 400 and rm["on_policy_pairs"] == 0
    low = next(rm for rm in m["reward_models"] if rm["name"] == "gt_lowvar")
    assert low["config"]["transform"] == {"kind": "scale_fraction", "fraction": 0.5, "factor": 0.001, "seed": 0}


def test_quality_bar_on_the_tiny_world(reports):
    eng, _ = reports["english"]
    spa, _ = reports["spanish"]
    mixes = ["rm_on100", "rm_on75", "rm_on50", "rm_on25", "rm_on0"]
    trained = mixes + ["rm_long"]
    off = {n: eng[n]["offpolicy_accuracy"] for n in trained}
    on = {n: eng[n]["onpolicy_accuracy"] for n in mixes}
    var = {n: eng[n]["reward_variance"]["mean"] for n in eng}
    # Off-policy accuracy spans at least 10 points across trained RMs; the off-policy-trained RM is the best
    # of the mixes there, the length-biased one the worst.
    assert max(off.values()) - min(off.values()) >= 0.10
    assert off["rm_on0"] - off["rm_on100"] >= 0.08 and min(off, key=off.get) == "rm_long"
    # On- and off-policy accuracy rank the five mixed RMs differently.
    assert sorted(mixes, key=on.get) != sorted(mixes, key=off.get)
    # The ground truth and its scaled copy are perfectly accurate; the copy's variance collapses.
    for name in ("ground_truth", "gt_lowvar"):
        assert eng[name]["onpolicy_accuracy"] == 1.0 and eng[name]["offpolicy_accuracy"] == 1.0
    assert var["gt_lowvar"] < 0.25 * var["ground_truth"]
    assert max(var.values()) >= 3 * min(var.values())
    # The two policies induce different variance for some RM.
    assert max(abs(var[n] - spa[n]["reward_variance"]["mean"]) for n in trained) >= 0.1


@pytest.mark.slow
def test_rebuild_is_identical_in_parallel_and_over_other_files(world, reports, tmp_path, monkeypatch):
    from rmteach.toy import parts
    from rmteach.toy.build import run_build

    root, manifest = world
    again = tmp_path / "again"
    again.mkdir()
    (again / "notes.txt").write_text("mine")
    with pytest.raises(UserError):
        run_build(again, seed=0, preset="tiny")
    with pytest.raises(UserError, match="notes.txt"):  # --overwrite takes only a toy world's own folder
        run_build(again, seed=0, preset="tiny", overwrite=True)
    assert sorted(p.name for p in again.iterdir()) == ["notes.txt"] and (again / "notes.txt").read_text() == "mine"
    (again / "notes.txt").unlink()
    monkeypatch.setattr(parts, "MIN_PARALLEL_STEPS", 0)  # force the worker processes
    assert run_build(again, seed=0, preset="tiny", overwrite=True, workers=2) == manifest
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        assert f.read_bytes() == (again / f.relative_to(root)).read_bytes(), f
    rewards, data = _evaluate(again, "evaluate.yaml", tmp_path / "cache")
    before, data0 = reports["english"]
    assert data.responses == data0.responses
    for name, table in data0.rewards.items():
        assert np.array_equal(table.onpolicy, data.rewards[name].onpolicy), name


@pytest.mark.slow
def test_interrupted_build_resumes_and_reuses_finished_parts(world, tmp_path):
    from rmteach.toy.build import run_build

    root, manifest = world
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "manifest.json").unlink()
    # An RM killed mid-training: no inputs.json, half-written weights.
    (copy / "reward_models/rm_on50/inputs.json").unlink()
    (copy / "reward_models/rm_on50/model.safetensors").write_bytes(b"partial")
    policy_mtime = (copy / "policies/english/model.safetensors").stat().st_mtime_ns
    assert run_build(copy, seed=0, preset="tiny", workers=1) == manifest
    assert (copy / "policies/english/model.safetensors").stat().st_mtime_ns == policy_mtime  # reused
    rebuilt = copy / "reward_models/rm_on50/model.safetensors"
    assert rebuilt.read_bytes() == (root / "reward_models/rm_on50/model.safetensors").read_bytes()
    with pytest.raises(UserError, match="already holds a different toy build"):
        run_build(copy, seed=1, preset="tiny", workers=1)


def test_fit_learns_a_separable_preference_and_a_demonstrated_answer(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from rmteach.toy.fit import FitSettings, encode, fit_policy, fit_reward_model, reward_scores
    from rmteach.toy.tiny import build_policy, build_reward_model

    torch.set_num_threads(1)
    prompts = task.sample_prompts(120, np.random.default_rng(3))
    answers = [" ".join(p.split()[1:]) for p in prompts]  # r_G = 1
    babble = ["the um so" for _ in prompts]  # r_G = (1 - 0.2 * (3 - k)^+) / 2 <= 0.5
    _, tok = build_reward_model(tmp_path / "rm", task.WORDS, seed=0, d=16, heads=2)
    rm = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    acc = fit_reward_model(rm, tok, prompts[:100], answers[:100], babble[:100], FitSettings(8, 20, 3e-3), seed=0)
    assert acc == 1.0
    held = encode(tok, prompts[100:], answers[100:])[0], encode(tok, prompts[100:], babble[100:])[0]
    assert np.all(reward_scores(rm, held[0], tok.pad_token_id) > reward_scores(rm, held[1], tok.pad_token_id))
    _, tok = build_policy(tmp_path / "pi", task.WORDS, arch="llama", seed=0, d=32, heads=2)
    pi = AutoModelForCausalLM.from_pretrained(tmp_path / "pi")
    start = fit_policy(pi, tok, prompts, ["cat"] * len(prompts), FitSettings(1, 40, 1e-6), seed=0)
    end = fit_policy(pi, tok, prompts, ["cat"] * len(prompts), FitSettings(15, 40, 1e-2), seed=0)
    # Random init: about ln(vocab) nats per token; after training, "cat <eos>" is nearly certain.
    assert start > 3.0 and end < 0.1
