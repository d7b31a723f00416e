"""The real world's Bradley-Terry RMs (`world.rms`, `world.reviews`) with tiny stand-ins: a tiny Llama policy, a
tiny BERT encoder as the base, `rm_fns:gold` as the ground truth instead of the judge."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from rmteach.core.blocks import RewardModelConfig
from rmteach.core.config import resolve_paths, validate
from rmteach.world import prompts, reviews, rms

WORDS = ["w1", "w2", "w3", "w4", "great", "bad"]
GT = {"name": "gt", "callable": "rm_fns:gold"}
SAMPLING = {"samples_per_prompt": 4, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 6, "batch_size": 8,
            "seed": 0}
SIZES = rms.Sizes(prompts=6, held_out_prompts=2, samples_per_prompt=4, total=12, epochs=1.0, batch_size=4,
                  learning_rate=1e-3)


def gold(prompt: str, response: str) -> float:
    """rm_fns.gold by hand: 'w1' count + 0.1 per word + 0.01 per prompt character."""
    return response.split().count("w1") + 0.1 * len(response.split()) + 0.01 * len(prompt)


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _tiny_bert(out: Path) -> Path:
    """A tiny BERT encoder (no head) and its WordPiece tokenizer, as the MiniLM package holds them."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out.mkdir(parents=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "write", "review", "the", "of", "a", "is", "it",
             ",", ".", '"', "and", "but"]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=256)
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _world(tmp: Path) -> Path:
    from rmteach.core.data import write_jsonl
    from rmteach.toy.tiny import build_policy

    root = tmp / "w"
    build_policy(root / "policies" / "tiny", WORDS, arch="llama", seed=1)
    train, _ = prompts.prompt_sets(10, 4, seed=0)
    write_jsonl(root / "data" / "prompts_train.jsonl", prompts.rows(train, "train"))
    return root


# ----------------------------------------------------------------------------------------------------------
# Written reviews (pure)


def test_reviews_seeded_and_fill_the_request():
    p = prompts.TEMPLATE.format(product="yoga mat", context="bought on sale", opener="In short,")
    texts, kinds = reviews.reviews([p] * 30, 4, seed=3)
    assert (texts, kinds) == reviews.reviews([p] * 30, 4, seed=3) and texts != reviews.reviews([p] * 30, 4, seed=4)[0]
    flat = [(t, k) for row_t, row_k in zip(texts, kinds) for t, k in zip(row_t, row_k)]
    assert {k for _, k in flat} == set(reviews.KINDS)
    for t, k in flat:
        if k in ("positive", "negative", "mixed"):
            assert t.startswith("In short, the yoga mat is ")
        if k == "repetitive":
            assert len(set(t.split())) == 1 and 5 <= len(t.split()) <= 10
        if k == "off_task":
            assert "yoga mat" not in t
    with pytest.raises(ValueError, match="unknown kind"):
        reviews.review(p, "sarcastic", np.random.default_rng(0))


def test_split_and_mix_configs(tmp_path):
    pool, held = rms.split_by_prompt([{"prompt_id": "a", "n": 1}, {"prompt_id": "b", "n": 2}, {"prompt_id": "a"}],
                                     {"a"})
    assert pool == [{"prompt_id": "b", "n": 2}] and len(held) == 2
    for share, parts in [(1.0, {"on_policy": 1.0}), (0.5, {"on_policy": 0.5, "off_policy": 0.5}),
                         (0.0, {"off_policy": 1.0})]:
        cfg = rms.train_config(tmp_path, tmp_path / "base", share, 40, 7, SIZES)
        assert {m.name: m.fraction for m in cfg.mix} == parts and cfg.total == 40 and cfg.seed == 7
        assert cfg.base_model.num_labels == 1 and cfg.held_out.path.endswith("on_policy_held_out.jsonl")


def test_base_copy_reads_bert_pairs(tmp_path):
    from transformers import AutoTokenizer

    from rmteach.core.chat import format_conversation

    base = rms.base_model(tmp_path / "w", _tiny_bert(tmp_path / "src"))
    tok = AutoTokenizer.from_pretrained(base)
    text = format_conversation(tok, "write a review", "great , w1")
    assert text == "[CLS] write a review [SEP] great , w1 [SEP]"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "write", "a", "review", "[SEP]", "great", ",", "w1", "[SEP]"]
    marker = (base / "source.json").stat().st_mtime_ns
    assert rms.base_model(tmp_path / "w", tmp_path / "nowhere") == base  # kept: the source is not read again
    assert (base / "source.json").stat().st_mtime_ns == marker


# ----------------------------------------------------------------------------------------------------------
# The whole step


def _expected_pairs(samples: list[dict]) -> set[tuple[str, str, str]]:
    """(prompt, chosen, rejected) of every pair of the K samples, labelled by `gold` by hand; ties, same text out."""
    out = set()
    for s in samples:
        for a, b in combinations(s["responses"], 2):
            ga, gb = gold(s["prompt"], a), gold(s["prompt"], b)
            if a != b and ga != gb:
                out.add((s["prompt"], a, b) if ga > gb else (s["prompt"], b, a))
    return out


