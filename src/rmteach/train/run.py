"""`rmteach train`: policy gradient on TRL (RLOO or GRPO) with the paper's reward normalization, tracked live.

Data flow: prompts -> TRL's trainer samples K responses per prompt -> the proxy reward (`train.rewards`: the
proxy RM on the raw prompt text, its transform, the run's normalization) trains the policy; the ground truth
(weight 0) is only logged -> `TrackingCallback` writes metrics.jsonl and evaluates on held-out prompts.

Outputs under OUT: run.json (config, normalization, status, final metrics), metrics.jsonl (one line per
optimizer step, plus step 0), checkpoint-N/ (every `checkpoint_every` steps, resumable), final/ (the trained
policy and tokenizer), tensorboard/ (TRL's logs, when `report_to` has tensorboard).
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.rewards import load_reward_model
from ..core import io, outdir, run_dir
from ..core.config import to_plain
from ..core.data import Prompt, load_prompts
from ..core.errors import ItemError, UserError, first_line
from ..core.hf import check_context, cpu_threads, load_causal_lm, quiet, torch_dtype
from ..core.lora import peft_config, save_trained
from ..core.metrics import Normalization
from ..core.progress import console, progress_bar
from ..core.trl import quiet_third_party, use_cpu
from .callback import TrackingCallback
from .config import TrainConfig
from .evaluator import Evaluator
from .normalization import fit_initial_normalization, normalization_from_report
from .plan import check_inputs, plan, print_plan
from .rewards import TrainingStopped, gold_reward, proxy_reward
from .trainer import build_trl_config, tidy_callbacks, train_dataset, trainer_class

SCHEMA = "rmteach.train/1"


@dataclass
class _Start:
    """Where a run starts from: set up by `run_train` before any weights load, read by `_train`."""

    cfg: TrainConfig
    out: Path
    args: Any  # the TRL config
    steps: int
    train_prompts: list[Prompt]
    eval_prompts: list[Prompt]
    marker: dict[str, Any] | None  # run.json of the interrupted run being resumed
    ckpt: Path | None  # the checkpoint it resumes from
    records: list[dict[str, Any]] = field(default_factory=list)  # its metrics.jsonl lines up to `ckpt`
    t_start: float = 0.0

    @property
    def is_main(self) -> bool:
        return self.args.process_index == 0


def run_train(
    cfg: TrainConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """`rmteach train`: train `cfg.policy` with the proxy RM on TRL; write metrics.jsonl, checkpoints, final/.

    Bad input fails before `out` is touched (the models and the normalization are ready before it is
    cleared), or, found during the first step (a reward function that raises on its first samples), with
    `out` left as it was. A run that stops later keeps run.json (status "failed") and its checkpoints.

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
    if dry_run:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        layout = cfg.layout(world)
        missing = check_inputs(cfg, strict=False)
        steps = cfg.steps if cfg.epochs is None else None
        if cfg.epochs is not None and cfg.train_prompts.path and Path(cfg.train_prompts.path).exists():
            steps = cfg.total_steps(len(_load(cfg, "train_prompts")))
        args = build_trl_config(cfg, out, steps or 1, layout, use_cpu=use_cpu(cfg.device))
        p = plan(cfg, out, steps, layout, args)
        if args.process_index == 0:
            print_plan(p, missing)
        return {"dry_run": True, "plan": p, "missing": missing}

    train_prompts, eval_prompts, steps, args = preflight(cfg, out)

    # 1. The output folder: everyone reads its state; it is changed only once the models are ready.
    io.claim_out_dir(out, run_dir.MARKER, to_plain(cfg), overwrite, "train")
    marker = None if overwrite else run_dir.read_marker(out)
    if marker and not resume:
        done = marker.get("status") == "finished"
        raise UserError(
            f"--out {out} already holds {'a finished' if done else 'an unfinished'} run of this config; pass "
            f"--resume to {'reuse' if done else 'continue'} it or --overwrite to start over"
        )
    if marker and marker.get("status") == "finished" and (out / "final").is_dir():
        if args.process_index == 0:
            console().print(f"{out}: this run is already finished; nothing to do")
        return marker["summary"]
    start = _Start(cfg, out, args, steps, train_prompts, eval_prompts, marker,
                   ckpt=run_dir.last_checkpoint(out) if (resume and marker) else None, t_start=t_start)
    fresh, created = start.ckpt is None and not marker, not out.exists()  # fresh: nothing in `out` to keep

    quiet()
    with cpu_threads(cfg.cpu_threads), quiet_third_party():
        loaded = _load_models(start)
        _barrier(args)
        if start.is_main:
            if overwrite or not marker:
                run_dir.clear(out)  # only what a train run wrote; a folder holding anything else is refused
            outdir.claim(out, "train")
            if start.ckpt is not None:
                start.records = run_dir.truncate_metrics(out / run_dir.METRICS, run_dir.checkpoint_step(start.ckpt))
            elif (out / run_dir.METRICS).exists():
                (out / run_dir.METRICS).unlink()  # nothing to resume from: start over
        _barrier(args)
        try:
            return _train(start, loaded)
        except UserError:
            if start.is_main and fresh and not run_dir.stepped(out):
                run_dir.clear(out, remove_empty=created)  # stopped before its first step: leave no trace
            raise


