"""The HTTP face of a loaded reward model: OpenRLHF's `/get_reward`, vLLM's `/score` and `/v1/score`, `/health`.

  - `POST /get_reward`: OpenRLHF's remote RM format. `query` holds the texts the policy produced (prompt +
    response) and `prompts` the prompts they start with: the response is what follows the prompt. Answers
    `{"rewards": [...], "scores": [...]}` (both keys, as OpenRLHF's own `serve_rm` does).
  - `POST /score`, `POST /v1/score`: vLLM's score API. `text_1` the prompts, `text_2` the responses: two lists
    of the same length (pairs), or one prompt and a list of responses. Answers
    `{"object": "list", "model": ..., "data": [{"index": i, "object": "score", "score": s}, ...]}`.
  - `GET /health`: `{"status": "ok", "model": name}`.
Rewards are floats written with Python's repr, so they cross the wire exactly. A request passes `guard`'s
checks first (API key 401, body size 413, strict JSON 400, shape 422); every refusal is one line under 1 KB,
quoting at most 40 characters of one text, never the body. Parsing and scoring run on worker threads, never
on the event loop, so `/health` answers while a large request is parsed and scored; one model runs one
forward at a time (a lock), requests are scored one after another. A request the model cannot score gets
a 422 with the reason: a callable that raised, or a reward that is NaN or inf (JSON has no NaN; a `null` in
its place would be read as a reward by some clients, so the request fails, naming the first such item, and
retrying it would give the same answer).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from typing import Annotated, Any, Awaitable, Callable, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field

from ..backends.rewards import RewardModel
from ..core.errors import UserError
from .guard import MAX_BODY_MB, Refused, check_key, parse, read_body

Texts = Annotated[list[str], Field(fail_fast=True)]  # stops at the first bad item: one error, not millions (2.8+)


class RewardRequest(BaseModel):
    """OpenRLHF's body: `query` = prompt + response per item, `prompts` the prompts (other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")
    query: Texts
    prompts: Texts | None = None


class ScoreRequest(BaseModel):
    """vLLM's score body (other keys, such as `truncate_prompt_tokens`, are ignored)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    text_1: Union[str, Texts]
    text_2: Union[str, Texts]


def split_queries(query: list[str], prompts: list[str] | None) -> list[str]:
    """The responses of OpenRLHF queries: each query with its prompt cut off the front.

    >>> split_queries(["Q: 2+2? A: 4"], ["Q: 2+2? "])
    ['A: 4']
    """
    if prompts is None:
        raise UserError("needs 'prompts' beside 'query' (a reward model scores a prompt and a response)")
    if len(prompts) != len(query):
        raise UserError(f"'query' has {len(query)} items but 'prompts' has {len(prompts)}")
    for i, (q, p) in enumerate(zip(query, prompts)):
        if not q.startswith(p):
            raise UserError(f"query {i} does not start with prompt {i} ({p[:40]!r}): query = prompt + response")
    return [q[len(p) :] for q, p in zip(query, prompts)]


def score_pairs(text_1: str | list[str], text_2: str | list[str]) -> tuple[list[str], list[str]]:
    """vLLM's pairing of `text_1` with `text_2`: N to N, 1 to N, or 1 to 1.

    >>> score_pairs("p", ["a", "b"])
    (['p', 'p'], ['a', 'b'])
    """
    t2 = [text_2] if isinstance(text_2, str) else text_2
    t1 = [text_1] * len(t2) if isinstance(text_1, str) else text_1
    if len(t1) != len(t2):
        raise UserError(f"'text_1' has {len(t1)} items but 'text_2' has {len(t2)} (give one text_1, or as many)")
    return t1, t2


def finite_floats(rewards: Sequence[float], responses: Sequence[str]) -> list[float]:
    """Rewards as a list of floats; a `UserError` naming the first that is NaN or inf (JSON cannot carry it).

    >>> finite_floats([1.5, 2.0], ["a", "b"])
    [1.5, 2.0]
    >>> finite_floats([1.5, float("nan")], ["a", "b"])
    Traceback (most recent call last):
    rmteach.core.errors.UserError: the reward model returned nan for item 1 of 2 (response 'b'); 1 of 2 rewards \