@pytest.mark.slow
def test_build_rms_with_stand_ins(tmp_path):
    from rmteach.backends.rewards import load_reward_model

    root = _world(tmp_path)
    base = _tiny_bert(tmp_path / "minilm")
    entries = rms.build_rms(root, 0, policy="policies/tiny", ground_truth=GT, sampling=SAMPLING, source=base,
                            sizes=SIZES)
    assert [e["name"] for e in entries] == [n for n, _ in rms.MIXES]
    ids = [r["id"] for r in _rows(root / "data" / "prompts_train.jsonl")][: SIZES.prompts]
    held_ids, train_ids = set(ids[-SIZES.held_out_prompts:]), set(ids[: -SIZES.held_out_prompts])

    # On-policy pairs: every pair of the policy's K samples, labelled by the ground truth (by hand here).
    on = _rows(root / "rms" / "pairs_on" / "pairs.jsonl")
    on_samples = _rows(root / "rms" / "pairs_on" / "samples.jsonl")
    assert [s["id"] for s in on_samples] == ids and on
    assert {(r["prompt"], r["chosen"], r["rejected"]) for r in on} == _expected_pairs(on_samples)
    pool = _rows(root / "rms" / "data" / "on_policy_train.jsonl")
    held = _rows(root / "rms" / "data" / "on_policy_held_out.jsonl")
    assert {r["prompt_id"] for r in held} == held_ids and {r["prompt_id"] for r in pool} <= train_ids
    assert len(pool) + len(held) == len(on)

    # Off-policy pairs: the written reviews of the training prompts only, labelled the same way.
    off_samples = _rows(root / "rms" / "pairs_off" / "samples.jsonl")
    assert [s["id"] for s in off_samples] == [i for i in ids if i in train_ids]
    texts, _ = reviews.reviews([s["prompt"] for s in off_samples], SIZES.samples_per_prompt, 0)
    assert [s["responses"] for s in off_samples] == texts
    off = _rows(root / "rms" / "pairs_off" / "pairs.jsonl")
    assert off and all(r["prompt_id"] in train_ids for r in off)
    assert {(r["prompt"], r["chosen"], r["rejected"]) for r in off} == _expected_pairs(off_samples)

    # The off-policy test set: written reviews of the held-out prompts only (seed + 1), labelled the same way,
    # in the folder of OFF_HELD_OUT, evaluate's preferences.
    test_samples = _rows((root / rms.OFF_HELD_OUT).parent / "samples.jsonl")
    assert [s["id"] for s in test_samples] == [i for i in ids if i in held_ids]
    texts, _ = reviews.reviews([s["prompt"] for s in test_samples], SIZES.samples_per_prompt, 1)
    assert [s["responses"] for s in test_samples] == texts
    test = _rows(root / rms.OFF_HELD_OUT)
    assert test
    assert {(r["prompt"], r["chosen"], r["rejected"]) for r in test} == _expected_pairs(test_samples)
    assert entries[0]["pairs"]["off_policy_held_out"]["kept"] == len(test)

    # Each RM draws its stated share of the same total; all are scored on the same held-out pairs.
    total = min(SIZES.total, len(pool), len(off))
    for e, (name, share) in zip(entries, rms.MIXES):
        drawn = _rows(root / "rms" / name / "data" / "train.jsonl")
        assert len(drawn) == total == e["train_pairs"]
        assert sum(r["source"] == "on_policy" for r in drawn) == round(share * total)
        assert e["held_out_pairs"] == len(held) and e["onpolicy_fraction"] == share

        # The entry loads as an RM config (relative to the world) and its accuracy is what it scores.
        cfg = validate(RewardModelConfig, resolve_paths({"reward_models": [e["config"]]}, root)["reward_models"][0])
        rm = load_reward_model(cfg, device="cpu")
        try:
            c = rm.score([r["prompt"] for r in held], [r["chosen"] for r in held])
            j = rm.score([r["prompt"] for r in held], [r["rejected"] for r in held])
        finally:
            rm.close()
        assert e["held_out_accuracy"] == pytest.approx(np.mean(c > j))  # ties count as wrong

    # A rebuild keeps every finished part.
    stamps = {n: (root / "rms" / n / "run.json").stat().st_mtime_ns for n, _ in rms.MIXES}
    again = rms.build_rms(root, 0, policy="policies/tiny", ground_truth=GT, sampling=SAMPLING, source=base,
                          sizes=SIZES)
    assert [e["held_out_accuracy"] for e in again] == [e["held_out_accuracy"] for e in entries]
    assert stamps == {n: (root / "rms" / n / "run.json").stat().st_mtime_ns for n, _ in rms.MIXES}