def preflight(cfg: TrainConfig, out: Path) -> tuple[list[Prompt], list[Prompt], int, Any]:
    """Everything a run checks before loading weights: prompt sets, batch layout, TRL settings, models and
    callables. Returns (train prompts, eval prompts, steps, the TRL config)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    layout = cfg.layout(world)
    train_prompts = _load(cfg, "train_prompts")
    eval_prompts = _load(cfg, "eval_prompts")
    if cfg.prompts_per_step > len(train_prompts):
        raise UserError(
            f"prompts_per_step ({cfg.prompts_per_step}) is larger than the train prompt set ({len(train_prompts)})"
        )
    steps = cfg.total_steps(len(train_prompts))
    args = build_trl_config(cfg, out, steps, layout, use_cpu=use_cpu(cfg.device))
    if args.world_size != world:
        raise UserError(f"WORLD_SIZE says {world} processes but accelerate set up {args.world_size}")
    check_inputs(cfg, strict=True)
    return train_prompts, eval_prompts, steps, args


def _load(cfg: TrainConfig, key: str) -> list[Prompt]:
    try:
        return load_prompts(getattr(cfg, key))
    except UserError as e:
        raise UserError(f"{key}: {e}") from None


def _barrier(args: Any) -> None:
    if args.world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _normalization(s: _Start, model: Any, tok: Any, proxy_rm: Any) -> tuple[Normalization, str]:
    """Kept from the interrupted run, read from a report, or fitted on the initial policy's samples."""
    cfg, ncfg = s.cfg, s.cfg.normalization
    if s.marker and s.marker.get("normalization"):
        n = s.marker["normalization"]
        return Normalization(n["mean"], n["std"]), n["source"]
    if ncfg.path:
        return normalization_from_report(ncfg.path, cfg.reward_model, cfg.policy.path), str(ncfg.path)
    sampling = cfg.sampling(ncfg.samples_per_prompt, ncfg.seed)
    first = s.train_prompts[: ncfg.max_prompts]
    norm = fit_initial_normalization(model, tok, proxy_rm, first, sampling, rank=s.args.process_index,
                                     world=s.args.world_size)
    return norm, "initial policy samples"


@dataclass
class _Loaded:
    """The models of a run and its normalization, ready before `out` is touched."""

    model: Any
    tok: Any
    proxy_rm: Any
    gold_rm: Any
    norm: Normalization
    source: str
    t_loaded: float
    t_norm: float


def _load_models(s: _Start) -> _Loaded:
    """The policy (checked to be a whole causal LM, every prompt fitting its positions), each RM once, and the
    normalization (which scores the proxy on the initial policy's samples)."""
    # 2. Models: the policy once (sampled for the normalization, then handed to TRL), each RM once.
    cfg = s.cfg
    device = str(s.args.device)
    model, tok = load_causal_lm(cfg.policy.path, "policy", padding_side="left", device=device,
                                dtype=torch_dtype(cfg.dtype, device), trust_remote_code=cfg.policy.trust_remote_code)
    for key, prompts in (("train_prompts", s.train_prompts), ("eval_prompts", s.eval_prompts)):
        try:
            check_context(tok, model, [p.input for p in prompts], cfg.max_new_tokens, "policy")
        except ItemError as e:
            raise UserError(f"{key}: {e.named([p.id for p in prompts])}") from None
    proxy_rm = load_reward_model(cfg.reward_model, device=device, dtype=cfg.dtype)
    gold_rm = load_reward_model(cfg.ground_truth, device=device, dtype=cfg.dtype) if cfg.ground_truth else None
    t_loaded = time.perf_counter()
    norm, source = _normalization(s, model, tok, proxy_rm)  # 3. Normalization.
    return _Loaded(model, tok, proxy_rm, gold_rm, norm, source, t_loaded, time.perf_counter())


