"""`rmteach train`: policy gradient on TRL (RLOO or GRPO) with the paper's reward normalization, tracked live.

Data flow: prompts -> TRL's trainer samples K responses per prompt -> `ProxyReward` (the proxy RM on the raw
prompt text, its transform, the run's normalization) trains the policy; `GoldReward` (weight 0) is only
logged -> `TrackingCallback` writes metrics.jsonl and evaluates on held-out prompts.

Outputs under OUT: run.json (config, normalization, status, final metrics), metrics.jsonl (one line per
optimizer step, plus step 0), checkpoint-N/ (every `checkpoint_every` steps, resumable), final/ (the trained
policy and tokenizer), tensorboard/ (TRL's logs, when `report_to` has tensorboard).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

from . import io
from .config import to_plain
from .data import Prompt, load_prompts
from .errors import UserError
from .hf import check_model_ref, from_pretrained, load_tokenizer, quiet, resolve_device, torch_dtype
from .metrics import Normalization
from .progress import console, progress_bar
from .rewards import import_callable, load_reward_model
from .train_config import Layout, TrainConfig
from .train_tracking import (
    Evaluator,
    GoldReward,
    ProxyReward,
    TrackingCallback,
    TrainingStopped,
    fit_initial_normalization,
    normalization_from_report,
    read_metrics,
    truncate_metrics,
)

SCHEMA = "rmteach.train/1"
MARKER = "run.json"
METRICS = "metrics.jsonl"
OWNED = (MARKER, METRICS, "final", "tensorboard", "README.md")  # what --overwrite may delete (+ checkpoint-N)


def _use_cpu(cfg: TrainConfig) -> bool:
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    if cfg.device.startswith("cuda:"):
        raise UserError(f"device '{cfg.device}': train picks GPUs through CUDA_VISIBLE_DEVICES; use device: cuda")
    return resolve_device(cfg.device) == "cpu"


@contextmanager
def _quiet_third_party() -> Iterator[None]:
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
    fields = cls.__dataclass_fields__
    # transformers renamed `gradient_checkpointing` to `activation_checkpointing` (5.2x); accept either release
    kwargs["activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"] = (
        cfg.gradient_checkpointing)
    unknown = sorted(set(cfg.trl_args) - set(fields))
    if unknown:
        raise UserError(f"trl_args: {cls.__name__} has no field '{unknown[0]}'")
    kwargs.update(cfg.trl_args)
    try:
        with _quiet_third_party():
            return cls(**kwargs)
    except (ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"invalid {cls.__name__} settings: {first}") from None


# ----------------------------------------------------------------------------------------------------------
# Preflight and the plan (dry run)


def check_inputs(cfg: TrainConfig, *, strict: bool) -> list[str]:
    """What a run needs that is not here: local models and data, importable callables, vllm.

    `strict` (a real run) raises the first problem before any weights load; a dry run, often prepared for
    another machine, lists them as warnings.
    """
    problems: list[str] = []

    def check(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except UserError as e:
            if strict:
                raise
            problems.append(str(e))

    check(lambda: check_model_ref(cfg.policy.path, "policy"))
    for rm in [cfg.reward_model] + ([cfg.ground_truth] if cfg.ground_truth else []):
        what = f"reward model '{rm.name}'"
        check((lambda: check_model_ref(rm.path, what)) if rm.path else (lambda: import_callable(rm.callable, what)))
    if cfg.use_vllm:
        from trl.import_utils import is_vllm_available

        if not is_vllm_available():
            check(lambda: _raise("use_vllm: true, but vllm is not installed (pip install vllm)"))
    for key, path in (("train_prompts", cfg.train_prompts.path), ("eval_prompts", cfg.eval_prompts.path),
                      ("normalization.path", cfg.normalization.path)):
        if path and not Path(path).exists():
            problems.append(f"{key} not found: {path}")  # a real run reports these when it reads them
    return problems


def _raise(msg: str) -> None:
    raise UserError(msg)


def plan(cfg: TrainConfig, out: Path, steps: int | None, layout: Layout, trl_args: Any) -> dict[str, str]:
    """What a run would do, as plain data (printed by the dry run)."""
    rm, gt, n, k = cfg.reward_model, cfg.ground_truth, cfg.normalization, cfg.samples_per_prompt
    rloo = cfg.algorithm == "rloo"
    return {
        "trainer": f"trl.{'RLOO' if rloo else 'GRPO'}Trainer ({type(trl_args).__name__}, "
        + (f"normalize_advantages={cfg.rloo_normalize_advantages})" if rloo
           else f"scale_rewards={cfg.grpo_scale_rewards})"),
        "policy": cfg.policy.path,
        "proxy reward model": f"{rm.name}: {rm.path or rm.callable}"
        + (f" (x{rm.transform.factor:g} on {rm.transform.fraction:.0%} of prompts)" if rm.transform else ""),
        "ground truth": f"{gt.name}: {gt.path or gt.callable} (weight 0: logged only)" if gt else "none",
        "normalization": f"from {n.path}" if n.path
        else f"fitted at start on {n.samples_per_prompt} samples x {n.max_prompts or 'all'} train prompts",
        "prompts": f"train {cfg.train_prompts.path}; eval {cfg.eval_prompts.path} "
        f"({cfg.eval_samples_per_prompt} samples each)",
        "steps": str(steps) if steps is not None else f"{cfg.epochs} epochs (train prompts not readable here)",
        "batch": f"{cfg.prompts_per_step} prompts x {k} samples per step = {layout.world} process(es) x "
        f"{layout.per_device} completions x {layout.accumulation} accumulation",
        "optimizer": f"{cfg.optimizer}, lr {cfg.learning_rate:g} ({cfg.lr_scheduler}), KL coef {cfg.kl_coef:g}",
        "sampling": f"max_new_tokens {cfg.max_new_tokens}, temperature {cfg.temperature:g}, top_p {cfg.top_p:g}"
        + (f", vLLM ({cfg.vllm_mode})" if cfg.use_vllm else ", transformers generate"),
        "evaluation": f"steps 0, every {cfg.eval_every}, last" if cfg.eval_every else "steps 0 and last",
        "checkpoints": f"every {cfg.checkpoint_every} steps" if cfg.checkpoint_every else "none (no --resume)",
        "device": f"{'cpu' if trl_args.use_cpu else 'gpu'} here; weights {cfg.dtype}, bf16 autocast {cfg.bf16}",
        "outputs": f"{out}/ run.json metrics.jsonl final/" + (" tensorboard/" if cfg.report_to else ""),
    }


def print_plan(p: dict[str, Any], missing: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rmteach train --dry-run: nothing loaded, nothing written", show_header=False)
    table.add_column(justify="right", style="bold")
    table.add_column()
    for key, value in p.items():
        table.add_row(key, str(value))
    Console().print(table)
    for m in missing:
        console().print(f"[yellow]warning:[/yellow] {m} (needed at run time)")


# ----------------------------------------------------------------------------------------------------------
# The output folder: claim, resume, overwrite


def _checkpoint_step(path: Path) -> int:
    return int(path.name.split("-")[1])


def last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint in `out`, or None.

    The Trainer writes trainer_state.json last, and not atomically: a kill can leave it empty or cut off,
    so a checkpoint counts only when that file parses.
    """

    def complete(p: Path) -> bool:
        try:
            return "global_step" in json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False

    done = [p for p in out.glob("checkpoint-*") if p.name.split("-")[1].isdigit() and complete(p)]
    return max(done, key=_checkpoint_step) if done else None


