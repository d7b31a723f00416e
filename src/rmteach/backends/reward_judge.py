"""The LLM-judge reward backend: a causal LM asked a templated question, scored by its label tokens' log-probs.

Design (the config block is `rmteach.core.blocks.JudgeConfig`):

1. The question is `template.format(prompt=..., response=...)`, a Python format string whose only fields are
   {prompt} (the prompt's text, `rmteach.core.chat.prompt_text`) and {response}.
2. With `chat: true` (the default) and a judge tokenizer that has a chat template, the few-shot examples and
   the question are user turns (each example answered by an assistant turn holding its label), rendered with
   `add_generation_prompt`; the label is read where the assistant's answer starts. Otherwise the text is plain:
   each example's question immediately followed by its label and a blank line, then the question.
3. Each label is tokenized on its own (no special tokens) and only its FIRST token counts, scored at the
   position right after the text: write labels as they would continue the text (`" Yes"` after `"Answer:"`
   for a BPE tokenizer). Labels whose first tokens collide, or that map to the unknown token, are refused.
4. Reward: two labels without `values`: log p(labels[0]) - log p(labels[1]) (a log-odds margin, the other
   tokens' mass does not enter); with `values` (a scale, e.g. 1..9): sum_j q_j values_j, q the judge's
   probabilities renormalised over the label tokens.
5. One forward pass per batch: length-sorted batches (`Batches`: a fixed size, or auto halving at each
   out-of-memory), left padding, position ids counted over real tokens only, so a pair's reward does not depend
   on its batch-mates beyond float rounding; `plan()` exposes the batches for sharding over processes. The
   few-shot prefix every text shares is run once and its keys and values reused (`backends.prefix_cache`;
   checked against the full pass on a probe at load), so a batch costs its pairs' own tokens only; the LM head
   runs on the last position only.
   Texts longer than `max_length` (or the model's positions) lose their start: the end, where the answer is
   read, stays.

6. Over HTTP (`judge.http` instead of `judge.path`): an OpenAI-compatible chat-completions server (vLLM's, a
   hosted API) gets the judge's turns (always chat), one request per pair, asking for one greedy token and its
   `top_logprobs`; the labels are matched to the listed tokens up to surrounding whitespace, a label not listed
   gets the lowest listed log-probability (its own is at most that), and an answer listing none of them stops
   the command. Requests go through the http backend's retries, concurrency and `api_key_env`.

A local judge's scores are cached by `rmteach evaluate` like a `path` RM's: the key holds the whole judge block
(template, labels, values, examples, ...) and the judge's model files (`evaluate.score_cache`); an HTTP judge's
are not (the server can change behind the same URL). Within one process a local judge also remembers what it
judged (`MEMO`, keyed by the judge block, its model files, device, dtype and the text): a second RM with the
same judge block (the ground truth and its low-variance transform, scored in one `evaluate`) reads the first's
rewards instead of running the judge again, and applies its own transform to them. A remembered reward was
computed in another batch, so it may differ from a fresh one by float rounding only (see 5.).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.blocks import JudgeConfig, RewardModelConfig
from ..core.chat import prompt_text
from ..core.config import to_plain
from ..core.errors import ItemError, UserError, first_line
from ..core.hf import check_vocab, fingerprint, load_tokenizer, load_weights, max_positions, quiet, torch_dtype
from .memo import MEMO
from .prefix_cache import PrefixCache, common_prefix, keeps_last_logits
from .reward_hf import Batches, LengthBatched, pad_rows
from .reward_http import HTTPRewardModel, expand_headers, gather_or_cancel

TOP_LOGPROBS = 20  # the most OpenAI's API returns; vLLM's server allows as many (its --max-logprobs, default 20)


def label_ids(tokenizer: Any, labels: Sequence[str], what: str) -> list[int]:
    """The first token id of each label (tokenized alone); raises `UserError` when two collide or one is unknown."""
    ids, seen = [], {}
    unk = getattr(tokenizer, "unk_token_id", None)
    for label in labels:
        toks = tokenizer(label, add_special_tokens=False)["input_ids"]
        if not toks:
            raise UserError(f"{what}: label {label!r} tokenizes to nothing")
        if unk is not None and toks[0] == unk:
            raise UserError(f"{what}: label {label!r} is not in the judge's vocabulary (its first token is the "
                            "unknown token)")
        if toks[0] in seen:
            raise UserError(f"{what}: labels {seen[toks[0]]!r} and {label!r} start with the same token "
                            f"({tokenizer.convert_ids_to_tokens(toks[0])!r}); only first tokens are scored: choose "
                            "labels whose first tokens differ")
        seen[toks[0]] = label
        ids.append(toks[0])
    return ids


def check_judge(cfg: RewardModelConfig, what: str) -> None:
    """Fail before any weights load: a judge folder that does not exist, or (local folders: the tokenizer alone is
    read) labels whose first tokens collide or are unknown."""
    from pathlib import Path

    from ..core.hf import check_model_ref

    assert cfg.judge is not None
    j = cfg.judge
    if j.http is not None:
        expand_headers(j.http.headers, what)
        return
    assert j.path is not None
    check_model_ref(j.path, f"{what} judge")
    if Path(j.path).expanduser().is_dir():
        tok = load_tokenizer(j.path, f"{what} judge", padding_side="left", trust_remote_code=j.trust_remote_code)
        label_ids(tok, j.labels, f"{what} judge")


def judge_turns(j: JudgeConfig, prompt: Any, response: str) -> list[dict[str, str]]:
    """The judge's conversation of one pair: each example's question and label as a user and an assistant turn,
    then the question as the last user turn.

    >>> j = JudgeConfig(path="m", template="{prompt}={response}?", labels=["y", "n"],
    ...                 examples=[{"prompt": "1+1", "response": "2", "label": "y"}])
    >>> [m["content"] for m in judge_turns(j, "2+2", "5")]
    ['1+1=2?', 'y', '2+2=5?']
    """
    turns = []
    for e in j.examples:
        turns += [{"role": "user", "content": j.template.format(prompt=e.prompt, response=e.response)},
                  {"role": "assistant", "content": e.label}]
    return turns + [{"role": "user", "content": j.template.format(prompt=prompt_text(prompt), response=response)}]


def reward_from_logprobs(logp: np.ndarray, values: Sequence[float] | None) -> np.ndarray:
    """Rewards (B,) from the label tokens' log-probabilities (B, L): the margin of two labels, or the expectation
    of `values` under the probabilities renormalised over the labels.

    >>> reward_from_logprobs(np.log([[0.6, 0.2]]), None).round(4).tolist()
    [1.0986]
    >>> reward_from_logprobs(np.log([[0.3, 0.1]]), [1.0, 9.0]).round(6).tolist()
    [3.0]
    """
    if values is None:
        return logp[:, 0] - logp[:, 1]
    q = np.exp(logp - logp.max(axis=1, keepdims=True))  # (B, L), stable softmax over the labels only
    q /= q.sum(axis=1, keepdims=True)
    return q @ np.asarray(values, dtype=np.float64)


class JudgeRewardModel(LengthBatched):
    """A causal LM judge: one forward pass per batch, the next-token log-probs of the labels' first tokens."""

    def __init__(self, cfg: RewardModelConfig, *, device: str, dtype: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        quiet()
        assert cfg.judge is not None and cfg.judge.path is not None
        self.name, self.judge = cfg.name, cfg.judge
        j: JudgeConfig = cfg.judge
        what = f"reward model '{cfg.name}' (judge)"
        hub = {"trust_remote_code": j.trust_remote_code, **({"revision": j.revision} if j.revision else {})}
        self.tokenizer = load_tokenizer(j.path, what, padding_side="left", **hub)
        self.tokenizer.truncation_side = "left"
        self.model = load_weights(
            AutoModelForCausalLM, j.path, what, dtype=torch_dtype(cfg.dtype or dtype, device),
            hint="point judge.path at a causal LM (AutoModelForCausalLM) with its LM head", **hub)
        check_vocab(self.tokenizer, self.model, j.path, what)
        self.model.to(device).eval()
        self.device = next(self.model.parameters()).device
        self.label_ids = label_ids(self.tokenizer, j.labels, what)
        limit = max_positions(self.model)
        self.max_length = min(j.max_length, limit) if limit else j.max_length
        self.chat = bool(j.chat and getattr(self.tokenizer, "chat_template", None))
        self.batches = Batches(cfg.batch_size, str(self.device), what)
        self._torch = torch
        ident = {"judge": to_plain(j), "files": fingerprint(j.path), "device": str(self.device),
                 "dtype": str(self.model.dtype)}  # what, besides the text, decides a reward (not the batch size)
        self.ident = json.dumps(ident, sort_keys=True)
        try:
            self.texts(["hi"], ["hello"])  # a chat template that fails, fails now
        except Exception as e:  # noqa: BLE001 - jinja's errors are the judge's template's
            raise UserError(f"{what}: its chat template fails ({type(e).__name__}: {first_line(e)}); set "
                            "judge.chat: false for plain text") from e
        self._keep = keeps_last_logits(self.model)
        self.prefix = self._prefix_cache()

    def texts(self, prompts: Sequence[Any], completions: Sequence[str]) -> list[str]:
        """The texts the judge reads, one per pair: few-shot examples, then the question."""
        j = self.judge
        if self.chat:
            render = self.tokenizer.apply_chat_template
            return [render(judge_turns(j, p, c), tokenize=False, add_generation_prompt=True)
                    for p, c in zip(prompts, completions)]
        shots = "".join(f"{j.template.format(prompt=e.prompt, response=e.response)}{e.label}\n\n" for e in j.examples)
        return [shots + j.template.format(prompt=prompt_text(p), response=c) for p, c in zip(prompts, completions)]

    def score(
        self, prompts: Sequence[Any], completions: Sequence[str], progress: Callable[[int], None] | None = None,
        *, extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> np.ndarray:
        """Rewards (n,): the pairs whose text this judge (same block, files, device, dtype) judged before in this
        process are read from `MEMO`; the others go through the model in length-sorted batches."""
        keys = [hashlib.sha256(f"{self.ident}\0{t}".encode()).digest() for t in self.texts(prompts, completions)]
        out = np.array([np.nan if (v := MEMO.get(k)) is None else v for k in keys])  # (n,)
        todo = np.flatnonzero(np.isnan(out))
        if progress and len(todo) < len(out):
            progress(len(out) - len(todo))
        if len(todo):
            out[todo] = super().score([prompts[i] for i in todo], [completions[i] for i in todo], progress)
            for i in todo:
                MEMO.put(keys[i], float(out[i]))
        return out

    def _encode(self, prompts: Sequence[Any], completions: Sequence[str]) -> list[list[int]]:
        """Token ids per pair, cut on the left to `max_length`; special tokens only for plain text (a chat
        template writes its own)."""
        return self.tokenizer(self.texts(prompts, completions), add_special_tokens=not self.chat, truncation=True,
                              max_length=self.max_length)["input_ids"]

    def _prefix_cache(self) -> PrefixCache | None:
        """The few-shot prefix every pair's text starts with, run once (`backends.prefix_cache`); None when the
        texts share under 16 tokens, or when the cached pass does not give the full pass's reward on a probe
        (a model whose cache cannot be copied or extended this way): every row then takes the full pass."""
        torch = self._torch
        yes, no = self.judge.labels[0], self.judge.labels[1]  # distinct first tokens in any vocabulary (checked)
        a, b, probe = self._encode([yes, no, f"{no} {yes}"], [yes, no, f"{yes} {no}"])
        prefix = common_prefix(a, b)
        if len(prefix) < 16:
            return None
        try:
            with torch.inference_mode():
                cache = PrefixCache(self.model, prefix, self.tokenizer.pad_token_id)
                if not cache.covers(probe):
                    return None
                full, cached = self._rewards(self._full_logits([probe])), self._rewards(cache.last_logits([probe]))
        except (TypeError, AttributeError, ValueError, RuntimeError, NotImplementedError):
            return None
        return cache if abs(float(full[0] - cached[0])) <= 1e-3 * max(1.0, abs(float(full[0]))) else None

    def _full_logits(self, rows: list[list[int]]) -> Any:
        """(B, V) next-token logits after each row, from one pass over the whole rows."""
        batch, mask = pad_rows(rows, self.tokenizer.pad_token_id, left=True)  # (B, T), left padded
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T): real tokens count from 0 whatever the padding
        return self.model(input_ids=batch.to(self.device), attention_mask=mask.to(self.device),
                          position_ids=pos.to(self.device), **self._keep).logits[:, -1, :]  # (B, V): the next token

    def _rewards(self, logits: Any) -> np.ndarray:
        torch = self._torch
        labels = torch.tensor(self.label_ids, device=logits.device)
        logp = torch.log_softmax(logits.float(), dim=-1)[:, labels]  # (B, L)
        return reward_from_logprobs(logp.cpu().double().numpy(), self.judge.values)

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        out = np.empty(len(rows), dtype=np.float64)
        hit = [i for i, r in enumerate(rows) if self.prefix is not None and self.prefix.covers(r)]
        miss = sorted(set(range(len(rows))) - set(hit))
        if hit:
            out[hit] = self._rewards(self.prefix.last_logits([rows[i] for i in hit]))
        if miss:
            out[miss] = self._rewards(self._full_logits([rows[i] for i in miss]))
        return out


def label_logprobs(top: Any, labels: Sequence[str]) -> np.ndarray | None:
    """The labels' log-probabilities (L,) from one chat-completions answer's first-token `top_logprobs`
    ([{token, logprob}, ...]), or None when none of the labels is listed. A token matches a label when both are
    equal up to surrounding whitespace; a label not listed gets the lowest listed log-probability (its own is
    at most that).

    >>> label_logprobs([{"token": "Yes", "logprob": -0.1}, {"token": " No", "logprob": -2.5}], ["Yes", "No"]).tolist()
    [-0.1, -2.5]
    >>> label_logprobs([{"token": "Yes", "logprob": -0.1}, {"token": "Maybe", "logprob": -3.0}], ["Yes", "No"]).tolist()
    [-0.1, -3.0]
    """
    listed: dict[str, float] = {}
    for t in top:
        listed.setdefault(str(t["token"]).strip(), float(t["logprob"]))  # the first (most likely) spelling wins
    if not any(label.strip() in listed for label in labels):
        return None
    floor = min(listed.values())
    return np.array([listed.get(label.strip(), floor) for label in labels])


class JudgeHTTPRewardModel(HTTPRewardModel):
    """An LLM judge behind an OpenAI-compatible chat-completions endpoint: one conversation per request (at most
    `http.concurrency` in flight, each retried as the http backend retries), one generated token, its
    `top_logprobs` read for the labels."""

    def __init__(self, cfg: RewardModelConfig) -> None:
        assert cfg.judge is not None and cfg.judge.http is not None
        super().__init__(cfg.name, cfg.judge.http)
        self.judge = cfg.judge
        self.who = f"reward model '{cfg.name}' (judge) at {self.cfg.url}"

    def body(self, prompt: Any, response: str) -> dict[str, Any]:
        """The request of one pair: the judge's turns, one greedy token, the top log-probabilities."""
        return {"model": self.cfg.model, "messages": judge_turns(self.judge, prompt, response), "max_tokens": 1,
                "temperature": 0.0, "logprobs": True, "top_logprobs": TOP_LOGPROBS}

    async def _score_all(
        self, prompts: list[Any], completions: list[str], progress: Callable[[int], None] | None
    ) -> np.ndarray:
        import httpx

        out = np.empty(len(prompts), dtype=np.float64)  # (n,)
        logp = np.empty((len(prompts), len(self.judge.labels)))  # (n, L)
        gate = asyncio.Semaphore(self.cfg.concurrency)
        limits = httpx.Limits(max_connections=self.cfg.concurrency, max_keepalive_connections=self.cfg.concurrency)
        async with httpx.AsyncClient(timeout=self.cfg.timeout_s, limits=limits, headers=self.headers) as client:

            async def one(i: int) -> None:
                async with gate:
                    got = await self._post(client, self.body(prompts[i], completions[i]), i)
                try:
                    top = got["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
                    row = label_logprobs(top, self.judge.labels)
                except (KeyError, IndexError, TypeError, ValueError):
                    raise ItemError(f"{self.who} answered {str(got)[:120]!r}; expected a chat completion with "
                                    "choices[0].logprobs.content[0].top_logprobs, on {item}", i) from None
                if row is None:
                    raise ItemError(f"{self.who}: none of the labels {self.judge.labels} is among the first token's "
                                    f"top {len(top)} log-probabilities, on {{item}}", i)
                logp[i] = row
                if progress:
                    progress(1)

            await gather_or_cancel([one(i) for i in range(len(prompts))])
        out[:] = reward_from_logprobs(logp, self.judge.values)
        return out


def load_judge(cfg: RewardModelConfig, *, device: str, dtype: str) -> JudgeRewardModel | JudgeHTTPRewardModel:
    """The judge a config names: a local causal LM (`judge.path`) or a chat-completions server (`judge.http`)."""
    assert cfg.judge is not None
    if cfg.judge.http is not None:
        return JudgeHTTPRewardModel(cfg)
    return JudgeRewardModel(cfg, device=device, dtype=dtype)
