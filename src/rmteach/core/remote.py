"""`RemoteRMConfig`: a reward model served elsewhere, reached over HTTP (see `backends.reward_http`).

Two wire formats (`protocol`):
  - `openrlhf`: OpenRLHF's remote RM (`openrlhf.cli.serve_rm`, `rmteach serve-rm`'s `/get_reward`): POST
    `{"query": [prompt + response, ...], "prompts": [...]}`, answer `{"rewards": [...]}`;
  - `score`: vLLM's OpenAI-style score API (`vllm serve --task score`, `rmteach serve-rm`'s `/v1/score`): POST
    `{"model": ..., "text_1": [prompts], "text_2": [responses]}`, answer `{"data": [{"index": i, "score": s}]}`.
`url` is the full endpoint, path included (`http://host:5000/get_reward`, `http://host:8000/v1/score`).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from .config import Strict


class RemoteRMConfig(Strict):
    """Where a served reward model lives, how it is spoken to, and how hard to try.

    >>> RemoteRMConfig(url="http://127.0.0.1:5000/get_reward").batch_size
    64
    """

    # -- The endpoint ---------------------------------------------------------------------------------------
    url: str = Field(..., description="the endpoint, path included: http(s)://host:port/get_reward or .../v1/score")
    protocol: Literal["openrlhf", "score"] = Field(
        "openrlhf", description="openrlhf: {query, prompts} -> {rewards}; score: vLLM's {text_1, text_2} -> {data}")
    model: str | None = Field(None, description="score protocol: the served model's name (its `model` field)")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra HTTP headers; '${VAR}' in a value is read from the environment "
        "when the model is loaded (keep tokens out of config files, which reports copy)")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="the environment variable holding the server's API "
        "key (`rmteach serve-rm`'s api_key_env), sent as `Authorization: Bearer KEY`; read when the model is loaded")

    # -- How requests are sent -----------------------------------------------------------------------------
    batch_size: int = Field(64, ge=1, description="(prompt, response) pairs per request")
    concurrency: int = Field(8, ge=1, description="requests in flight at once")
    timeout_s: float = Field(60.0, gt=0.0, description="seconds one request may take")
    retries: int = Field(3, ge=0, description="retries of a request after a connection error, timeout, 5xx or 429")
    backoff_s: float = Field(0.5, ge=0.0, description="wait before the first retry; doubles at each retry")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must look like http://host:port/path or https://... (got {v!r})")
        return v

    @model_validator(mode="after")
    def _one_authorization(self) -> "RemoteRMConfig":
        if self.api_key_env is not None and any(k.lower() == "authorization" for k in self.headers):
            raise ValueError("give the API key either as api_key_env or as an Authorization header, not both")
        return self