def _train(s: _Start, m: _Loaded) -> dict[str, Any]:
    """The part of `run_train` that writes to `out` and trains."""
    cfg, out, args = s.cfg, s.out, s.args
    model, tok, t_loaded, t_norm = m.model, m.tok, m.t_loaded, m.t_norm
    normalization = {"mean": m.norm.mean, "std": m.norm.std, "source": m.source}
    run_info = {"schema": SCHEMA, "config": to_plain(cfg), "normalization": normalization, "steps": s.steps,
                "processes": args.world_size, "status": "running"}
    if s.is_main:
        io.write_json(out / run_dir.MARKER, run_info)

    # 4. TRL's trainer with the two reward functions; tracking as a callback.
    proxy, gold = proxy_reward(m.proxy_rm, m.norm), (gold_reward(m.gold_rm) if m.gold_rm else None)
    try:
        trainer = trainer_class(cfg.algorithm)(
            model=model, reward_funcs=[proxy] + ([gold] if gold else []), args=args,
            train_dataset=train_dataset(tok, s.train_prompts), processing_class=tok, peft_config=peft_config(cfg.lora),
        )
    except ValueError as e:
        if cfg.lora is None:
            raise
        raise UserError(f"lora: {first_line(e)}") from None  # e.g. target_modules that the policy does not have
    tidy_callbacks(trainer, out)
    evaluator = Evaluator(s.eval_prompts, proxy, gold, cfg.sampling(cfg.eval_samples_per_prompt, cfg.seed))
    wall_offset = s.records[-1]["wall_time"] if s.records else 0.0
    start_step = run_dir.checkpoint_step(s.ckpt) if s.ckpt else 0
    bar = progress_bar(f"{cfg.algorithm} on {cfg.reward_model.name}", s.steps) if s.is_main else nullcontext(None)
    t_train = time.perf_counter()
    with bar as advance:
        if advance is not None and start_step:
            advance(start_step)
        callback = TrackingCallback(out / run_dir.METRICS, evaluator, total_steps=s.steps, eval_every=cfg.eval_every,
                                    is_main=s.is_main, started=s.t_start, wall_offset=wall_offset, advance=advance)
        callback.attach(trainer)
        try:
            trainer.train(resume_from_checkpoint=str(s.ckpt) if s.ckpt else None)
        except (TrainingStopped, RuntimeError) as e:
            _fail(e, trainer, out, run_info, s.is_main)
            raise
    t_done = time.perf_counter()

    # 5. The final policy, then the marker that says the run is whole.
    save_trained(trainer, tok, out / "final", merge=cfg.lora is not None, is_main=s.is_main)
    history = run_dir.read_metrics(out / run_dir.METRICS) if s.is_main else []
    loop = t_done - t_train - callback.eval_seconds
    trained = s.steps - start_step
    summary = {
        "status": "finished", "out": str(out), "steps": s.steps, "normalization": normalization,
        "initial": history[0] if history else None, "final": callback.last,
        "timings": {
            "load_seconds": round(t_loaded - s.t_start, 3), "normalization_seconds": round(t_norm - t_loaded, 3),
            "train_seconds": round(t_done - t_train, 3), "eval_seconds": round(callback.eval_seconds, 3),
            "steps_per_second": round(trained / loop, 4) if loop > 0 else None,
        },
    }
    if s.is_main:
        io.write_json(out / run_dir.MARKER, {**run_info, "status": "finished", "summary": summary})
        _print_summary(summary)
    return summary


def _fail(e: Exception, trainer: Any, out: Path, run_info: dict[str, Any], is_main: bool) -> None:
    """Record a stopped run in run.json and point at the last good checkpoint; diverged sampling -> TrainingStopped."""
    msg = first_line(e)
    if isinstance(e, RuntimeError):
        if "probability tensor contains" not in msg:
            return  # a bug or an environment failure: keep the traceback
        msg = f"step {trainer.state.global_step + 1}: sampling failed on non-finite probabilities ({msg})"
    ckpt = run_dir.last_checkpoint(out)
    if ckpt:
        where = f"; last good checkpoint: {ckpt} (fix the cause, then --resume)"
    elif trainer.state.global_step:
        where = "; no checkpoint was saved (set checkpoint_every to be able to resume)"
    else:
        where = ""  # stopped in its first step: nothing to resume (`run_train` removes what it wrote)
    if is_main:
        io.write_json(out / run_dir.MARKER, {**run_info, "status": "failed", "error": msg})
    raise TrainingStopped(f"{msg}{where}") from e.__cause__


def _print_summary(summary: dict[str, Any]) -> None:
    first, last = summary["initial"] or {}, summary["final"] or {}
    change = ", ".join(
        f"eval {name} reward {first[key]:.4f} -> {last[key]:.4f}"
        for name, key in (("proxy", "eval_proxy_reward"), ("gold", "eval_gold_reward"))
        if first.get(key) is not None and last.get(key) is not None
    )
    console().print(f"trained {summary['steps']} steps ({summary['timings']['steps_per_second']} steps/s): "
                    f"{change}; wrote {summary['out']}/metrics.jsonl and final/")
