"""`rmteach rm train`: a Bradley-Terry reward model on TRL's `RewardTrainer`, from a base model and a mix of sets.

Steps: 1. read and draw the mix, check the base model and TRL's settings (no weights yet); 2. load the base
model under a scalar head and tokenize the pairs as `HFRewardModel` scores them (`rm.data`); 3. claim OUT,
write the drawn data and run.json; 4. train (metrics.jsonl, checkpoints, a progress bar); 5. save OUT/model
(LoRA merged), then score the held-out pairs with `load_reward_model` on that folder, exactly as `rmteach
evaluate` will, and write run.json's summary. Runs under `accelerate launch`: every process trains as TRL
has it, only the main process writes.

OUT: run.json, metrics.jsonl, data/{train,held_out}.jsonl, checkpoint-N/ (`checkpoint_every`), model/.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from ..backends.rewards import load_reward_model
from ..core import io, outdir
from ..core.blocks import RewardModelConfig
from ..core.config import to_plain
from ..core.data import write_jsonl
from ..core.errors import UserError
from ..core.hf import check_vocab, cpu_threads, from_pretrained, load_tokenizer, load_weights, max_positions, quiet
from ..core.lora import peft_config, save_trained
from ..core.metrics import offpolicy_accuracy
from ..core import run_dir
from ..core.progress import console, progress_bar
from ..core.trl import quiet_third_party, trl_config, use_cpu
from .callback import RMTracking
from .config import BaseModelConfig, RMTrainConfig
from .data import MixData, prepare_mix, tokenized

SCHEMA = "rmteach.rm.train/1"
MARKER, METRICS, MODEL = run_dir.MARKER, run_dir.METRICS, "model"


def needs_new_head(cfg: BaseModelConfig) -> bool:
    """Whether the base model gets a fresh scalar head; refuse one that is not a 1-output classifier unless
    `num_labels: 1` asks for the new head. Reads config.json only."""
    from transformers import AutoConfig

    mcfg = from_pretrained(AutoConfig, cfg.path, "base model", trust_remote_code=cfg.trust_remote_code)
    saved = [a for a in getattr(mcfg, "architectures", None) or [] if isinstance(a, str)]
    classifier = any("SequenceClassification" in a for a in saved)
    if classifier and getattr(mcfg, "num_labels", None) == 1:
        return False
    if cfg.num_labels == 1:
        return True
    what = f"a classifier with {mcfg.num_labels} outputs" if classifier else f"a {', '.join(saved) or 'model'}"
    raise UserError(f"base model at '{cfg.path}' is {what}, not a 1-output sequence classifier: set "
                    "base_model.num_labels: 1 to train it under a fresh scalar head (as the paper starts its RMs "
                    "from the SFT policy)")


def load_base(cfg: RMTrainConfig, new_head: bool) -> tuple[Any, Any]:
    """The base model as a 1-output `AutoModelForSequenceClassification` (float32; a new head seeded by
    `cfg.seed`) and its tokenizer (with a pad token)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    b = cfg.base_model
    tok = load_tokenizer(b.path, "base model", padding_side="right", trust_remote_code=b.trust_remote_code)
    with torch.random.fork_rng(devices=[]):  # the new head depends on the seed only, and leaves torch's RNG alone
        torch.manual_seed(cfg.seed)
        model = load_weights(AutoModelForSequenceClassification, b.path, "base model", new_head_ok=new_head,
                             num_labels=1, dtype=torch.float32, trust_remote_code=b.trust_remote_code,
                             hint="point base_model.path at a model saved with save_pretrained")
    check_vocab(tok, model, b.path, "base model")
    model.config.pad_token_id = tok.pad_token_id  # the classifier reads the last token before padding
    return model, tok


