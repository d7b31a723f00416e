"""TRL plumbing shared by the commands that train through TRL (`rmteach train`, `rmteach rm train`).

A TRL config built from rmteach's settings with the user's `trl_args` checked against the config class's own
field types, the `report_to` loggers checked, deprecation noise from TRL inside transformers silenced, and the
CPU-or-GPU choice made from a device string. TRL is imported only inside the functions that need it.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from .errors import UserError, first_line
from .hf import resolve_device


def use_cpu(device: str) -> bool:
    """Whether a run on `device` trains on the CPU (accelerate's `ACCELERATE_USE_CPU`, or no GPU for `device`).

    TRL's trainers take GPUs through CUDA_VISIBLE_DEVICES, so `cuda:N` is refused with the way to ask for it.
    """
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    if device.startswith("cuda:"):
        raise UserError(f"device '{device}': training picks GPUs through CUDA_VISIBLE_DEVICES; use device: cuda")
    return resolve_device(device) == "cpu"


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Silence deprecation notices that TRL 1.x triggers inside transformers 5.x (not ours to fix), and peft's
    notice that it fixed `fan_in_fan_out` itself for GPT-2's Conv1D layers (LoRA works either way)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed in v6", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"fan_in_fan_out is set to False", category=UserWarning)
        yield


def trl_config(cls: type, kwargs: dict[str, Any], *, gradient_checkpointing: bool, trl_args: dict[str, Any]) -> Any:
    """`cls(**kwargs)` for a TRL config class (`RLOOConfig`, `GRPOConfig`, `RewardConfig`), with the user's
    `trl_args` applied last (unknown fields and wrong types refused) and the `report_to` loggers checked; any
    value TRL or transformers rejects is a `UserError` naming the class."""
    fields = cls.__dataclass_fields__
    # transformers renamed `gradient_checkpointing` to `activation_checkpointing` (5.2x); accept either release
    kwargs["activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"] = (
        gradient_checkpointing)
    unknown = sorted(set(trl_args) - set(fields))
    if unknown:
        raise UserError(f"trl_args: {cls.__name__} has no field '{unknown[0]}'")
    kwargs.update(checked_trl_args(cls, trl_args))
    check_report_to(kwargs["report_to"])
    try:
        with quiet_third_party():
            return cls(**kwargs)
    except (ValueError, TypeError) as e:
        first = first_line(e)
        raise UserError(f"invalid {cls.__name__} settings: {first}") from None


def checked_trl_args(cls: type, trl_args: dict[str, Any]) -> dict[str, Any]:
    """`trl_args` validated against the field types of TRL's config class (its dataclass annotations).

    TRL does not check types: `num_train_epochs: "x"` would fail deep inside the trainer. Values are coerced
    as pydantic does (`"3"` -> 3 for an int field); a value of the wrong type is a `UserError` naming the field.
    """
    import typing

    from pydantic import TypeAdapter, ValidationError

    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in trl_args.items():
        try:
            out[key] = TypeAdapter(hints[key]).validate_python(value)
        except ValidationError as e:
            err = e.errors()[0]
            raise UserError(f"trl_args.{key}: {err['msg']} (got {str(value)[:60]!r})") from None
        except Exception:  # noqa: BLE001 - a type pydantic cannot check: TRL gets the value as it is
            out[key] = value
    return out


def check_report_to(report_to: Any, *, installed: bool = False) -> None:
    """Every `report_to` logger must be one transformers knows (and, with `installed`, installed here)."""
    from transformers.integrations.integration_utils import (INTEGRATION_TO_CALLBACK,
                                                             get_available_reporting_integrations)

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    for name in names:
        if name in ("all", "none"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise UserError(f"report_to: unknown logger '{name}' (allowed: {', '.join(INTEGRATION_TO_CALLBACK)}; "
                            "[] for none)")
        if installed and name not in get_available_reporting_integrations():
            raise UserError(f"report_to: '{name}' is not installed here (install it, or drop it from report_to)")
