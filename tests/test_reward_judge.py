"""The LLM-judge backend: rewards against a hand computation on a tiny causal LM, batching, bad configs, evaluate."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from helpers import run_cli, write_eval_config
from rmteach.backends.reward_judge import MEMO, JudgeRewardModel
from rmteach.backends.rewards import apply_transform, load_reward_model
from rmteach.core.blocks import RewardModelConfig
from rmteach.core.config import validate
from rmteach.evaluate.score_cache import score_key

PROMPTS = ["w1 w2", "w3", "w4 w5 w6 w7", "w0", "w2 w2"]
RESPONSES = ["w1", "w2 w3 w4 w5 w6", "w1 w8 w1", "w9 w10 w11 w0 w1 w2 w3", "w5"]
TEMPLATE = "w0 {prompt} w11 {response} w10"


def judge_rm(tiny, batch_size=16, model="policy_llama", **judge):
    block = {"path": str(tiny[model]), "template": TEMPLATE, "labels": ["w3", "w7"], **judge}
    return load_reward_model(validate(RewardModelConfig, {"name": "j", "judge": block, "batch_size": batch_size}))


@functools.lru_cache(maxsize=1)
def tiny_llama(path) -> tuple:
    """The tiny Llama and its tokenizer, loaded once for the hand computations."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def next_logprobs(tiny, text: str) -> np.ndarray:
    """log p(next token | text) of the tiny Llama, by hand: one unpadded sequence, the last position."""
    model, tok = tiny_llama(tiny["policy_llama"])
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        return torch.log_softmax(model(ids).logits[0, -1].double(), -1).numpy()


def vocab_id(tiny, word: str) -> int:
    return tiny_llama(tiny["policy_llama"])[1].convert_tokens_to_ids(word)


def test_two_labels_give_the_hand_computed_logprob_margin_through_the_chat_template(tiny):
    rm = judge_rm(tiny, batch_size=2)
    got = rm.score(PROMPTS, RESPONSES)
    w3, w7 = vocab_id(tiny, "w3"), vocab_id(tiny, "w7")
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        lp = next_logprobs(tiny, f"User: w0 {p} w11 {r} w10 Assistant:")  # the tiny chat template, written out
        assert got[i] == pytest.approx(lp[w3] - lp[w7], abs=1e-5)
    assert np.ptp(got) > 1e-3  # the rewards do depend on the pair
    rm.close()


def test_a_scale_is_the_expectation_of_values_with_few_shot_examples_in_plain_text(tiny):
    labels, values = [" w3", " w7", " w9"], [1.0, 5.0, 9.0]
    examples = [{"prompt": "w4", "response": "w5", "label": " w9"}]
    rm = judge_rm(tiny, labels=labels, values=values, examples=examples, chat=False)
    got = rm.score(PROMPTS, RESPONSES)
    ids = [vocab_id(tiny, w) for w in ("w3", "w7", "w9")]
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        lp = next_logprobs(tiny, f"w0 w4 w11 w5 w10 w9\n\nw0 {p} w11 {r} w10")[ids]
        q = np.exp(lp) / np.exp(lp).sum()
        assert got[i] == pytest.approx(float(q @ values), abs=1e-5)
    assert np.all((got > 1.0) & (got < 9.0))
    rm.close()


# GPT-2's absolute positions would shift under left padding without position ids (Llama's RoPE is relative).
@pytest.mark.parametrize("model", ["policy_llama", "policy_gpt2"])
def test_batch_size_padding_and_order_do_not_change_rewards(tiny, model):
    def fresh(batch_size):  # the memo would hand back the first judge's rewards: each judge computes its own
        MEMO.clear()
        return judge_rm(tiny, batch_size=batch_size, model=model)

    one = fresh(1).score(PROMPTS, RESPONSES)  # no padding at all
    many = fresh(5).score(PROMPTS, RESPONSES)  # 5 to 13 tokens padded together
    perm = [3, 0, 4, 2, 1]
    shuffled = fresh(2).score([PROMPTS[i] for i in perm], [RESPONSES[i] for i in perm])
    np.testing.assert_allclose(many, one, atol=1e-5)
    np.testing.assert_allclose(shuffled, one[perm], atol=1e-5)


FEW_SHOT = [{"prompt": f"w{i} w{i + 1}", "response": f"w{i + 2} w{i + 3} w{i + 4}", "label": (" w3", " w7")[i % 2]}
            for i in range(4)]  # ~40 tokens every text starts with


def spy_lengths(rm) -> list[int]:
    """Record the sequence length of every forward call of the judge's model from now on."""
    seen, forward = [], rm.model.forward

    def spy(*args, **kwargs):
        seen.append(int(kwargs["input_ids"].shape[1]))
        return forward(*args, **kwargs)

    rm.model.forward = spy
    return seen


