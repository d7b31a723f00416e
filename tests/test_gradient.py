"""Gradient alignment (evaluate/gradient.py): RLOO weights, the forecast against an exact SGD step, restoring.

The key check enumerates the responses. The "world" is a fixed list S of responses per prompt (the nine
two-word responses), and the policy over it is the tiny model's sequence probability of `response + <eos>`
renormalized over S: pi_S(y|x) = pi(y|x) / sum_{y' in S} pi(y'|x). Samples from pi_S make the RLOO estimate
unbiased for the gradient of E_{pi_S}[r] (the leave-one-out baseline's expectation is E_{pi_S}[r], so the
normalizer's gradient cancels), and E_{pi_S}[g] is computed exactly, in float64, on a copy of the model.
The K samples are drawn at the quantiles (j + 1/2) / K of pi_S (systematic sampling): each response appears
within one of K * pi_S(y) times, so the estimate is close to exact and deterministic. (Independent draws
with K = 400 land about 13% (one std) from the exact value on this world.)
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rmteach.core.errors import UserError
from rmteach.evaluate.gradient import gradient_alignment, load_policy_for_gradients, rloo_weights

WORDS = ["a", "b", "c"]
RESPONSES = [f"{u} {v}" for u in WORDS for v in WORDS]  # S, the same for every prompt
PROMPTS = ["a b", "c"]
K = 400  # samples per prompt
BATCH = 512  # one pass per half: keeps the file fast


def _gold(y: str) -> float:
    return float(y.split().count("a") - y.split().count("c"))


def _proxy(y: str) -> float:  # agrees with the ground truth on "a", ignores "c", dislikes "b"
    return float(y.split().count("a") - 0.5 * y.split().count("b"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny policy, K systematic samples per prompt from pi_S, and the rewards of those samples."""
    from rmteach.core.hf import quiet
    from rmteach.toy.tiny import build_policy

    quiet()
    path = tmp_path_factory.mktemp("grad_policy")
    build_policy(path, WORDS, arch="gpt2", seed=0, d=16, layers=1, heads=2, chat_template=None)
    model, tok = load_policy_for_gradients(str(path), device="cpu", dtype="float32")
    exact = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        probs = torch.stack([_log_pi(exact, tok, x) for x in PROMPTS]).softmax(dim=-1).numpy()  # (n, |S|) pi_S
    quantiles = (np.arange(K) + 0.5) / K  # (K,)
    draws = [np.minimum(np.searchsorted(np.cumsum(p), quantiles), len(RESPONSES) - 1) for p in probs]  # (n, K)
    responses = [[RESPONSES[j] for j in row] for row in draws]
    gold = np.array([[_gold(y) for y in row] for row in responses])  # (n, K)
    proxy = np.array([[_proxy(y) for y in row] for row in responses])  # (n, K)
    return {"model": model, "tok": tok, "exact": exact, "responses": responses, "gold": gold, "proxy": proxy}


def _log_pi(model, tok, prompt: str) -> torch.Tensor:
    """(|S|,) log pi(y + <eos> | prompt) for every y in S, one unpadded sequence at a time."""
    head = tok(prompt, add_special_tokens=False).input_ids
    out = []
    for y in RESPONSES:
        ids = head + tok(y, add_special_tokens=False).input_ids + [tok.eos_token_id]
        logp = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(dim=-1)  # (T, V)
        out.append(sum(logp[t - 1, ids[t]] for t in range(len(head), len(ids))))
    return torch.stack(out)


def _objective(model, tok, prompt: str, reward) -> torch.Tensor:
    """Exact E_{y ~ pi_S(.|prompt)} reward(y), differentiable."""
    r = torch.tensor([reward(y) for y in RESPONSES], dtype=torch.float64)
    return (_log_pi(model, tok, prompt).softmax(dim=0) * r).sum()


def _grad(model, tok, prompt: str, reward) -> list[torch.Tensor]:
    params = list(model.parameters())
    return list(torch.autograd.grad(_objective(model, tok, prompt, reward), params))


def _exact_gain(exact, tok, lr: float, step_on: str, measure_on: str) -> float:
    """E_{pi_S}[gold | measure_on] after minus before one SGD step of size lr on the proxy objective at step_on."""
    model = copy.deepcopy(exact)
    grads = _grad(model, tok, step_on, _proxy)
    with torch.no_grad():
        before = float(_objective(model, tok, measure_on, _gold))
        for p, g in zip(model.parameters(), grads):
            p += lr * g  # ascent on E[proxy] = an SGD step on the loss -E[proxy]
        return float(_objective(model, tok, measure_on, _gold)) - before


def test_rloo_weights_by_hand():
    r = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 4.0]])
    expected = np.array([[1 - 11 / 3, 2 - 10 / 3, 3 - 9 / 3, 6 - 6 / 3], [-4 / 3, -4 / 3, -4 / 3, 4.0]])
    np.testing.assert_allclose(rloo_weights(r), expected)
    np.testing.assert_allclose(rloo_weights(r).sum(axis=1), 0.0, atol=1e-12)
    with pytest.raises(ValueError):
        rloo_weights(np.ones((3, 1)))


