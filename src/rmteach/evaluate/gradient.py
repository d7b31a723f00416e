"""Gradient alignment: how fast one policy-gradient step on an RM raises the ground truth, on the real policy.

Derivation. Let J_r(theta) = (1/n) sum_x E_{y~pi_theta(.|x)} r(x, y). Its gradient is
grad J_r = (1/n) sum_x E_y[(r(x, y) - b_x) grad log pi(y|x)] for any baseline b_x that does not depend on y.
With K samples y_1..y_K per prompt, the RLOO estimate takes b_x = the mean reward of the *other* K-1 samples:

    w_k = r_k - (1/(K-1)) sum_{j != k} r_j,        G_r(P) = (1/|P|) sum_{x in P} (1/K) sum_k w_k grad log pi(y_k|x)

which is unbiased for grad J_r restricted to the prompts P (the baseline is independent of y_k). One SGD step
theta' = theta + lr * grad J_z on the proxy's normalized rewards z changes the ground truth g by
J_g(theta') - J_g(theta) = lr * <grad J_z, grad J_g> + O(lr^2): the alignment of the two gradients.

Multiplying two noisy estimates made from the same samples biases the product by their covariance, so the two
gradients come from disjoint halves A and B of the prompts (a seeded random split):

    alignment = ( <G_z(A), G_g(B)> + <G_z(B), G_g(A)> ) / 2.

The halves share no sample, so the noise averages out. Over random splits its expectation is
(1/(n(n-1))) sum_{x != x'} <grad J_z(x), grad J_g(x')>: the first-order gain, per unit learning rate, of the
ground truth on prompts *other than* those the step was taken on. It leaves out the self terms
<grad J_z(x), grad J_g(x)>, which add (1/n) of the per-prompt alignment to the gain on the stepped prompts.

Memory: only the ground truth's two half-gradients are kept (float32, one tensor per parameter); each RM costs
one weighted backward pass per half, whose gradient is dotted with the other half's ground-truth gradient.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.errors import UserError
from ..core.hf import load_causal_lm, quiet, resolve_device, torch_dtype
from ..core.chat import format_prompt


def rloo_weights(rewards: np.ndarray) -> np.ndarray:
    """Leave-one-out advantages: each reward minus the mean of its prompt's other K-1 rewards.

    Arguments:
        rewards: (n_prompts, K) rewards, K >= 2.

    Returns:
        (n_prompts, K) float64 weights; each row sums to 0.

    >>> rloo_weights(np.array([[1.0, 2.0, 6.0]]))
    array([[-3. , -1.5,  4.5]])
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"expected rewards of shape (n_prompts, K>=2), got {r.shape}")
    k = r.shape[1]
    others = (r.sum(axis=1, keepdims=True) - r) / (k - 1)  # (n, K) mean of the other K-1
    return r - others


def load_policy_for_gradients(policy_path: str, *, device: str, dtype: str, trust_remote_code: bool = False):
    """Load a causal LM and its tokenizer (right padding) for `gradient_alignment`.

    Arguments:
        policy_path: a local folder or hub id.
        device: 'auto', 'cpu', 'cuda', ...
        dtype: 'auto', 'float32', 'bfloat16', ...
        trust_remote_code: run the model repository's own code (off unless asked).

    Returns:
        (model on `device`, tokenizer).
    """
    quiet()
    device = resolve_device(device)
    return load_causal_lm(policy_path, "policy", padding_side="right", dtype=torch_dtype(dtype, device),
                          device=device, trust_remote_code=trust_remote_code)