@pytest.mark.parametrize("model", ["policy_llama", "policy_gpt2"])
@pytest.mark.parametrize("chat", [True, False])
def test_the_few_shot_prefix_runs_once_and_gives_the_full_passes_rewards(tiny, model, chat):
    MEMO.clear()
    rm = judge_rm(tiny, batch_size=3, model=model, examples=FEW_SHOT, chat=chat, labels=[" w3", " w7"])
    assert rm.prefix is not None and len(rm.prefix.prefix) >= 16
    seen = spy_lengths(rm)
    got = rm.score(PROMPTS, RESPONSES)
    longest = max(len(r) - len(rm.prefix.prefix) for r in rm._encode(PROMPTS, RESPONSES))
    assert seen and max(seen) == longest  # only the pairs' own tokens ran, never the prefix again
    rm.prefix = None  # the full pass, whole texts
    MEMO.clear()  # (else the judge reads back what it just judged)
    np.testing.assert_allclose(got, rm.score(PROMPTS, RESPONSES), atol=1e-5)
    if model == "policy_llama" and not chat:  # and by hand, one unpadded sequence per text
        shots = "".join(f"w0 {e['prompt']} w11 {e['response']} w10{e['label']}\n\n" for e in FEW_SHOT)
        w3, w7 = vocab_id(tiny, "w3"), vocab_id(tiny, "w7")
        for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
            lp = next_logprobs(tiny, f"{shots}w0 {p} w11 {r} w10")
            assert got[i] == pytest.approx(lp[w3] - lp[w7], abs=1e-5)
    rm.close()


def test_rows_cut_on_the_left_take_the_full_pass_beside_covered_rows_in_one_batch(tiny):
    responses = RESPONSES[:4] + [" ".join(f"w{i % 12}" for i in range(40))]  # the last one is cut on the left
    full = judge_rm(tiny, batch_size=5, examples=FEW_SHOT, chat=False, labels=[" w3", " w7"])
    rm = judge_rm(tiny, batch_size=5, examples=FEW_SHOT, chat=False, labels=[" w3", " w7"], max_length=60)
    rows = rm._encode(PROMPTS, responses)
    covered = [rm.prefix.covers(r) for r in rows]
    assert covered == [True] * 4 + [False] and len(rows[-1]) == 60
    MEMO.clear()
    got = rm.score(PROMPTS, responses)
    MEMO.clear()  # max_length is in the judge block, so `full`'s memo key differs anyway
    np.testing.assert_allclose(got[:4], full.score(PROMPTS[:4], responses[:4]), atol=1e-5)
    rm.prefix = None
    MEMO.clear()
    np.testing.assert_allclose(got, rm.score(PROMPTS, responses), atol=1e-5)


def test_a_prefix_pass_that_disagrees_with_the_full_pass_is_not_used(tiny, monkeypatch):
    from rmteach.backends import prefix_cache

    labels = [" w3", " w7"]
    assert judge_rm(tiny, examples=FEW_SHOT, labels=labels).prefix is not None
    monkeypatch.setattr(prefix_cache.PrefixCache, "last_logits", lambda self, rows: torch.zeros(len(rows), 20))
    rm = judge_rm(tiny, examples=FEW_SHOT, labels=labels)
    assert rm.prefix is None  # the probe's rewards differ: every row takes the full pass
    assert judge_rm(tiny).prefix is None  # without examples the texts share under 16 tokens


