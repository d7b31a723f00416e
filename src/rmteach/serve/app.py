"""The HTTP face of a loaded reward model: OpenRLHF's `/get_reward`, vLLM's `/score` and `/v1/score`, `/health`.

  - `POST /get_reward`: OpenRLHF's remote RM format. `query` holds the texts the policy produced (prompt +
    response) and `prompts` the prompts they start with: the response is what follows the prompt. Answers
    `{"rewards": [...], "scores": [...]}` (both keys, as OpenRLHF's own `serve_rm` does).
  - `POST /score`, `POST /v1/score`: vLLM's score API. `text_1` the prompts, `text_2` the responses: two lists
    of the same length (pairs), or one prompt and a list of responses. Answers
    `{"object": "list", "model": ..., "data": [{"index": i, "object": "score", "score": s}, ...]}`.
  - `GET /health`: `{"status": "ok", "model": name}`.
Rewards are floats written with Python's repr, so they cross the wire exactly; a reward that is NaN or inf
goes out as `null` (JSON has no NaN). One model runs one forward at a time: requests are scored one after
another on a worker thread, under a lock, so the server keeps accepting requests meanwhile. A request the
model cannot score (a callable that raises) gets a 422 with the message.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..backends.rewards import RewardModel
from ..core.errors import UserError


class RewardRequest(BaseModel):
    """OpenRLHF's body: `query` = prompt + response per item, `prompts` the prompts (other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")
    query: list[str]
    prompts: list[str] | None = None


class ScoreRequest(BaseModel):
    """vLLM's score body (other keys, such as `truncate_prompt_tokens`, are ignored)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    text_1: str | list[str]
    text_2: str | list[str]


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


def as_json_floats(rewards: Any) -> list[float | None]:
    """Rewards as JSON-able floats, NaN and inf as None.

    >>> as_json_floats([1.5, float("nan")])
    [1.5, None]
    """
    return [float(r) if math.isfinite(r) else None for r in rewards]


def build_app(rm: RewardModel, name: str | None = None) -> Any:
    """A FastAPI app serving `rm` over both protocols.

    Arguments:
        rm: a loaded reward model (`rmteach.backends.rewards.load_reward_model`); the app does not close it.
        name: the served model name (`/health`, the score API's `model`); defaults to `rm.name`.

    Returns:
        The app, ready for `uvicorn.run(app, host=..., port=...)`.
    """
    from fastapi import FastAPI, HTTPException
    from starlette.concurrency import run_in_threadpool

    served = name or rm.name
    lock = threading.Lock()  # one model, one forward at a time

    def forward(prompts: list[str], responses: list[str]) -> list[float | None]:
        with lock:
            return as_json_floats(rm.score(prompts, responses))

    async def scored(prompts: list[str], responses: list[str]) -> list[float | None]:
        try:
            return await run_in_threadpool(forward, prompts, responses) if prompts else []
        except UserError as e:  # the model refused these texts (a callable that raised): the client's to read
            raise HTTPException(status_code=422, detail=str(e)) from e

    app = FastAPI(title=f"rmteach serve-rm: {served}", docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": served}

    @app.post("/get_reward")
    async def get_reward(body: RewardRequest) -> dict[str, Any]:
        try:
            responses = split_queries(body.query, body.prompts)
        except UserError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        rewards = await scored(body.prompts or [], responses)
        return {"rewards": rewards, "scores": rewards}

    async def score(body: ScoreRequest) -> dict[str, Any]:
        if body.model is not None and body.model != served:
            raise HTTPException(status_code=404, detail=f"the model '{body.model}' does not exist (serving '{served}')")
        try:
            prompts, responses = score_pairs(body.text_1, body.text_2)
        except UserError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        rewards = await scored(prompts, responses)
        return {
            "id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()), "model": served,
            "data": [{"index": i, "object": "score", "score": r} for i, r in enumerate(rewards)],
        }

    app.post("/score")(score)
    app.post("/v1/score")(score)
    return app