def reward_config(cfg: RMTrainConfig, out: Path, steps: int, *, evaluates: bool) -> Any:
    """TRL's `RewardConfig` of a run; `trl_args` are applied last. Bad values -> `UserError`."""
    from trl import RewardConfig

    kwargs: dict[str, Any] = dict(
        output_dir=str(out), seed=cfg.seed, data_seed=cfg.seed, max_steps=steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm, optim="adamw_torch",
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=None,  # `rm.data.tokenized` has dropped (and counted) the long pairs already
        disable_dropout=True, logging_steps=cfg.log_every,
        logging_nan_inf_filter=False,  # a NaN loss must reach `RMTracking`, not be averaged away
        eval_strategy="steps" if evaluates else "no", eval_steps=cfg.eval_every or steps,
        save_strategy="steps" if cfg.checkpoint_every else "no", save_steps=cfg.checkpoint_every or steps,
        save_total_limit=cfg.keep_checkpoints, report_to=list(cfg.report_to), disable_tqdm=True,
        dataloader_num_workers=0, ddp_find_unused_parameters=False, use_cpu=use_cpu(cfg.device), bf16=cfg.bf16,
        fp16=False,
    )
    return trl_config(RewardConfig, kwargs, gradient_checkpointing=cfg.gradient_checkpointing, trl_args=cfg.trl_args)


def clear(out: Path, *, remove_empty: bool = False) -> None:
    """Delete what an earlier `rm train` wrote in `out` (its manifest's names only: a folder holding anything
    else is refused); then `out` itself if asked and empty."""
    run_dir.clear(out, command="rm train", remove_empty=remove_empty)


def run_rm_train(cfg: RMTrainConfig, out: str | Path, *, resume: bool = False,
                 overwrite: bool = False) -> dict[str, Any]:
    """`rmteach rm train`: train a Bradley-Terry RM with TRL; write OUT/model, metrics.jsonl and run.json.

    Bad input (a mix that does not add up, a set too small, a base model that is not a classifier) fails
    before `out` is touched. A run that stops in training keeps run.json (status "failed") and its checkpoints.

    Arguments:
        cfg: the validated config.
        out: the output folder.
        resume: continue from the newest checkpoint in `out` (a finished run is returned as it is).
        overwrite: replace a different (or the same) run already in `out`.

    Returns:
        The summary: status, steps, pairs, held-out accuracy, the last metrics line, timings.
    """
    t0 = time.perf_counter()
    out = Path(out)
    # 1. Data, base model, TRL settings: everything checkable before weights load or `out` changes.
    mix = prepare_mix(cfg)
    new_head = needs_new_head(cfg.base_model)
    lora = peft_config(cfg.lora, "SEQ_CLS")  # a sequence classifier: its head is trained in full
    world = int(os.environ.get("WORLD_SIZE", "1"))
    probe = reward_config(cfg, out, cfg.steps(len(mix.train), world), evaluates=bool(mix.held_out))  # settings
    io.claim_out_dir(out, MARKER, to_plain(cfg), overwrite, "rm train")
    marker = None if overwrite else run_dir.read_marker(out)
    if marker and not resume:
        done = marker.get("status") == "finished"
        raise UserError(f"--out {out} already holds {'a finished' if done else 'an unfinished'} run of this config; "
                        f"pass --resume to {'reuse' if done else 'continue'} it or --overwrite to start over")
    if marker and marker.get("status") == "finished" and (out / MODEL).is_dir():
        if probe.process_index == 0:
            console().print(f"{out}: this run is already finished; nothing to do")
        return marker["summary"]
    ckpt = run_dir.last_checkpoint(out) if (resume and marker) else None

    quiet()
    with cpu_threads(cfg.cpu_threads), quiet_third_party():
        # 2. The model and the tokenized pairs.
        model, tok = load_base(cfg, new_head)
        limit = min(cfg.max_length, max_positions(model) or cfg.max_length)
        train_ds = tokenized(tok, mix.train, limit, "training")
        eval_ds = tokenized(tok, mix.held_out, limit, "held-out") if mix.held_out else None
        steps = cfg.steps(len(train_ds), world)
        args = reward_config(cfg, out, steps, evaluates=eval_ds is not None)
        return _train(cfg, out, args, model, tok, train_ds, eval_ds, mix, lora,
                      marker=marker, ckpt=ckpt, overwrite=overwrite, new_head=new_head, t0=t0)


