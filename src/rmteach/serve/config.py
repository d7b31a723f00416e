"""`ServeConfig`: which reward model `rmteach serve-rm` loads, on what device, where it listens, what it accepts."""

from __future__ import annotations

from pydantic import Field

from ..core.blocks import Device, Dtype, RewardModelConfig
from ..core.config import Strict
from .guard import MAX_BODY_MB


class ServeConfig(Strict):
    """`rmteach serve-rm`: one reward model (any backend, its transform included) served over HTTP.

    >>> ServeConfig(reward_model={"name": "gold", "callable": "m:f"}).port
    8000
    """

    reward_model: RewardModelConfig = Field(..., description="the RM to serve; its name is the served model name")
    device: Device = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    dtype: Dtype = Field("float32", description="weights dtype of an HF reward model")
    host: str = Field("127.0.0.1", min_length=1, description="address to listen on (0.0.0.0: every interface)")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    max_body_mb: float = Field(MAX_BODY_MB, gt=0.0, le=4096.0, description="largest request body in MB (10**6 "
                               "bytes); a larger one is refused with 413 before it is read")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="the environment variable holding an API key: "
        "then the scoring endpoints need `Authorization: Bearer KEY` (401 otherwise); /health stays open")