are not finite, and JSON has no NaN or inf: no rewards are sent
    """
    out = [float(r) for r in rewards]
    bad = [i for i, r in enumerate(out) if not math.isfinite(r)]
    if bad:
        i = bad[0]
        raise UserError(f"the reward model returned {out[i]} for item {i} of {len(out)} (response "
                        f"{responses[i][:40]!r}); {len(bad)} of {len(out)} rewards are not finite, and JSON has no "
                        "NaN or inf: no rewards are sent")
    return out


def build_app(rm: RewardModel, name: str | None = None, *, max_body_mb: float = MAX_BODY_MB,
              api_key: str | None = None) -> Any:
    """A FastAPI app serving `rm` over both protocols.

    Arguments:
        rm: a loaded reward model (`rmteach.backends.rewards.load_reward_model`); the app does not close it.
        name: the served model name (`/health`, the score API's `model`); defaults to `rm.name`.
        max_body_mb: the largest request body accepted, in MB (10**6 bytes); larger ones get a 413.
        api_key: when set, the scoring endpoints need `Authorization: Bearer <api_key>` (401 otherwise);
            `/health` stays open.

    Returns:
        The app, ready for `uvicorn.run(app, host=..., port=...)`.
    """
    from fastapi import FastAPI
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    served, limit = name or rm.name, int(max_body_mb * 10**6)
    lock = threading.Lock()  # one model, one forward at a time

    def rewards(prompts: list[str], responses: list[str]) -> list[float]:
        """The model's finite rewards; a 422 when it cannot score these texts (a callable raised, a NaN)."""
        if not prompts:
            return []
        try:
            with lock:
                return finite_floats(rm.score(prompts, responses), responses)
        except UserError as e:
            raise Refused(422, str(e)) from e

    def openrlhf(raw: bytes) -> JSONResponse:
        body = parse(raw, RewardRequest)
        try:
            responses = split_queries(body.query, body.prompts)
        except UserError as e:
            raise Refused(400, str(e)) from None
        got = rewards(body.prompts or [], responses)
        return JSONResponse({"rewards": got, "scores": got})

    def vllm_score(raw: bytes) -> JSONResponse:
        body = parse(raw, ScoreRequest)
        if body.model is not None and body.model != served:
            raise Refused(404, f"the model '{body.model[:80]}' does not exist (serving '{served}')")
        try:
            prompts, responses = score_pairs(body.text_1, body.text_2)
        except UserError as e:
            raise Refused(400, str(e)) from None
        return JSONResponse({
            "id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()), "model": served,
            "data": [{"index": i, "object": "score", "score": r} for i, r in enumerate(rewards(prompts, responses))],
        })

    def endpoint(answer: Callable[[bytes], JSONResponse]) -> Callable[[Request], Awaitable[JSONResponse]]:
        """The route of `answer`: key and size checked on the event loop (cheap, before the body is read),
        then parsing, scoring and the reply's JSON on a worker thread, so the loop keeps answering meanwhile."""

        async def route(request: Request) -> JSONResponse:
            check_key(request.headers.get("authorization"), api_key)
            raw = await read_body(request.headers.get("content-length"), request.stream(), limit)
            return await run_in_threadpool(answer, raw)

        return route

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": served})

    async def refused(request: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, Refused)
        return JSONResponse({"detail": e.detail}, status_code=e.status, headers=e.headers)

    # Plain Starlette routes: each reads its own body (FastAPI's body parameters would read it whole first).
    app = FastAPI(title=f"rmteach serve-rm: {served}", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(Refused, refused)
    app.add_route("/health", health, methods=["GET"])
    app.add_route("/get_reward", endpoint(openrlhf), methods=["POST"])
    for path in ("/score", "/v1/score"):
        app.add_route(path, endpoint(vllm_score), methods=["POST"])
    return app