def _select(model: Any, patterns: Sequence[str] | None) -> list[tuple[str, Any]]:
    """The (name, parameter) pairs the gradients are taken over: fnmatch `patterns`, or all trainable ones."""
    named = list(model.named_parameters())
    if patterns is None:
        chosen = [(n, p) for n, p in named if p.requires_grad]
    else:
        chosen = [(n, p) for n, p in named if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    if not chosen:
        what = f"parameters {list(patterns)}" if patterns is not None else "the model's trainable parameters"
        raise UserError(f"{what} match no parameter of the policy (names look like '{named[0][0]}')")
    return chosen


def _check(prompts: Sequence[str], responses: Sequence[Sequence[str]], gold: np.ndarray,
           proxies: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """Validate shapes and values; return (n, K)."""
    n = len(prompts)
    if n < 2:
        raise UserError(f"gradient alignment needs at least 2 prompts (two disjoint halves), got {n}")
    ks = {len(r) for r in responses}
    if len(responses) != n or len(ks) != 1 or min(ks) < 2:
        raise UserError(f"responses must be {n} lists of the same length K >= 2, got lengths {sorted(ks)}")
    shape = (n, ks.pop())
    for name, r in [("ground truth", gold), *((f"RM '{m}'", z) for m, z in proxies.items())]:
        r = np.asarray(r)
        if r.shape != shape:
            raise UserError(f"{name} rewards have shape {r.shape}, expected (n_prompts, K) = {shape}")
        if not np.all(np.isfinite(r)):
            raise UserError(f"{name} rewards contain NaN or infinite values")
    return shape


class _Sequences:
    """Prompt + response token ids, and the weighted log-likelihood gradient over a set of them."""

    def __init__(self, model: Any, tok: Any, prompts: Sequence[str], responses: Sequence[Sequence[str]],
                 params: list[Any], batch_size: int, add_eos: bool, progress: Callable[[int], None] | None):
        self.model, self.params, self.batch_size, self.progress = model, params, batch_size, progress
        self.device = params[0].device
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        eos = [tok.eos_token_id] if add_eos and tok.eos_token_id is not None else []
        self.ids: dict[tuple[int, int], tuple[list[int], int]] = {}  # (i, k) -> (ids, n_prompt_tokens)
        for i, (p, rs) in enumerate(zip(prompts, responses)):
            head = tok(format_prompt(tok, p), add_special_tokens=False).input_ids
            if not head:  # the first response token needs a context to be predicted from
                raise UserError(f"prompt {i} formats to no tokens: give it some text or a chat template")
            for k, r in enumerate(rs):
                self.ids[i, k] = (head + tok(r, add_special_tokens=False).input_ids + eos, len(head))

    def grad(self, coef: Mapping[tuple[int, int], float]) -> None:
        """Leave grad of sum_{(i,k)} coef[i,k] * log pi(y_k|x_i) in the parameters' `.grad`."""
        import torch

        for p in self.params:
            p.grad = None
        keys = sorted((key for key, c in coef.items() if c != 0.0), key=lambda key: len(self.ids[key][0]))
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            seqs = [self.ids[key] for key in batch]
            t = max(len(s) for s, _ in seqs)
            ids = torch.full((len(seqs), t), self.pad, dtype=torch.long)  # (B, T), right padding
            mask = torch.zeros((len(seqs), t), dtype=torch.long)  # (B, T) attention mask
            resp = torch.zeros((len(seqs), t - 1), dtype=torch.float32)  # (B, T-1): next token is a response token
            for b, (s, head) in enumerate(seqs):
                ids[b, : len(s)] = torch.tensor(s)
                mask[b, : len(s)] = 1
                resp[b, head - 1 : len(s) - 1] = 1.0
            ids, mask, resp = ids.to(self.device), mask.to(self.device), resp.to(self.device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (B, T-1, V)
            logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
            seq_logp = (logp * resp).sum(dim=1)  # (B,) log pi(y|x)
            c = torch.tensor([coef[key] for key in batch], dtype=torch.float32, device=self.device)  # (B,)
            (c * seq_logp).sum().backward()  # accumulates over batches
            if self.progress:
                self.progress(len(batch))

    def coefficients(self, rewards: np.ndarray, half: np.ndarray) -> dict[tuple[int, int], float]:
        """RLOO weights / (|half| * K) on the half's sequences: G_r(half) = grad of sum coef * log pi."""
        w = rloo_weights(rewards)  # (n, K)
        scale = 1.0 / (len(half) * w.shape[1])
        return {(int(i), k): float(w[i, k] * scale) for i in half for k in range(w.shape[1])}

    def grad_copy(self) -> list[Any]:
        """A float32 copy of the current gradient, one tensor per parameter (zeros where no gradient)."""
        import torch

        return [p.grad.float().clone() if p.grad is not None else torch.zeros_like(p, dtype=torch.float32)
                for p in self.params]

    def dot(self, other: list[Any]) -> float:
        """<current gradient, other> in float32 (parameters without a gradient contribute 0)."""
        return float(sum((p.grad.float() * g).sum() for p, g in zip(self.params, other) if p.grad is not None))


def gradient_alignment(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    responses: Sequence[Sequence[str]],
    gold: np.ndarray,
    proxies: Mapping[str, np.ndarray],
    *,
    parameters: Sequence[str] | None = None,
    batch_size: int = 16,
    seed: int = 0,
    add_eos: bool = True,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Alignment of each RM's policy gradient with the ground truth's, on disjoint prompt halves (see module).

    `lr * values[rm]` forecasts the first-order ground-truth gain of one SGD step of size lr on that RM's
    objective (on prompts other than those stepped on). The model's gradients, requires_grad flags and
    training mode are restored afterwards.

    Arguments:
        model: a causal LM (its own dtype; the log-probs and dot products are float32).
        tok: its tokenizer; prompts are formatted with `format_prompt`.
        prompts: the n >= 2 raw prompt texts.
        responses: (n, K) sampled responses (decoded text without special tokens).
        gold: (n, K) ground-truth rewards of those responses.
        proxies: RM name -> (n, K) (normalized) rewards.
        parameters: fnmatch patterns over `model.named_parameters()` names; None = all trainable parameters.
        batch_size: sequences per forward/backward pass.
        seed: the split: A = sorted(perm[: n // 2]), B = the rest, perm = np.random.default_rng(seed).permutation(n).
        add_eos: append the tokenizer's EOS to each response (generation stopped there; decoding dropped it).
        progress: called with the number of sequences done after each pass; (1 + len(proxies)) * n * K in all
            (sequences whose RLOO weight is 0 are skipped and not counted).

    Returns:
        {"values": {rm: alignment}, "seconds": {rm: seconds}, "gold_seconds": seconds, "n_parameters": the
        number of scalars the gradients span, "parameters": `parameters`, "split": {"a": n_a, "b": n_b},
        "n_prompts": n}.
    """
    import torch

    # 1. Validate, select the parameters, split the prompts.
    n, _ = _check(prompts, responses, gold, proxies)
    chosen = _select(model, parameters)
    chosen_ids = {id(p) for _, p in chosen}
    perm = np.random.default_rng(seed).permutation(n)
    halves = (np.sort(perm[: n // 2]), np.sort(perm[n // 2 :]))  # (n_a,), (n_b,) prompt indices

    all_params = [p for _, p in model.named_parameters()]
    saved_flags = [p.requires_grad for p in all_params]
    saved_grads = [p.grad for p in all_params]
    was_training = model.training
    try:
        # 2. Only the chosen parameters need gradients; dropout off.
        for p in all_params:
            p.requires_grad_(id(p) in chosen_ids)
        model.eval()
        params = [p for _, p in chosen]
        seqs = _Sequences(model, tok, prompts, responses, params, batch_size, add_eos, progress)
        with torch.enable_grad():
            # 3. The ground truth's half-gradients G_g(A), G_g(B), kept for every RM.
            t0 = time.perf_counter()
            gold_grads = []
            for half in halves:
                seqs.grad(seqs.coefficients(gold, half))
                gold_grads.append(seqs.grad_copy())  # one float32 tensor per parameter
            gold_seconds = time.perf_counter() - t0

            # 4. Each RM: G_z(A) . G_g(B) and G_z(B) . G_g(A), averaged.
            values, seconds = {}, {}
            for name, z in proxies.items():
                t0 = time.perf_counter()
                cross = []
                for half, other in zip(halves, gold_grads[::-1]):
                    seqs.grad(seqs.coefficients(z, half))
                    cross.append(seqs.dot(other))
                values[name] = float(np.mean(cross))
                seconds[name] = time.perf_counter() - t0
    finally:
        # 5. Restore the model as it came.
        for p, flag, g in zip(all_params, saved_flags, saved_grads):
            p.requires_grad_(flag)
            p.grad = g
        model.train(was_training)
    return {
        "values": values,
        "seconds": seconds,
        "gold_seconds": gold_seconds,
        "n_parameters": int(sum(p.numel() for p in params)),
        "parameters": list(parameters) if parameters is not None else None,
        "split": {"a": len(halves[0]), "b": len(halves[1])},
        "n_prompts": n,
    }