def test_a_second_rm_with_the_same_judge_reads_the_first_ones_rewards_and_applies_its_transform(tiny, monkeypatch):
    """The real world's `judge_lowvar` and ground truth: one judge block, scored one after the other as `evaluate`
    scores them (the ground truth on the first `limit` prompts only); the judge's forward runs once per pair."""
    from rmteach.core.data import PreferencePair, Prompt
    from rmteach.evaluate.report import EvalData
    from rmteach.evaluate.run import score_one

    calls: list[tuple[str, int]] = []  # (which RM ran the forward, rows)
    forward = JudgeRewardModel._forward
    monkeypatch.setattr(JudgeRewardModel, "_forward", lambda self, rows: calls.append((self.name, len(rows)))
                        or forward(self, rows))
    MEMO.clear()
    prompts = [Prompt(id=str(i), text=p) for i, p in enumerate(PROMPTS)]
    responses = [[r, RESPONSES[(i + 1) % 5], "w4 w4"] for i, r in enumerate(RESPONSES)]  # (5, 3)
    pairs = [PreferencePair(id="0", prompt="w1", chosen="w2 w3", rejected="w5")]
    data = EvalData(prompts=prompts, responses=responses, pairs=pairs)
    block = {"path": str(tiny["policy_llama"]), "template": TEMPLATE, "labels": ["w3", "w7"]}
    t = {"kind": "scale_fraction", "fraction": 0.5, "factor": 0.001, "seed": 1}
    lowvar = score_one(RewardModelConfig(name="lowvar", judge=block, transform=t, batch_size=4), data, "cpu", "float32")
    gold = score_one(RewardModelConfig(name="gold", judge=block, batch_size=2), data, "cpu", "float32", limit=3)
    assert [c[0] for c in calls] == ["lowvar"] * len(calls) and sum(c[1] for c in calls) == 5 * 3 + 2
    assert gold.onpolicy.shape == (3, 3) and np.ptp(gold.onpolicy) > 1e-3
    scaled = apply_transform(np.ones(3), [p.text for p in prompts[:3]], RewardModelConfig(
        name="x", judge=block, transform=t).transform)  # which of the 3 prompts the transform scales
    assert set(scaled.tolist()) == {1.0, 0.001}
    np.testing.assert_array_equal(lowvar.onpolicy[:3], gold.onpolicy * scaled[:, None])
    # against a judge that computes everything itself (batches of one: no rounding from padding)
    MEMO.clear()
    own = judge_rm(tiny, batch_size=1)
    np.testing.assert_allclose(gold.onpolicy.ravel(), own.score(
        [p for p in PROMPTS[:3] for _ in range(3)], [r for row in responses[:3] for r in row]), atol=1e-5)
    np.testing.assert_allclose([gold.chosen[0], gold.rejected[0]], own.score(["w1", "w1"], ["w2 w3", "w5"]), atol=1e-5)
    # another judge block (other labels) does not read these rewards
    calls.clear()
    judge_rm(tiny, labels=["w7", "w3"]).score(PROMPTS, RESPONSES)
    assert sum(c[1] for c in calls) == len(PROMPTS)


def test_the_cache_key_holds_the_judge_settings_but_not_the_batch_size(tiny):
    def key(batch_size=16, **judge):
        block = {"path": str(tiny["policy_llama"]), "template": TEMPLATE, "labels": ["w3", "w7"], **judge}
        cfg = RewardModelConfig(name="j", judge=block, batch_size=batch_size)
        return score_key(cfg, "s", None, device="cpu", dtype="float32", limit=None)

    base = key()
    assert base is not None and key(batch_size=3) == base
    changed = [key(labels=["w3", "w8"]), key(template="{prompt} {response}"), key(chat=False),
               key(examples=[{"prompt": "w1", "response": "w2", "label": "w3"}]),
               key(labels=["w3", "w7"], values=[0.0, 1.0])]
    assert base not in changed and len(set(changed)) == len(changed)


@pytest.mark.parametrize("judge, words", [
    ({"labels": ["w3 w4", "w3 w5"]}, ["'w3 w4'", "'w3 w5'", "same token"]),
    ({"labels": ["yes", "no"]}, ["'yes'", "vocabulary"]),
    ({"template": "{prompt} {answer}"}, ["{answer}", "allowed"]),
    ({"labels": ["w1", "w2", "w3"]}, ["values"]),
    ({"examples": [{"prompt": "a", "response": "b", "label": "w9"}]}, ["'w9'"]),
    ({"path": "MISSING"}, ["does not exist"]),
    ({"http": {"url": "http://127.0.0.1:9/v1/chat/completions", "model": "m"}}, ["exactly one of 'path'"]),
    ({"path": None, "http": {"url": "http://127.0.0.1:9/v1/chat/completions"}}, ["http.model"]),
    ({"path": None, "http": {"url": "http://127.0.0.1:9/v1/chat/completions", "model": "m", "protocol": "score"}},
     ["http.protocol", "not options of an http judge"]),
])
def test_bad_judge_configs_exit_2_with_one_line(tiny, tmp_path, capsys, judge, words):
    block = {"path": str(tiny["policy_llama"]), "template": TEMPLATE, "labels": ["w3", "w7"], **judge}
    block = {k: v for k, v in block.items() if v is not None}
    if block.get("path") == "MISSING":
        block["path"] = str(tmp_path / "no-such-model")
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, reward_models=[{"name": "j", "judge": block}],
                            preferences=None)
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "out"], capsys)
    assert code == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ": error: " in ln]
    assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # samples with the tiny policy, then scores: about 4 s
def test_evaluate_runs_with_a_judge_as_ground_truth(tiny, tmp_path, capsys):
    gt = {"name": "judge", "batch_size": 4,
          "judge": {"path": str(tiny["policy_llama"]), "template": TEMPLATE, "labels": ["w3", "w7"]}}
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, ground_truth=gt, preferences=None,
                            reward_models=[{"name": "gold", "callable": "rm_fns:gold"}])
    code, _, err = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "out"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [c["name"] for c in report["reward_models"]] == ["gold", "judge"]
    assert len(list((tmp_path / "cache").rglob("scores/*.npz"))) >= 1  # the judge's scores are cached


