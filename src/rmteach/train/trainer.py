"""TRL wiring of `rmteach train`: the `RLOOConfig`/`GRPOConfig` of a run, the trainer class, its data set.

Nothing in TRL's training loop is changed: the trainer class only makes the shuffle resumable
(`_EpochSeeded`), and the callbacks are tidied (rmteach prints its own progress).
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..core.chat import as_turns
from ..core.data import Prompt, extras_of
from ..core.errors import UserError, first_line
from ..core.hf import resolve_device
from .config import Layout, TrainConfig


def use_cpu(cfg: TrainConfig) -> bool:
    """Whether this run trains on the CPU (accelerate's `ACCELERATE_USE_CPU`, or no GPU for `device`)."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    if cfg.device.startswith("cuda:"):
        raise UserError(f"device '{cfg.device}': train picks GPUs through CUDA_VISIBLE_DEVICES; use device: cuda")
    return resolve_device(cfg.device) == "cpu"


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Silence deprecation notices that TRL 1.x triggers inside transformers 5.x (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed in v6", category=FutureWarning)
        yield


def build_trl_config(cfg: TrainConfig, out: Path, steps: int, layout: Layout, *, use_cpu: bool) -> Any:
    """The `RLOOConfig` or `GRPOConfig` of a run; `trl_args` are applied last. Bad TRL values -> `UserError`."""
    from trl import GRPOConfig, RLOOConfig

    kwargs: dict[str, Any] = dict(
        output_dir=str(out),
        seed=cfg.seed,
        max_steps=steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim={"adamw": "adamw_torch", "sgd": "sgd"}[cfg.optimizer],
        per_device_train_batch_size=layout.per_device,
        gradient_accumulation_steps=layout.accumulation,
        num_generations=cfg.samples_per_prompt,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=0,
        beta=cfg.kl_coef,
        reward_weights=[1.0, 0.0] if cfg.ground_truth else [1.0],  # the ground truth never trains
        disable_dropout=True,  # logprobs of sampling, training and the reference must agree
        remove_unused_columns=False,  # the reward functions read the raw prompt text column
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss must reach the tracking callback, not be averaged away
        report_to=list(cfg.report_to),
        save_strategy="steps" if cfg.checkpoint_every else "no",
        save_steps=cfg.checkpoint_every or 500,
        save_total_limit=cfg.keep_checkpoints,
        eval_strategy="no",  # rmteach evaluates itself (TrackingCallback): own RNG, no loss forward passes
        disable_tqdm=True,  # rmteach shows one rich progress bar
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # a text-only causal LM uses every parameter
        use_cpu=use_cpu,
        bf16=cfg.bf16,
        fp16=False,
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode,
    )
    if cfg.algorithm == "rloo":
        cls = RLOOConfig
        kwargs["normalize_advantages"] = cfg.rloo_normalize_advantages
    else:
        cls = GRPOConfig
        kwargs["scale_rewards"] = cfg.grpo_scale_rewards
    return trl_config(cls, kwargs, gradient_checkpointing=cfg.gradient_checkpointing, trl_args=cfg.trl_args)


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


def train_dataset(tok: Any, prompts: list[Prompt]):
    """TRL's train set: what the policy is prompted with, rmteach's view of each prompt, the set's extra columns.

    `prompt` is TRL's input: with a chat template the conversation (a string prompt as one user turn), which TRL
    renders with the generation prompt; without one the text `format_prompt` makes. `rmteach_text`,
    `rmteach_chat` (None for a string prompt) and `rmteach_id` give the reward functions the prompt as rmteach
    loaded it (`TRLReward`); every extra column of the prompt set follows, which TRL passes to reward functions
    as keyword arguments. Raises `UserError` for an extra column whose values have no common type.
    """
    import pyarrow as pa
    from datasets import Dataset

    from ..core.hf import format_prompt
    from .rewards import CHAT_COLUMN, ID_COLUMN, TEXT_COLUMN

    chat = bool(getattr(tok, "chat_template", None))
    extras = extras_of(prompts)  # {column: one value per prompt}
    rows = []
    for i, p in enumerate(prompts):
        rows.append({"prompt": as_turns(p.input) if chat else format_prompt(tok, p.input), TEXT_COLUMN: p.text,
                     CHAT_COLUMN: None if p.chat is None else p.input, ID_COLUMN: p.id,
                     **{c: vals[i] for c, vals in extras.items()}})
    try:
        return Dataset.from_list(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise UserError(f"train_prompts: the extra columns ({', '.join(extras)}) must each hold values of one type "
                        f"for TRL's data set ({first_line(e)})") from None


class _EpochSeeded:
    """A TRL `RepeatSampler` whose shuffle depends on (seed, epoch) only, not on how many epochs this process ran.

    TRL's sampler draws each epoch's permutation from one generator that starts over in a resumed process, so
    a run resumed in epoch e would replay epoch 0's order. Transformers calls `set_epoch` before each epoch.
    """

    def __init__(self, inner: Any) -> None:
        self.inner, self.epoch = inner, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if self.inner.shuffle:
            self.inner.generator.manual_seed((self.inner.seed or 0) * 1_000_003 + self.epoch)
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def trainer_class(algorithm: str) -> type:
    """TRL's `RLOOTrainer` or `GRPOTrainer`, with a resumable shuffle (`_EpochSeeded`); nothing else changed."""
    from trl import GRPOTrainer, RLOOTrainer

    base = RLOOTrainer if algorithm == "rloo" else GRPOTrainer

    class Trainer(base):
        def _get_train_sampler(self, dataset: Any = None) -> Any:
            return _EpochSeeded(super()._get_train_sampler(dataset))

    Trainer.__name__ = Trainer.__qualname__ = base.__name__
    return Trainer


def tidy_callbacks(trainer: Any, out: Path) -> None:
    """Drop the stdout log printer (rmteach has its own progress) and send TensorBoard logs to OUT/tensorboard."""
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback):
            cb.logging_dir = str(out / "tensorboard")
