"""TRL wiring of `rmteach train`: the `RLOOConfig`/`GRPOConfig` of a run, the trainer class, its data set.

Nothing in TRL's training loop is changed: the trainer class only makes the shuffle resumable
(`_EpochSeeded`), and the callbacks are tidied (rmteach prints its own progress).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ..core.chat import as_turns
from ..core.data import Prompt, extras_of
from ..core.errors import UserError, first_line
from ..core.trl import trl_config
from .config import Layout, TrainConfig


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

    from ..core.chat import format_prompt
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
