"""`rmteach evaluate`: sample once from the policy, score with every RM, compute the report card.

Data flow: prompts -> policy samples (`backends.sampler`, cached) -> raw rewards per RM (`backends.rewards`)
-> the report card (`evaluate.report`: normalization, variance, accuracies) -> report.json,
rewards.parquet, prompts.parquet (`evaluate.prompts`), preference_rewards.parquet, summary.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.rewards import check_reward_source, load_reward_model, score_grid
from ..backends.sampler import check_sampler, sample_responses
from ..core import io, outdir
from ..core.blocks import RewardModelConfig
from ..core.config import to_plain
from ..core.data import PreferencePair, Prompt, extras_of, hash_prompts, load_preferences, load_prompts
from ..core.errors import ItemError, UserError
from ..core.hf import check_model_ref, fingerprint, resolve_device
from ..core.progress import console, progress_bar
from . import score_cache
from .config import EvaluateConfig
from .prompts import prompts_frame
from .report import EvalData, RewardTable, build_report, print_summary, write_outputs
from .shard import Processes, merge_arrays, merge_rows, start


# ----------------------------------------------------------------------------------------------------------
# Sampling with a cache


def cache_root(cfg: EvaluateConfig) -> Path:
    """Where samples are cached: the config's `cache_dir`, `$RMTEACH_CACHE_DIR`, or ~/.cache/rmteach."""
    root = cfg.cache_dir or os.environ.get("RMTEACH_CACHE_DIR") or Path.home() / ".cache" / "rmteach"
    return Path(root)