def _read_marker(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _clear(out: Path) -> None:
    """Delete what an earlier run of rmteach train wrote (and only that)."""
    for name in OWNED:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in out.glob("checkpoint-*"):
        shutil.rmtree(p)


# ----------------------------------------------------------------------------------------------------------
# The command


def _dataset(tok: Any, prompts: list[Prompt]):
    """TRL's train set: the prompt as a user turn when the policy has a chat template, and the raw text."""
    from datasets import Dataset

    chat = bool(getattr(tok, "chat_template", None))
    return Dataset.from_list([
        {"prompt": [{"role": "user", "content": p.text}] if chat else p.text, "raw_prompt": p.text, "prompt_id": p.id}
        for p in prompts
    ])


def run_train(
    cfg: TrainConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """`rmteach train`: train `cfg.policy` with the proxy RM on TRL; write metrics.jsonl, checkpoints, final/.

    Arguments:
        cfg: the validated config.
        out: the output folder.
        resume: continue from the newest checkpoint in `out` (a finished run is returned as it is).
        overwrite: replace a different (or the same) run already in `out`.
        dry_run: validate, build the TRL config, print the plan; load no weights, write nothing.

    Returns:
        A summary: `status`, `steps`, `initial` and `final` metrics lines, `normalization`, `timings`.
    """
    t_start = time.perf_counter()
    out = Path(out)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    layout = cfg.layout(world)
    use_cpu = _use_cpu(cfg)

    if dry_run:
        missing = check_inputs(cfg, strict=False)
        steps = cfg.steps if cfg.epochs is None else None
        if cfg.epochs is not None and Path(cfg.train_prompts.path).exists():
            steps = cfg.total_steps(len(load_prompts(cfg.train_prompts)))
        args = build_trl_config(cfg, out, steps or 1, layout, use_cpu=use_cpu)
        p = plan(cfg, out, steps, layout, args)
        if args.process_index == 0:
            print_plan(p, missing)
        return {"dry_run": True, "plan": p, "missing": missing}

    train_prompts = _load(cfg, "train_prompts")
    eval_prompts = _load(cfg, "eval_prompts")
    if cfg.prompts_per_step > len(train_prompts):
        raise UserError(
            f"prompts_per_step ({cfg.prompts_per_step}) is larger than the train prompt set ({len(train_prompts)})"
        )
    steps = cfg.total_steps(len(train_prompts))
    args = build_trl_config(cfg, out, steps, layout, use_cpu=use_cpu)
    rank, is_main = args.process_index, args.process_index == 0
    if args.world_size != world:
        raise UserError(f"WORLD_SIZE says {world} processes but accelerate set up {args.world_size}")
    check_inputs(cfg, strict=True)

    # 1. The output folder: everyone reads its state, then the main process changes it.
    plain = to_plain(cfg)
    io.claim_out_dir(out, MARKER, plain, overwrite, "train")
    marker = None if overwrite else _read_marker(out)
    if marker and not resume:
        done = marker.get("status") == "finished"
        raise UserError(
            f"--out {out} already holds {'a finished' if done else 'an unfinished'} run of this config; pass "
            f"--resume to {'reuse' if done else 'continue'} it or --overwrite to start over"
        )
    if marker and marker.get("status") == "finished" and (out / "final").is_dir():
        if is_main:
            console().print(f"{out}: this run is already finished; nothing to do")
        return marker["summary"]
    ckpt = last_checkpoint(out) if (resume and marker) else None
    _barrier(args)
    records: list[dict[str, Any]] = []
    if is_main:
        if overwrite or not marker:
            _clear(out)
        out.mkdir(parents=True, exist_ok=True)
        if ckpt is not None:
            records = truncate_metrics(out / METRICS, _checkpoint_step(ckpt))
        elif (out / METRICS).exists():
            (out / METRICS).unlink()  # nothing to resume from: start over
    _barrier(args)

    # 2. Models: the policy once (sampled for the normalization, then handed to TRL), each RM once.
    import torch
    from transformers import AutoModelForCausalLM

    threads = torch.get_num_threads()
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    quiet()
    try:
        with _quiet_third_party():
            return _train(cfg, out, args, steps, train_prompts, eval_prompts, marker, ckpt, records,
                          rank=rank, world=world, is_main=is_main, t_start=t_start, auto_cls=AutoModelForCausalLM)
    finally:
        torch.set_num_threads(threads)


def _load(cfg: TrainConfig, key: str) -> list[Prompt]:
    try:
        return load_prompts(getattr(cfg, key))
    except UserError as e:
        raise UserError(f"{key}: {e}") from None


def _barrier(args: Any) -> None:
    if args.world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _train(cfg, out, args, steps, train_prompts, eval_prompts, marker, ckpt, records, *, rank, world, is_main,
           t_start, auto_cls) -> dict[str, Any]:
    """The part of `run_train` that loads weights and trains (split off to keep the setup readable)."""
    device = str(args.device)
    dtype = torch_dtype(cfg.dtype, device)
    tok = load_tokenizer(cfg.policy.path, "policy", padding_side="left", trust_remote_code=cfg.policy.trust_remote_code)
    model = from_pretrained(auto_cls, cfg.policy.path, "policy", dtype=dtype,
                            trust_remote_code=cfg.policy.trust_remote_code).to(device)
    proxy_rm = load_reward_model(cfg.reward_model, device=device, dtype=cfg.dtype)
    gold_rm = load_reward_model(cfg.ground_truth, device=device, dtype=cfg.dtype) if cfg.ground_truth else None
    t_loaded = time.perf_counter()

    # 3. Normalization: kept from the interrupted run, read from a report, or fitted on initial samples.
    ncfg = cfg.normalization
    if marker and marker.get("normalization"):
        n = marker["normalization"]
        norm, source = Normalization(n["mean"], n["std"]), n["source"]
    elif ncfg.path:
        norm, source = normalization_from_report(ncfg.path, cfg.reward_model, cfg.policy.path), str(ncfg.path)
    else:
        sampling = cfg.sampling(ncfg.samples_per_prompt, ncfg.seed)
        texts = [p.text for p in train_prompts[: ncfg.max_prompts]]
        norm = fit_initial_normalization(model, tok, proxy_rm, texts, sampling, rank=rank, world=world)
        source = "initial policy samples"
    normalization = {"mean": norm.mean, "std": norm.std, "source": source}
    t_norm = time.perf_counter()
    run_info = {"schema": SCHEMA, "config": to_plain(cfg), "normalization": normalization, "steps": steps,
                "processes": world, "status": "running"}
    if is_main:
        io.write_json(out / MARKER, run_info)

    # 4. TRL's trainer with the two reward functions; tracking as a callback.
    proxy, gold = ProxyReward(proxy_rm, norm), (GoldReward(gold_rm) if gold_rm else None)
    trainer = trainer_class(cfg.algorithm)(
        model=model, reward_funcs=[proxy] + ([gold] if gold else []), args=args,
        train_dataset=_dataset(tok, train_prompts), processing_class=tok,
    )
    _tidy_callbacks(trainer, out)
    evaluator = Evaluator([p.text for p in eval_prompts], proxy, gold,
                          cfg.sampling(cfg.eval_samples_per_prompt, cfg.seed))
    wall_offset = records[-1]["wall_time"] if records else 0.0
    start_step = _checkpoint_step(ckpt) if ckpt else 0
    bar = progress_bar(f"{cfg.algorithm} on {cfg.reward_model.name}", steps) if is_main else nullcontext(None)
    t_train = time.perf_counter()
    with bar as advance:
        if advance is not None and start_step:
            advance(start_step)
        callback = TrackingCallback(out / METRICS, evaluator, total_steps=steps, eval_every=cfg.eval_every,
                                    is_main=is_main, started=t_start, wall_offset=wall_offset, advance=advance)
        callback.attach(trainer)
        try:
            trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
        except (TrainingStopped, RuntimeError) as e:
            _fail(e, trainer, out, run_info, is_main)
            raise
    t_done = time.perf_counter()

    # 5. The final policy, then the marker that says the run is whole.
    trainer.save_model(str(out / "final"))
    history = read_metrics(out / METRICS) if is_main else []
    loop = t_done - t_train - callback.eval_seconds
    trained = steps - start_step
    summary = {
        "status": "finished", "out": str(out), "steps": steps, "normalization": normalization,
        "initial": history[0] if history else None, "final": callback.last,
        "timings": {
            "load_seconds": round(t_loaded - t_start, 3), "normalization_seconds": round(t_norm - t_loaded, 3),
            "train_seconds": round(t_done - t_train, 3), "eval_seconds": round(callback.eval_seconds, 3),
            "steps_per_second": round(trained / loop, 4) if loop > 0 else None,
        },
    }
    if is_main:
        io.write_json(out / MARKER, {**run_info, "status": "finished", "summary": summary})
        _print_summary(summary)
    return summary


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


def _tidy_callbacks(trainer: Any, out: Path) -> None:
    """Drop the stdout log printer (rmteach has its own progress) and send TensorBoard logs to OUT/tensorboard."""
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback):
            cb.logging_dir = str(out / "tensorboard")


def _fail(e: Exception, trainer: Any, out: Path, run_info: dict[str, Any], is_main: bool) -> None:
    """Record a stopped run in run.json and point at the last good checkpoint; diverged sampling -> TrainingStopped."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, RuntimeError):
        if "probability tensor contains" not in msg:
            return  # a bug or an environment failure: keep the traceback
        msg = f"step {trainer.state.global_step + 1}: sampling failed on non-finite probabilities ({msg})"
    ckpt = last_checkpoint(out)
    where = (f"last good checkpoint: {ckpt} (fix the cause, then --resume)" if ckpt
             else "no checkpoint was saved (set checkpoint_every to be able to resume)")
    if is_main:
        io.write_json(out / MARKER, {**run_info, "status": "failed", "error": msg})
    raise TrainingStopped(f"{msg}; {where}") from None


def _print_summary(summary: dict[str, Any]) -> None:
    first, last = summary["initial"] or {}, summary["final"] or {}
    change = ", ".join(
        f"eval {name} reward {first[key]:.4f} -> {last[key]:.4f}"
        for name, key in (("proxy", "eval_proxy_reward"), ("gold", "eval_gold_reward"))
        if first.get(key) is not None and last.get(key) is not None
    )
    console().print(f"trained {summary['steps']} steps ({summary['timings']['steps_per_second']} steps/s): "
                    f"{change}; wrote {summary['out']}/metrics.jsonl and final/")