def test_alignment_forecasts_an_exact_sgd_step(world):
    tok, exact = world["tok"], world["exact"]
    out = gradient_alignment(
        world["model"], tok, PROMPTS, world["responses"], world["gold"], {"proxy": world["proxy"]}, batch_size=BATCH,
    )
    assert out["split"] == {"a": 1, "b": 1}
    # With 2 prompts the halves are {x1}, {x2} whatever the seed: the forecast is the mean of the two
    # cross-prompt gains (step on one prompt's proxy objective, measure the other prompt's ground truth).
    lr = 1e-3
    x1, x2 = PROMPTS
    measured = (_exact_gain(exact, tok, lr, x1, x2) + _exact_gain(exact, tok, lr, x2, x1)) / 2
    exact_alignment = sum(
        float(sum((u * v).sum() for u, v in zip(_grad(exact, tok, step, _proxy), _grad(exact, tok, seen, _gold))))
        for step, seen in [(x1, x2), (x2, x1)]
    ) / 2
    predicted = lr * out["values"]["proxy"]
    print(f"predicted {predicted:.4e} measured {measured:.4e} exact first order {lr * exact_alignment:.4e}")
    assert measured > 0
    assert lr * exact_alignment == pytest.approx(measured, rel=0.01)  # the step is small: first order holds
    assert predicted == pytest.approx(measured, rel=0.05)


def test_alignment_is_linear_in_the_proxy_rewards(world):
    gold, proxy = world["gold"], world["proxy"]
    rms = {"gold": gold, "minus_gold": -gold, "proxy": proxy, "mix": 2.0 * gold - 0.5 * proxy}
    out = gradient_alignment(world["model"], world["tok"], PROMPTS, world["responses"], gold, rms, batch_size=BATCH)
    v = out["values"]
    assert v["gold"] > 0
    assert v["minus_gold"] == pytest.approx(-v["gold"], rel=1e-5)
    assert v["mix"] == pytest.approx(2.0 * v["gold"] - 0.5 * v["proxy"], rel=1e-4)
    assert set(out["seconds"]) == set(rms) and out["gold_seconds"] > 0


@pytest.mark.slow
def test_batching_and_padding_do_not_change_the_result(world):
    args = (world["model"], world["tok"], PROMPTS, world["responses"], world["gold"], {"proxy": world["proxy"]})
    seen = []
    one = gradient_alignment(*args, batch_size=1000, progress=seen.append)["values"]["proxy"]
    small = gradient_alignment(*args, batch_size=64)["values"]["proxy"]
    assert small == pytest.approx(one, rel=1e-4)
    assert 0 < sum(seen) <= 2 * len(PROMPTS) * K


def test_parameter_subset_and_bad_input(world):
    model, tok = world["model"], world["tok"]
    args = (PROMPTS, world["responses"], world["gold"], {"proxy": world["proxy"]})
    full = gradient_alignment(model, tok, *args, batch_size=BATCH)
    patterns = ["transformer.h.0.mlp.*", "transformer.ln_f.*"]
    sub = gradient_alignment(model, tok, *args, parameters=patterns, batch_size=BATCH)
    expected = sum(p.numel() for n, p in model.named_parameters() if n.startswith(tuple(q[:-1] for q in patterns)))
    assert sub["n_parameters"] == expected < full["n_parameters"] == sum(p.numel() for p in model.parameters())
    assert sub["parameters"] == patterns and full["parameters"] is None
    assert np.isfinite(sub["values"]["proxy"]) and sub["values"]["proxy"] != full["values"]["proxy"]
    with pytest.raises(UserError, match="match no parameter"):
        gradient_alignment(model, tok, *args, parameters=["nothing.*"])
    with pytest.raises(UserError, match="shape"):
        gradient_alignment(model, tok, PROMPTS, world["responses"], world["gold"], {"bad": world["proxy"][:, :3]})
    with pytest.raises(UserError, match="at least 2 prompts"):
        gradient_alignment(model, tok, PROMPTS[:1], world["responses"][:1], world["gold"][:1], {})


def test_model_state_is_restored(world):
    model, tok = world["model"], world["tok"]
    frozen = "transformer.wpe.weight"
    dict(model.named_parameters())[frozen].requires_grad_(False)
    ln = dict(model.named_parameters())["transformer.ln_f.weight"]
    old_grad = ln.grad = torch.ones_like(ln)  # a caller's accumulated gradient survives
    model.train()
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        gradient_alignment(model, tok, PROMPTS, world["responses"], world["gold"], {"proxy": world["proxy"]},
                           parameters=["transformer.h.0.attn.*"], batch_size=BATCH)
        assert {n: p.requires_grad for n, p in model.named_parameters()} == before
        assert all(m.training for m in model.modules())
        assert ln.grad is old_grad and all(p.grad is None for p in model.parameters() if p is not ln)
    finally:
        ln.grad = None
        dict(model.named_parameters())[frozen].requires_grad_(True)
        model.eval()
