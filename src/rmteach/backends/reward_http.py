"""The HTTP reward backend: a reward model served elsewhere (OpenRLHF's remote RM, vLLM's score API, `serve-rm`).

Pairs go out in requests of `batch_size`, at most `concurrency` in flight (httpx's asyncio client); the
rewards come back in the order of the pairs. A connection error, a timeout, a 5xx or a 429 is retried
`retries` times, waiting `backoff_s`, then twice as long at each retry; any other failure, or an answer of
the wrong shape, stops the command with one line naming the URL and what came back. The wire formats are
documented on `rmteach.core.remote.RemoteRMConfig`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.errors import ItemError, UserError
from ..core.remote import RemoteRMConfig
from .reward_callable import as_rewards

RETRY_STATUS = {408, 429, 500, 502, 503, 504}  # overloaded or restarting: worth another try
_VAR = re.compile(r"\$\{(\w+)\}")


def expand_headers(headers: dict[str, str], what: str) -> dict[str, str]:
    """Header values with every `${VAR}` replaced by the environment variable VAR (a `UserError` if unset).

    >>> os.environ["RMTEACH_DOCTEST_TOKEN"] = "abc"
    >>> expand_headers({"Authorization": "Bearer ${RMTEACH_DOCTEST_TOKEN}"}, "rm")
    {'Authorization': 'Bearer abc'}
    """
    def value(m: re.Match) -> str:
        if m.group(1) not in os.environ:
            raise UserError(f"{what}: header value needs the environment variable {m.group(1)}, which is not set")
        return os.environ[m.group(1)]

    return {k: _VAR.sub(value, v) for k, v in headers.items()}


def api_key_from_env(name: str, what: str) -> str:
    """The API key held by the environment variable `name`; a `UserError` when it is unset or empty.

    >>> os.environ["RMTEACH_DOCTEST_KEY"] = "s3cret"
    >>> api_key_from_env("RMTEACH_DOCTEST_KEY", "serve-rm")
    's3cret'
    """
    key = os.environ.get(name, "").strip()
    if not key:
        raise UserError(f"{what}: api_key_env names the environment variable {name}, which is not set (or empty)")
    return key


def request_body(cfg: RemoteRMConfig, prompts: list[str], completions: list[str]) -> dict[str, Any]:
    """The JSON body of one request for the config's protocol.

    >>> cfg = RemoteRMConfig(url="http://h/get_reward")
    >>> request_body(cfg, ["Q: "], ["A"])
    {'query': ['Q: A'], 'prompts': ['Q: ']}
    >>> request_body(cfg.model_copy(update={"protocol": "score", "model": "m"}), ["Q: "], ["A"])
    {'model': 'm', 'text_1': ['Q: '], 'text_2': ['A']}
    """
    if cfg.protocol == "openrlhf":  # the text the policy produced, and where its prompt ends
        return {"query": [p + c for p, c in zip(prompts, completions)], "prompts": prompts}
    body: dict[str, Any] = {"model": cfg.model} if cfg.model is not None else {}
    return body | {"text_1": prompts, "text_2": completions}


def parse_rewards(protocol: str, got: Any, n: int) -> tuple[np.ndarray | None, str | None]:
    """An answer's JSON as (n,) float64 rewards in request order, or (None, what is wrong with it).

    >>> parse_rewards("openrlhf", {"rewards": [1, 0.5], "scores": [1, 0.5]}, 2)[0].tolist()
    [1.0, 0.5]
    >>> parse_rewards("score", {"data": [{"index": 1, "score": 2.0}, {"index": 0, "score": 3.0}]}, 2)[0].tolist()
    [3.0, 2.0]
    >>> parse_rewards("openrlhf", {"reward": [1.0]}, 1)[1]
    "answered a JSON object with keys ['reward']; expected 'rewards' (a list of 1 numbers)"
    """
    if protocol == "openrlhf":
        if isinstance(got, dict):
            key = next((k for k in ("rewards", "scores") if k in got), None)
            if key is None:
                keys = sorted(got)[:8]
                return None, f"answered a JSON object with keys {keys}; expected 'rewards' (a list of {n} numbers)"
            got = got[key]
        return as_rewards(got, n)
    data = got.get("data") if isinstance(got, dict) else None
    if not isinstance(data, list) or not all(isinstance(d, dict) and "score" in d for d in data):
        return None, f"answered {str(got)[:80]!r}; expected {{'data': [{{'index': i, 'score': s}}, ...]}}"
    index, scores = [d.get("index", i) for i, d in enumerate(data)], [d["score"] for d in data]
    if len(data) == n:  # back in request order (a wrong count is as_rewards' to report)
        if sorted(i if type(i) is int else -1 for i in index) != list(range(n)):
            return None, f"answered the indices {str(index)[:60]}; expected 0 to {n - 1}, each once"
        scores = [s for _, s in sorted(zip(index, scores))]
    return as_rewards(scores, n)


class HTTPRewardModel:
    """A reward model behind an HTTP endpoint, scored in concurrent batches of `cfg.batch_size` pairs."""

    def __init__(self, name: str, cfg: RemoteRMConfig) -> None:
        _httpx()  # a missing dependency fails at load, before any sampling
        self.name, self.cfg = name, cfg
        self.who = f"reward model '{name}' at {cfg.url}"
        self.headers = expand_headers(cfg.headers, f"reward model '{name}'")  # now: a missing variable fails early
        if cfg.api_key_env is not None:
            self.headers["Authorization"] = f"Bearer {api_key_from_env(cfg.api_key_env, f'reward model {name!r}')}"

    def score(
        self, prompts: Sequence[Any], completions: Sequence[str], progress: Callable[[int], None] | None = None,
        *, extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> np.ndarray:
        """Rewards (n,) of the pairs, in their order; raises `UserError` naming the URL when the server fails."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        if not len(prompts):
            return np.zeros(0)
        coro = self._score_all(list(prompts), list(completions), progress)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the usual case: a plain thread, no loop of its own
            return asyncio.run(coro)
        # Called from inside a running loop (a notebook, an async trainer): that loop cannot be blocked on,
        # so the requests run on their own loop in a worker thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coro).result()

    async def _score_all(
        self, prompts: list[str], completions: list[str], progress: Callable[[int], None] | None
    ) -> np.ndarray:
        httpx = _httpx()
        bs, out = self.cfg.batch_size, np.empty(len(prompts), dtype=np.float64)  # (n,)
        gate = asyncio.Semaphore(self.cfg.concurrency)
        limits = httpx.Limits(max_connections=self.cfg.concurrency, max_keepalive_connections=self.cfg.concurrency)
        async with httpx.AsyncClient(timeout=self.cfg.timeout_s, limits=limits, headers=self.headers) as client:

            async def one(start: int) -> None:
                p, c = prompts[start : start + bs], completions[start : start + bs]
                async with gate:
                    got = await self._post(client, request_body(self.cfg, p, c), start)
                rewards, problem = parse_rewards(self.cfg.protocol, got, len(p))
                if problem:
                    raise ItemError(f"{self.who} {problem}; on the request with {len(p)} pairs starting at {{item}}",
                                    start)
                out[start : start + len(p)] = rewards
                if progress:
                    progress(len(p))

            await gather_or_cancel([one(s) for s in range(0, len(prompts), bs)])
        return out

    async def _post(self, client: Any, body: dict[str, Any], start: int) -> Any:
        """POST one body, retrying what is worth retrying; the answer's JSON, or a `UserError`."""
        httpx = _httpx()
        attempts, failure = self.cfg.retries + 1, ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            try:
                r = await client.post(self.cfg.url, json=body)
            except httpx.TimeoutException as e:
                failure = f"timed out after {self.cfg.timeout_s:g} s ({type(e).__name__})"
                continue
            except httpx.TransportError as e:
                failure = f"could not be reached ({type(e).__name__}: {str(e) or 'no message'})"
                continue
            if r.status_code in RETRY_STATUS:
                failure = f"answered HTTP {r.status_code} {r.reason_phrase}{_snippet(r.text)}"
                continue
            if r.status_code >= 400:  # the request itself is wrong: another try would get the same answer
                raise UserError(f"{self.who} answered HTTP {r.status_code} {r.reason_phrase}{_snippet(r.text)}")
            try:
                return r.json()
            except ValueError:
                raise ItemError(f"{self.who} answered something that is not JSON{_snippet(r.text)}; on the request "
                                f"starting at {{item}}", start) from None
        tries = f"{attempts} attempts" if attempts > 1 else "1 attempt (retries: 0)"
        raise UserError(f"{self.who} {failure}, after {tries}")

    def close(self) -> None:
        pass  # every `score` call opens and closes its own connections


def _snippet(text: str) -> str:
    """The start of a response body, on one line, for an error message."""
    text = " ".join(text.split())
    return f": {text[:200]!r}" if text else ""


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise UserError("the http reward backend needs httpx: pip install 'rmteach[http]'") from None
    return httpx


async def gather_or_cancel(coros: Sequence[Any]) -> None:
    """Run the coroutines concurrently; the first failure cancels the others (no request keeps running behind
    it) and is raised once they have stopped."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