def _train(cfg: RMTrainConfig, out: Path, args: Any, model: Any, tok: Any, train_ds: Any, eval_ds: Any,
           mix: MixData, lora: Any, *, marker: dict | None, ckpt: Path | None, overwrite: bool, new_head: bool,
           t0: float) -> dict[str, Any]:
    """Steps 3-5 of `run_rm_train`: the part that writes to `out`."""
    from transformers.trainer_callback import PrinterCallback
    from trl import RewardTrainer

    is_main, steps = args.process_index == 0, args.max_steps
    fresh, created = ckpt is None and not marker, not out.exists()
    run_info = {"schema": SCHEMA, "config": to_plain(cfg), "status": "running", "steps": steps,
                "processes": args.world_size, "base_model": {"path": cfg.base_model.path, "new_head": new_head},
                "data": {"train": len(train_ds), "held_out": len(eval_ds) if eval_ds is not None else 0,
                         "mix": mix.drawn}}
    # 3. The output folder: cleared and written by the main process only.
    if is_main:
        if overwrite or not marker:
            clear(out)
        outdir.claim(out, "rm train")
        records = run_dir.truncate_metrics(out / METRICS, run_dir.checkpoint_step(ckpt)) if ckpt else []
        if not ckpt and (out / METRICS).exists():
            (out / METRICS).unlink()  # nothing to resume from: start over
        write_jsonl(out / "data" / "train.jsonl", mix.train)
        write_jsonl(out / "data" / "held_out.jsonl", mix.held_out)
        io.write_json(out / MARKER, run_info)
    else:
        records = run_dir.read_metrics(out / METRICS) if ckpt else []
    _barrier(args)

    # 4. TRL's RewardTrainer; the curve and the progress bar as a callback.
    trainer = RewardTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                            processing_class=tok, peft_config=lora)
    trainer.remove_callback(PrinterCallback)
    start = run_dir.checkpoint_step(ckpt) if ckpt else 0
    bar = progress_bar(f"training the RM on {len(train_ds)} pairs", steps) if is_main else nullcontext(None)
    t_train = time.perf_counter()
    with bar as advance:
        if advance is not None and start:
            advance(start)
        tracking = RMTracking(out / METRICS, steps=steps, evaluates=eval_ds is not None, advance=advance,
                              wall_offset=records[-1]["wall_time"] if records else 0.0)
        trainer.add_callback(tracking)
        try:
            trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
        except UserError as e:
            if is_main and fresh and not run_dir.stepped(out):
                clear(out, remove_empty=created)  # stopped in its first step: leave no trace
            elif is_main:
                io.write_json(out / MARKER, {**run_info, "status": "failed", "error": str(e)})
            raise
    t_done = time.perf_counter()

    # 5. The model folder `evaluate`, `train` and `study` take as it is; the held-out accuracy it gives.
    save_trained(trainer, tok, out / MODEL, merge=lora is not None, is_main=is_main)
    _barrier(args)
    if not is_main:
        return {"status": "finished", "out": str(out)}
    held = held_out_accuracy(out / MODEL, mix.held_out, cfg, str(args.device))
    held["trl_eval_accuracy"] = tracking.last.get("eval_accuracy")
    summary = {"status": "finished", "out": str(out), "steps": steps, "train_pairs": len(train_ds),
               "held_out": held, "final": tracking.last, "model": str(out / MODEL),
               "timings": {"total_seconds": round(time.perf_counter() - t0, 3),
                           "train_seconds": round(t_done - t_train, 3)}}
    io.write_json(out / MARKER, {**run_info, "status": "finished", "summary": summary})
    acc = f"held-out accuracy {held['accuracy']:.3f} on {held['pairs']} pairs; " if held["pairs"] else ""
    console().print(f"trained {steps} steps: {acc}wrote {out / MODEL} and {out / METRICS}")
    return summary


def held_out_accuracy(model_dir: Path, rows: list[dict], cfg: RMTrainConfig, device: str) -> dict[str, Any]:
    """Pairwise accuracy of the saved RM on the held-out pairs, scored by `load_reward_model` as `evaluate` does."""
    if not rows:
        return {"pairs": 0, "accuracy": None}
    rm = load_reward_model(RewardModelConfig(name="held_out", path=str(model_dir), batch_size=cfg.batch_size,
                                             max_length=cfg.max_length), device=device)
    try:
        prompts = [r["prompt"] for r in rows]
        chosen = rm.score(prompts, [r["chosen"] for r in rows])  # (n,)
        rejected = rm.score(prompts, [r["rejected"] for r in rows])  # (n,)
    finally:
        rm.close()
    return {"pairs": len(rows), "accuracy": offpolicy_accuracy(chosen, rejected)}


def _barrier(args: Any) -> None:
    if args.world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()
