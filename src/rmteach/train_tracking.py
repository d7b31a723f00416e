"""Live tracking for `rmteach train`: the reward functions TRL calls, the held-out evaluation, metrics.jsonl.

- `ProxyReward`: the proxy RM as a TRL reward function. It scores (raw prompt text, completion) pairs, so
  the RM's transform picks prompts by the same text as in `rmteach evaluate`, then applies the run's
  normalization. It also reports each prompt group's reward variance through TRL's `log_metric`, which TRL
  averages across processes.
- `GoldReward`: the ground truth, raw, given weight 0 in TRL's `reward_weights`: logged, never trained on.
- `fit_initial_normalization` / `normalization_from_report`: the paper's shift and scale of the proxy.
- `Evaluator`: samples M responses per held-out prompt from the current policy (its own seeded RNG, so
  evaluating never changes the training samples) and scores them with both.
- `TrackingCallback`: a `TrainerCallback` that turns TRL's per-step logs into one metrics.jsonl line per
  optimizer step (written by the main process only), runs the evaluation when due, and stops the run on a
  non-finite loss or gradient. TRL's training loop is untouched.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from transformers import TrainerCallback

from . import io
from .config import SamplingConfig
from .errors import UserError
from .metrics import Normalization, fit_normalization

# TRL logs each reward function's batch mean as `rewards/<__name__>/mean`.
PROXY_NAME, GOLD_NAME = "proxy", "gold"
PROXY_KEY, GOLD_KEY = f"rewards/{PROXY_NAME}/mean", f"rewards/{GOLD_NAME}/mean"
VARIANCE_KEY = "rmteach/reward_variance"  # logged through TRL's `log_metric`, one value per prompt group

TRAIN_FIELDS = ("proxy_reward", "gold_reward", "reward_variance", "kl", "learning_rate", "loss", "grad_norm",
                "entropy", "completion_length")
EVAL_FIELDS = ("eval_proxy_reward", "eval_gold_reward", "eval_reward_variance")
FIELDS = ("step", *TRAIN_FIELDS, *EVAL_FIELDS, "wall_time")  # every metrics.jsonl line has all of them


class TrainingStopped(UserError):
    """The run stopped on a non-finite reward, loss or gradient; the message names the step."""


def completion_texts(completions: Sequence[Any]) -> list[str]:
    """TRL completions as plain text: conversational ones are `[{"role": "assistant", "content": ...}]`."""
    return [c[-1]["content"] if isinstance(c, list) else c for c in completions]


def group_variances(rewards: np.ndarray, prompts: Sequence[str]) -> list[float]:
    """Within-prompt variance (ddof=1) of each run of consecutive equal prompts with at least 2 samples.

    TRL lays a batch out prompt by prompt (`num_generations` copies in a row), so the runs are its groups.

    >>> group_variances(np.array([1.0, 3.0, 0.0, 0.0]), ["a", "a", "b", "b"])
    [2.0, 0.0]
    """
    out, start = [], 0
    for i in range(1, len(prompts) + 1):
        if i == len(prompts) or prompts[i] != prompts[start]:
            if i - start >= 2:
                out.append(float(np.var(rewards[start:i], ddof=1)))
            start = i
    return out


def _check_finite(name: str, rewards: np.ndarray, prompts: Sequence[str], step: int | None) -> None:
    bad = np.flatnonzero(~np.isfinite(rewards))
    if bad.size:
        i = int(bad[0])
        where = f"step {step}: " if step is not None else ""
        raise TrainingStopped(
            f"{where}reward model '{name}' returned {rewards[i]} for prompt {prompts[i][:60]!r} "
            f"({bad.size} of {rewards.size} rewards not finite)"
        )


class ProxyReward:
    """The proxy RM as a TRL reward function: transformed (by the RM config) and normalized rewards.

    Arguments:
        rm: a loaded reward model (`rmteach.rewards.load_reward_model`, transform included).
        norm: the run's normalization of this RM.
    """

    def __init__(self, rm: Any, norm: Normalization) -> None:
        self.__name__ = PROXY_NAME  # TRL names the reward function's logs after it
        self.rm, self.norm = rm, norm

    def score(self, prompts: Sequence[str], responses: Sequence[str], *, step: int | None = None) -> np.ndarray:
        """Normalized rewards (n,) of raw-prompt/response pairs; stops the run on a non-finite reward."""
        raw = self.rm.score(list(prompts), list(responses))
        _check_finite(self.rm.name, raw, prompts, step)
        return self.norm.apply(raw)

    def __call__(self, prompts, completions, raw_prompt, trainer_state=None, log_metric=None, **kwargs) -> list[float]:
        step = trainer_state.global_step + 1 if trainer_state is not None else None
        z = self.score(raw_prompt, completion_texts(completions), step=step)  # (local batch,)
        if log_metric is not None:
            for v in group_variances(z, raw_prompt):
                log_metric(VARIANCE_KEY, v)
        return z.tolist()


class GoldReward:
    """The ground truth as a TRL reward function (raw rewards); trained with weight 0, so only logged."""

    def __init__(self, rm: Any) -> None:
        self.__name__ = GOLD_NAME
        self.rm = rm

    def score(self, prompts: Sequence[str], responses: Sequence[str], *, step: int | None = None) -> np.ndarray:
        raw = self.rm.score(list(prompts), list(responses))
        _check_finite(self.rm.name, raw, prompts, step)
        return raw

    def __call__(self, prompts, completions, raw_prompt, trainer_state=None, **kwargs) -> list[float]:
        step = trainer_state.global_step + 1 if trainer_state is not None else None
        return self.score(raw_prompt, completion_texts(completions), step=step).tolist()


# ----------------------------------------------------------------------------------------------------------
# Sampling off the training RNG, normalization, held-out evaluation


def sample_aside(model: Any, tok: Any, prompts: list[str], sampling: SamplingConfig) -> list[list[str]]:
    """`generate_responses` in eval mode on its own RNG stream: the training samples never depend on it."""
    import torch

    from .policy import generate_responses

    if not prompts:
        return []
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return generate_responses(model, tok, prompts, sampling)  # (n_prompts, K)
    finally:
        model.train(was_training)


def shard(n: int, rank: int, world: int) -> tuple[list[int], int]:
    """This process's share of n prompts: every world-th index, padded with index 0 to the same count everywhere.

    Generation under FSDP is collective, so every process must make the same number of `generate` calls; the
    padding is sampled and dropped. Returns (indices to sample, how many of them are real).

    >>> shard(5, 1, 2)
    ([1, 3, 0], 2)
    """
    mine = list(range(rank, n, world))
    return mine + [0] * (-(-n // world) - len(mine)), len(mine)


def fit_initial_normalization(
    model: Any, tok: Any, rm: Any, prompts: list[str], sampling: SamplingConfig, *, rank: int = 0, world: int = 1
) -> Normalization:
    """The paper's normalization, fitted at start: sample the initial policy, score, mean and std of all rewards.

    With several processes each samples every world-th prompt and the rewards are gathered, so every process
    gets the same normalization.
    """
    idx, real = shard(len(prompts), rank, world)
    mine = [prompts[i] for i in idx[:real]]
    k = sampling.samples_per_prompt
    responses = sample_aside(model, tok, [prompts[i] for i in idx], sampling)[:real]  # (n_mine, K)
    raw = rm.score([p for p in mine for _ in range(k)], [r for row in responses for r in row]) if mine else []
    rewards = [float(x) for x in raw]
    if world > 1:
        from accelerate.utils import gather_object

        rewards = gather_object(rewards)
    r = np.asarray(rewards, dtype=np.float64)
    if not np.isfinite(r).all():
        raise UserError(f"reward model '{rm.name}' returned non-finite rewards on the initial policy's samples")
    norm = fit_normalization(r)
    if norm.std == 0.0:
        raise UserError(
            f"reward model '{rm.name}' gives every initial-policy sample the same reward: nothing to learn from "
            "(normalization std is 0)"
        )
    return norm


def normalization_from_report(path: str | Path, rm_cfg: Any, policy_path: str) -> Normalization:
    """An RM's `normalization` block from an `rmteach evaluate` report.json, matched by name.

    The report's RM must have the same path/callable and transform (else the numbers belong to another RM);
    a different policy only warns (the user may have copied the model elsewhere).
    """
    from .config import to_plain
    from .progress import console

    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"normalization report {path}: cannot read it ({e})") from None
    cards = {c.get("name"): c for c in report.get("reward_models", [])}
    if rm_cfg.name not in cards:
        raise UserError(
            f"normalization report {path} has no reward model '{rm_cfg.name}' (has: {', '.join(map(str, cards))})"
        )
    rep = report.get("config", {})
    theirs = {r.get("name"): r for r in rep.get("reward_models", []) + [rep.get("ground_truth") or {}]}.get(rm_cfg.name)
    mine = to_plain(rm_cfg)
    if theirs is not None and any(theirs.get(k) != mine.get(k) for k in ("path", "callable", "transform")):
        raise UserError(
            f"normalization report {path}: reward model '{rm_cfg.name}' there has another path, callable or transform"
        )
    if rep.get("policy", {}).get("path") != policy_path:
        console().print(f"[yellow]warning:[/yellow] {path} was measured on policy {rep.get('policy', {}).get('path')}")
    n = cards[rm_cfg.name]["normalization"]
    return Normalization(mean=float(n["mean"]), std=float(n["std"]))


@dataclass
class Evaluator:
    """Sample M responses per eval prompt and score them: the policy's proxy and gold reward off the train set.

    Every evaluation samples with the same seed (common random numbers), so two evaluations of similar
    policies differ by the policy change more than by sampling noise. With several processes each one takes
    every world-th prompt (`shard`) and the per-prompt results are gathered.
    """

    prompts: list[str]
    proxy: ProxyReward
    gold: GoldReward | None
    sampling: SamplingConfig

    def __call__(
        self, model: Any, tok: Any, step: int, *, rank: int = 0, world: int = 1,
        gather: Callable[[list], list] | None = None,
    ) -> dict[str, float | None]:
        """Evaluate `model` (already unwrapped for generation); returns the three `eval_*` fields."""
        idx, real = shard(len(self.prompts), rank, world)
        mine = idx[:real]
        rows: list[tuple[int, float, float, float | None]] = []  # (prompt index, proxy mean, proxy var, gold mean)
        responses = sample_aside(model, tok, [self.prompts[i] for i in idx], self.sampling)[:real]  # (n_mine, M)
        if mine:
            texts = [self.prompts[i] for i in mine]
            m = self.sampling.samples_per_prompt
            flat_p = [p for p in texts for _ in range(m)]
            flat_r = [r for row in responses for r in row]
            z = self.proxy.score(flat_p, flat_r, step=step).reshape(len(mine), m)  # (n_mine, M)
            g = self.gold.score(flat_p, flat_r, step=step).reshape(len(mine), m) if self.gold else None
            for j, i in enumerate(mine):
                gold_mean = float(g[j].mean()) if g is not None else None
                rows.append((i, float(z[j].mean()), float(np.var(z[j], ddof=1)), gold_mean))
        if gather is not None:
            rows = gather(rows)
        rows.sort()
        return {
            "eval_proxy_reward": float(np.mean([r[1] for r in rows])),
            "eval_reward_variance": float(np.mean([r[2] for r in rows])),
            "eval_gold_reward": float(np.mean([r[3] for r in rows])) if self.gold else None,
        }


# ----------------------------------------------------------------------------------------------------------
# metrics.jsonl


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a trailing line cut by a kill is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def truncate_metrics(path: str | Path, last_step: int) -> list[dict[str, Any]]:
    """Keep only records up to `last_step` (the checkpoint a run resumes from), rewritten atomically."""
    kept = [r for r in read_metrics(path) if r["step"] <= last_step]
    io.write_text(path, "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in kept))
    return kept


def _finite_or_none(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def train_fields(logs: dict[str, Any], step: int) -> dict[str, float | None]:
    """The per-step fields of a metrics line from TRL's logs; stops the run on a non-finite loss or gradient."""
    for key in ("loss", "grad_norm"):
        v = logs.get(key)
        if v is not None and not math.isfinite(v):
            raise TrainingStopped(f"step {step}: {key} is {v} (the policy diverged; try a lower learning_rate)")
    return {
        "proxy_reward": _finite_or_none(logs.get(PROXY_KEY)),
        "gold_reward": _finite_or_none(logs.get(GOLD_KEY)),
        "reward_variance": _finite_or_none(logs.get(VARIANCE_KEY)),
        "kl": _finite_or_none(logs.get("kl")),
        "learning_rate": _finite_or_none(logs.get("learning_rate")),
        "loss": _finite_or_none(logs.get("loss")),
        "grad_norm": _finite_or_none(logs.get("grad_norm")),
        "entropy": _finite_or_none(logs.get("entropy")),
        "completion_length": _finite_or_none(logs.get("completions/mean_length")),
    }


