"""`rmteach train --dry-run`: what a run needs that is not here, and what it would do, without loading weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..backends.rewards import check_reward_source
from ..core.errors import UserError
from ..core.hf import check_model_ref
from ..core.lora import require_peft, trainable_parameters
from ..core.progress import console, result_console
from ..core.trl import check_report_to
from .config import Layout, TrainConfig


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
    if cfg.lora is not None:
        check(require_peft)
    for rm in [cfg.reward_model] + ([cfg.ground_truth] if cfg.ground_truth else []):
        check(lambda: check_reward_source(rm, f"reward model '{rm.name}'"))
    check(lambda: check_report_to(cfg.trl_args.get("report_to", cfg.report_to), installed=True))
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
        "lora": _lora(cfg) if cfg.lora else "none (every weight trains)",
        "proxy reward model": f"{rm.name}: {_source(rm)}"
        + (f" (x{rm.transform.factor:g} on {rm.transform.fraction:.0%} of prompts)" if rm.transform else ""),
        "ground truth": f"{gt.name}: {_source(gt)} (weight 0: logged only)" if gt else "none",
        "normalization": f"from {n.path}" if n.path
        else f"fitted at start on {n.samples_per_prompt} samples x {n.max_prompts or 'all'} train prompts",
        "prompts": f"train {cfg.train_prompts.where}; eval {cfg.eval_prompts.where} "
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


def _lora(cfg: TrainConfig) -> str:
    """The LoRA settings, and the trainable parameters where the policy is a local folder and peft is here."""
    lo = cfg.lora
    targets = ", ".join(lo.target_modules) if isinstance(lo.target_modules, list) else (lo.target_modules
                                                                                         or "peft's default")
    text = f"r {lo.r}, alpha {lo.alpha}, dropout {lo.dropout:g}, target_modules {targets}"
    if not Path(cfg.policy.path, "config.json").is_file():
        return text
    try:
        trainable, total = trainable_parameters(cfg.policy.path, lo, trust_remote_code=cfg.policy.trust_remote_code)
    except Exception as e:  # noqa: BLE001 - the count is a courtesy: peft missing or a bad target shows here
        return f"{text} ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})"
    return f"{text}; trains {trainable:,} of {total:,} parameters ({trainable / total:.2%})"


def print_plan(p: dict[str, Any], missing: list[str]) -> None:
    from rich.table import Table

    table = Table(title="rmteach train --dry-run: nothing loaded, nothing written", show_header=False)
    table.add_column(justify="right", style="bold")
    table.add_column()
    for key, value in p.items():
        table.add_row(key, str(value))
    result_console().print(table)
    for m in missing:
        console().print(f"[yellow]warning:[/yellow] {m} (needed at run time)")


def _source(rm: Any) -> str:
    """Where a reward model comes from: its folder or hub id, its callable, its URL, its builder, or its judge."""
    if rm.judge is not None:
        return f"judge {rm.judge.path or rm.judge.http.url}"
    return rm.path or rm.callable or (rm.http.url if rm.http else rm.custom.builder)