def samples_key(cfg: EvaluateConfig, prompts: list[Prompt], device: str) -> str:
    """Cache key: the policy's identity, the prompts and every sampling setting."""
    ident = {
        "policy": cfg.policy.path,
        "policy_files": fingerprint(cfg.policy.path),
        "prompts": hash_prompts(prompts),
        "sampling": cfg.sampling.model_dump(),
        "device": device,
        "dtype": cfg.dtype,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def get_samples(
    cfg: EvaluateConfig, prompts: list[Prompt], device: str, key: str, procs: Processes | None = None
) -> tuple[list[list[str]], bool]:
    """Sample K responses per prompt, or read them from the cache. Returns (responses, from_cache).

    An unreadable cache entry is sampled again; a cache that cannot be written is skipped with a warning.
    With several processes each samples its share; the cache is used only when every process can read it.
    """
    procs = procs or Processes()  # not a default argument: its work tally is this run's own
    path = cache_root(cfg) / "samples" / f"{key}.json"  # key: `samples_key`
    responses = None
    try:
        responses = json.loads(path.read_text(encoding="utf-8"))["responses"]
        responses = responses if len(responses) == len(prompts) else None
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or not ours: sample
    if procs.all(responses is not None):
        return responses, True
    with progress_bar(f"sampling {cfg.sampling.samples_per_prompt} responses/prompt", len(prompts),
                      shown=procs.main) as advance:
        try:
            mine = sample_responses(cfg.policy, [p.input for p in prompts], cfg.sampling, device=device,
                                    dtype=cfg.dtype, progress=lambda n: advance(n * procs.world), share=procs.share)
        except ItemError as e:
            raise e.named([p.id for p in prompts]) from None
    procs.tally("sampled_prompts", sum(row is not None for row in mine))
    responses = merge_rows(procs.gather(mine))
    if not procs.main:
        return responses, False
    try:
        io.write_json(path, {"policy": cfg.policy.path, "responses": responses})
    except OSError as e:
        console().print(f"[yellow]warning:[/yellow] sample cache {path.parent} not written ({e.strerror or e})",
                        soft_wrap=True)
    return responses, False


# ----------------------------------------------------------------------------------------------------------
# Scoring


def score_one(
    rm_cfg: RewardModelConfig, data: EvalData, device: str, dtype: str, limit: int | None = None,
    procs: Processes | None = None,
) -> RewardTable:
    """Load one RM, score on-policy samples (of the first `limit` prompts) and preference pairs, free it.

    Every reward is checked finite. With several processes each scores its share and every process gets the
    whole table.
    """
    procs = procs or Processes()
    prompts = data.prompts[:limit]
    n_items = len(prompts) * len(data.responses[0]) + (2 * len(data.pairs) if data.pairs else 0)
    rm = load_reward_model(rm_cfg, device=device, dtype=dtype)
    try:
        with progress_bar(f"scoring with {rm_cfg.name}", n_items, shown=procs.main) as bar:
            advance, share = (lambda n: bar(n * procs.world)), procs.share
            table = RewardTable(onpolicy=score_grid(  # (n_prompts or limit, k)
                rm, [p.input for p in prompts], data.responses[: len(prompts)], ids=[p.id for p in prompts],
                progress=advance, share=share, extras=extras_of(prompts)))
            if data.pairs:
                pp = [p.input for p in data.pairs]
                ids = [f"preference {p.id}" for p in data.pairs]
                table.chosen, table.rejected = score_grid(  # (n_pairs, 2): chosen, rejected
                    rm, pp, [[p.chosen, p.rejected] for p in data.pairs], ids=ids, progress=advance, share=share,
                    extras=extras_of(data.pairs)).T
    finally:
        rm.close()  # one RM in memory at a time
    procs.tally(f"scored_pairs:{rm_cfg.name}", sum(int(np.isfinite(a).sum()) for a in
                                                    (table.onpolicy, table.chosen, table.rejected) if a is not None))
    if procs.world > 1:
        parts = procs.gather((table.onpolicy, table.chosen, table.rejected))
        table = RewardTable(*(merge_arrays([part[j] for part in parts]) for j in range(3)))
    return table


# ----------------------------------------------------------------------------------------------------------
# The command


def preflight(cfg: EvaluateConfig) -> tuple[list[Prompt], list[PreferencePair] | None]:
    """Fail before any model loads: unreadable prompt or preference sets, missing local model folders,
    callables that do not import. Returns the prompts and the preference pairs (None without a set)."""
    prompts = load_prompts(cfg.prompts)
    pairs = load_preferences(cfg.preferences) if cfg.preferences else None
    check_model_ref(cfg.policy.path, "policy")
    check_sampler(cfg.sampling)
    for rm_cfg in cfg.all_reward_models():
        check_reward_source(rm_cfg, f"reward model '{rm_cfg.name}'")
    return prompts, pairs


def evaluate(
    cfg: EvaluateConfig, timing: dict[str, Any] | None = None, procs: Processes | None = None, device: str | None = None
) -> tuple[dict[str, Any] | None, EvalData]:
    """Run an evaluation in memory: sample (or reuse cached samples), score with every RM, forecast, report.

    Arguments:
        cfg: the evaluation.
        timing: filled with wall times in seconds (`sampling_s`, `scoring_s` per RM, `gradient_s`,
            `forecast_s`), when given.
        procs, device: the processes of a sharded run and this process's device (`shard.start`; default: one).

    Returns:
        (report dict, the measured data); the report is None on processes other than the main one.
    """
    timing = {} if timing is None else timing
    if procs is None or device is None:
        procs, device = start(cfg.device)
    prompts, pairs = preflight(cfg)
    kind = resolve_device(cfg.device)  # "cuda", not "cuda:1": the caches do not depend on the process
    t0 = time.perf_counter()
    skey = samples_key(cfg, prompts, kind)  # one fingerprint of the policy's files, for samples and scores
    responses, cached = get_samples(cfg, prompts, device, skey, procs)
    timing["sampling_s"] = None if cached else round(time.perf_counter() - t0, 3)
    if cached and procs.main:
        console().print(f"[dim]using cached samples for {cfg.policy.display_name} ({len(prompts)} prompts)[/dim]")
    data = EvalData(prompts=prompts, responses=responses, pairs=pairs)
    gold_name = cfg.ground_truth.name if cfg.ground_truth else None
    timing["scoring_s"] = {}
    for rm_cfg in cfg.all_reward_models():
        t0 = time.perf_counter()
        limit = cfg.forecast.max_prompts if rm_cfg.name == gold_name else None
        key = score_cache.score_key(rm_cfg, skey, pairs, device=kind, dtype=cfg.dtype, limit=limit)
        table = score_cache.load(cache_root(cfg), key)
        if not procs.all(table is not None):
            table = score_one(rm_cfg, data, device, cfg.dtype, limit, procs)
            if procs.main:
                score_cache.save(cache_root(cfg), key, table)
        elif procs.main:
            console().print(f"[dim]using cached scores of {rm_cfg.name}[/dim]")
        data.rewards[rm_cfg.name] = table
        timing["scoring_s"][rm_cfg.name] = round(time.perf_counter() - t0, 3)
        if data.rewards[rm_cfg.name].onpolicy.std() == 0.0 and procs.main:
            console().print(
                f"[yellow]warning:[/yellow] reward model '{rm_cfg.name}' gave the same reward to every sample "
                "(std 0): its reward variance is reported as 0"
            )
    if procs.world > 1:
        timing["work"] = procs.gather(procs.work)  # per process: prompts sampled and pairs scored by it
    if not procs.main:
        return None, data  # the main process forecasts and reports
    if cfg.forecast.gradient and gold_name is not None:
        t0 = time.perf_counter()
        data.gradient = _gradient_alignment(cfg, data, device, gold_name)
        timing["gradient_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    report = build_report(cfg, data)
    timing["forecast_s"] = round(time.perf_counter() - t0, 3)  # the whole report card, forecasts included
    return report, data


def _gradient_alignment(cfg: EvaluateConfig, data: EvalData, device: str, gold_name: str) -> dict[str, Any]:
    """`gradient_alignment` of every RM (ground truth included) on the policy itself: one backward pass per RM."""
    from .forecast import proxy_signal
    from .gradient import gradient_alignment, load_policy_for_gradients

    m = min(len(data.rewards[gold_name].onpolicy), cfg.forecast.gradient_max_prompts or len(data.prompts))
    gold = data.rewards[gold_name].onpolicy[:m]  # (m, K)
    model, tok = load_policy_for_gradients(cfg.policy.path, device=device, dtype=cfg.dtype,
                                           trust_remote_code=cfg.policy.trust_remote_code)
    scale_free = cfg.forecast.assumed_trainer.scale_free
    proxies = {name: proxy_signal(t.onpolicy, group=cfg.forecast.group, scale_free=scale_free)[:m]
               for name, t in data.rewards.items()}
    try:
        with progress_bar("gradient alignment", m * len(gold[0]) * (len(proxies) + 1)) as advance:
            return gradient_alignment(model, tok, [p.input for p in data.prompts[:m]], data.responses[:m], gold,
                                      proxies, parameters=cfg.forecast.gradient_parameters,
                                      batch_size=cfg.forecast.gradient_batch_size, seed=cfg.sampling.seed,
                                      progress=advance)
    finally:
        del model


def run_evaluate(cfg: EvaluateConfig, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """`rmteach evaluate`: evaluate and write report.json, rewards.parquet, prompts.parquet and summary.md."""
    procs, device = start(cfg.device)
    claimed: Path | str = ""
    if procs.main:  # an out folder that must not be overwritten stops every process, before any work
        try:
            claimed = io.claim_out_dir(out, "report.json", to_plain(cfg), overwrite, "evaluate", whole=True)
        except UserError as e:
            claimed = str(e)
    claimed = procs.gather(claimed)[0]
    if isinstance(claimed, str):
        raise UserError(claimed)
    out = claimed
    timing: dict[str, Any] = {"processes": procs.world}
    report, data = evaluate(cfg, timing, procs, device)
    if report is None:
        return {}
    with outdir.staged(out, "evaluate") as stage:  # a whole output replaces `out`, or `out` stays as it was
        gold_name = cfg.ground_truth.name if cfg.ground_truth else None
        write_outputs(stage, report, data, prompts_frame(data, gold_name, group=cfg.forecast.group,
                                                              scale_free=cfg.forecast.assumed_trainer.scale_free))
        io.write_json(stage / "timing.json", timing)  # wall times stay out of report.json (reruns are byte-identical)
    print_summary(report)
    console().print(f"wrote {out / 'report.json'}")
    return report