# ----------------------------------------------------------------------------------------------------------
# The callback



class TrackingCallback(TrainerCallback):
    """Write one metrics.jsonl line per optimizer step and evaluate when due; main process writes.

    Arguments:
        metrics_path: OUT/metrics.jsonl.
        evaluator: the held-out evaluation.
        total_steps: the run's last step (always evaluated).
        eval_every: evaluate every N steps (None: only at 0 and the last step).
        is_main: whether this process writes.
        started: `time.perf_counter()` when this process started the run.
        wall_offset: seconds already spent before this process (a resumed run continues the clock).
        advance: called once per step (the progress bar), or None.
    """

    def __init__(
        self, metrics_path: Path, evaluator: Evaluator, *, total_steps: int, eval_every: int | None, is_main: bool,
        started: float, wall_offset: float = 0.0, advance: Callable[[int], None] | None = None,
    ) -> None:
        self.metrics_path, self.evaluator = metrics_path, evaluator
        self.total_steps, self.eval_every, self.is_main = total_steps, eval_every, is_main
        self.wall_offset, self.advance = wall_offset, advance
        self.trainer: Any = None  # set by `attach`
        self.started = started
        self.eval_seconds = 0.0
        self.last: dict[str, Any] = {}

    def attach(self, trainer: Any) -> None:
        """Register with a TRL trainer, before its TensorBoard callback so evaluations reach TensorBoard too."""
        self.trainer = trainer
        trainer.callback_handler.callbacks.insert(1, self)

    def _due(self, step: int) -> bool:
        return step == 0 or step == self.total_steps or (self.eval_every is not None and step % self.eval_every == 0)

    def _evaluate(self, step: int) -> dict[str, float | None]:
        from accelerate.utils import gather_object
        from trl.distributed import DistributedBackend
        from trl.models import unwrap_model_for_generation

        t = time.perf_counter()
        tr = self.trainer
        acc = tr.accelerator
        gather = gather_object if acc.num_processes > 1 else None
        # As TRL generates: whole weights under DeepSpeed ZeRO-3 and FSDP, plain module under DDP.
        with (
            unwrap_model_for_generation(
                tr.model_wrapped, acc, gather_deepspeed3_params=tr.args.ds3_gather_for_generation
            ) as model,
            DistributedBackend(acc).summon_full_params(tr.model_wrapped, recurse=False),
        ):
            result = self.evaluator(
                model, tr.processing_class, step, rank=acc.process_index, world=acc.num_processes, gather=gather
            )
        self.eval_seconds += time.perf_counter() - t
        return result

    def _write(self, record: dict[str, Any]) -> None:
        record["wall_time"] = round(self.wall_offset + time.perf_counter() - self.started, 3)
        self.last = record
        if self.is_main:
            io.append_jsonl(self.metrics_path, record)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step != 0:
            return  # resumed: step 0 is already in metrics.jsonl
        ev = self._evaluate(0)
        self._write({"step": 0, **dict.fromkeys(TRAIN_FIELDS), **ev})
        self.trainer.log({k: v for k, v in ev.items() if v is not None})  # TensorBoard: eval/proxy_reward, ...

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or PROXY_KEY not in logs:
            return  # not a training step (the end-of-training summary, our own step-0 log)
        step = state.global_step
        record = {"step": step, **train_fields(logs, step), **dict.fromkeys(EVAL_FIELDS)}
        if self._due(step):
            ev = self._evaluate(step)
            record.update(ev)
            logs.update({k: v for k, v in ev.items() if v is not None})  # reaches TensorBoard as eval/...
        self._write(record)
        if self.advance is not None:
            self.advance(1)