class TinyChatServer:
    """The replies of a chat-completions server running the tiny Llama: the first token's top log-probabilities
    (the whole vocabulary), computed from the request's messages through the model's chat template."""

    def __init__(self, tiny, fail_first: int = 0):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(tiny["policy_llama"])
        self.model = AutoModelForCausalLM.from_pretrained(tiny["policy_llama"]).eval()
        self.fail_first = fail_first

    def __call__(self, n: int, body: dict):
        if n <= self.fail_first:
            return 503, "overloaded"
        text = self.tok.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True)
        with torch.no_grad():
            lp = torch.log_softmax(self.model(torch.tensor([self.tok(text)["input_ids"]])).logits[0, -1], -1)
        order = lp.argsort(descending=True).tolist()
        top = [{"token": self.tok.convert_ids_to_tokens(i), "logprob": float(lp[i])} for i in order]
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": top[0]["token"]},
                                  "logprobs": {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"],
                                                            "top_logprobs": top}]}}]}


def http_judge(url: str, **judge):
    http = {"url": f"{url}/v1/chat/completions", "model": "tiny", "backoff_s": 0.001, "concurrency": 2}
    block = {"http": http, "template": TEMPLATE, "labels": ["w3", "w7"], **judge}
    return load_reward_model(validate(RewardModelConfig, {"name": "jh", "judge": block}))


@pytest.mark.parametrize("judge", [{}, {"labels": ["w3", "w7", "w9"], "values": [1.0, 5.0, 9.0],
                                        "examples": [{"prompt": "w4", "response": "w5", "label": "w9"}]}])
def test_the_http_judge_on_a_local_chat_completions_server_agrees_with_the_local_judge(tiny, monkeypatch, judge):
    from http_server import Script, serving

    monkeypatch.setenv("RMTEACH_TEST_JUDGE_KEY", "k3y")
    script = Script(TinyChatServer(tiny, fail_first=1))  # the first request is retried after a 503
    with serving(script.app()) as url:
        got = http_judge(url, **judge, http={"url": f"{url}/v1/chat/completions", "model": "tiny",
                                             "backoff_s": 0.001, "api_key_env": "RMTEACH_TEST_JUDGE_KEY"}
                         ).score(PROMPTS, RESPONSES)
    local = judge_rm(tiny, **judge).score(PROMPTS, RESPONSES)
    np.testing.assert_allclose(got, local, atol=1e-5)
    assert script.calls == len(PROMPTS) + 1
    assert all(h["authorization"] == "Bearer k3y" for h in script.headers)
    last = script.bodies[-1]
    assert (last["model"], last["max_tokens"], last["logprobs"]) == ("tiny", 1, True)
    assert len(last["messages"]) == 1 + 2 * len(judge.get("examples", []))


def test_an_http_answer_without_the_labels_stops_with_one_line(tiny):
    from http_server import Script, serving

    from rmteach.core.errors import UserError

    reply = {"choices": [{"logprobs": {"content": [{"top_logprobs": [{"token": "w1", "logprob": -0.2}]}]}}]}
    with serving(Script(lambda n, body: (200, reply)).app()) as url, pytest.raises(UserError) as e:
        from rmteach.backends.rewards import score_grid

        score_grid(http_judge(url), ["w1"], [["w2", "w3"]], ids=["p0"])
    assert "none of the labels" in str(e.value) and "prompt id 'p0'" in str(e.value)


def test_a_judge_path_is_a_model_reference_and_train_plans_with_a_judge(tiny, world, tmp_path, capsys):
    import yaml

    from rmteach.core.config import load_config
    from rmteach.evaluate.config import EvaluateConfig
    from train_world import config_dict

    # A hub id stays a hub id; a relative folder that exists is resolved against the config's folder.
    (tmp_path / "judges").mkdir()
    (tmp_path / "judges" / "local").symlink_to(tiny["policy_llama"])
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, reward_models=[
        {"name": "hub", "judge": {"path": "Org/some-judge", "template": TEMPLATE, "labels": ["w3", "w7"]}},
        {"name": "here", "judge": {"path": "judges/local", "template": TEMPLATE, "labels": ["w3", "w7"]}}])
    rms = load_config(EvaluateConfig, cfg).reward_models
    assert rms[0].judge.path == "Org/some-judge"
    assert rms[1].judge.path == str((tmp_path / "judges" / "local").resolve())
    # train --dry-run names the judge as the reward model's source (it used to stop with an AttributeError)
    judge = {"name": "judge", "judge": {"path": str(tiny["policy_llama"]), "template": TEMPLATE, "labels": ["w3", "w7"]}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config_dict(world, reward_model=judge)))
    code, out, err = run_cli(["train", "-c", path, "-o", tmp_path / "run", "--dry-run"], capsys)
    assert code == 0, err
    assert f"judge {tiny['policy_llama']}" in out
