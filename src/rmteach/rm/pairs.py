"""`rmteach rm pairs`: on-policy preference pairs: sample K responses per prompt, score, label, write.

Data flow: prompts -> the policy's sampler (`backends.sampler`, K per prompt) -> the ground truth on the
(n, K) grid (`backends.rewards.score_grid`) -> candidate pairs per prompt (`PairsConfig.pairing`) -> labels
(`PairsConfig.labels`, `min_gap`) -> OUT/pairs.jsonl (prompt, chosen, rejected, id: what `evaluate` and
`rm train` read; parquet too if asked), OUT/samples.jsonl (every sample and its reward) and, last,
OUT/summary.json (counts, tie rate, the gap's quantiles; its presence means a whole run).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..backends.rewards import check_reward_source, load_reward_model, score_grid
from ..backends.sampler import check_sampler, sample_responses
from ..core import io, outdir
from ..core.config import to_plain
from ..core.data import extras_of, load_prompts, write_jsonl
from ..core.errors import ItemError, UserError
from ..core.hf import check_model_ref, resolve_device
from ..core.progress import console, progress_bar
from .config import PairsConfig

SCHEMA = "rmteach.rm.pairs/1"
SUMMARY = "summary.json"
QUANTILES = {"min": 0.0, "q10": 0.1, "q25": 0.25, "median": 0.5, "q75": 0.75, "q90": 0.9, "max": 1.0}
Row = dict[str, Any]


def candidate_pairs(rewards: np.ndarray, pairing: str) -> list[tuple[int, int]]:
    """The (a, b) sample indices of one prompt that become candidate pairs (see `PairsConfig`).

    Arguments:
        rewards: (K,) ground-truth rewards of the prompt's samples (`best_worst` reads them).
        pairing: disjoint | all | best_worst.

    >>> candidate_pairs(np.array([0.1, 0.5, 0.3, 0.2, 0.9]), "disjoint")
    [(0, 1), (2, 3)]
    >>> len(candidate_pairs(np.zeros(4), "all"))
    6
    >>> candidate_pairs(np.array([0.1, 0.5, 0.3]), "best_worst")
    [(1, 0)]
    """
    k = len(rewards)
    if pairing == "disjoint":
        return [(a, a + 1) for a in range(0, k - 1, 2)]
    if pairing == "all":
        return [(a, b) for a in range(k) for b in range(a + 1, k)]
    if pairing == "best_worst":
        return [(int(np.argmax(rewards)), int(np.argmin(rewards)))]
    raise ValueError(f"unknown pairing {pairing!r}")


def bradley_terry(gap: float, temperature: float) -> float:
    """P(a is preferred to b) = sigmoid((r_a - r_b) / temperature).

    >>> bradley_terry(0.0, 1.0)
    0.5
    >>> round(bradley_terry(1.0, 0.5), 4)
    0.8808
    """
    x = gap / temperature
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def make_pairs(
    ids: Sequence[str], prompts: Sequence[str], responses: Sequence[Sequence[str]], rewards: np.ndarray,
    cfg: PairsConfig,
) -> tuple[list[Row], dict[str, Any]]:
    """Label the candidate pairs of every prompt by the ground truth.

    Arguments:
        ids, prompts: the prompts' ids and texts (n).
        responses: (n, K) samples.
        rewards: (n, K) ground-truth rewards of the samples.
        cfg: pairing, labels, min_gap, temperature, label_seed.

    Returns:
        (rows, counts): rows with id, prompt_id, prompt, chosen, rejected, chosen_reward, rejected_reward
        (and p_chosen, the probability of the drawn label, for bradley_terry); counts of candidates,
        identical, ties (gap 0), below_min_gap, kept, label_flips, and the absolute gaps (all, kept).
    """
    rng = np.random.default_rng(cfg.label_seed)
    rows: list[Row] = []
    counts = dict(candidates=0, identical=0, ties=0, below_min_gap=0, kept=0, label_flips=0)
    gaps_all: list[float] = []
    for pid, prompt, resp, r in zip(ids, prompts, responses, rewards):
        for a, b in candidate_pairs(r, cfg.pairing):
            counts["candidates"] += 1
            if resp[a] == resp[b]:  # the same text twice carries no preference, whatever its score
                counts["identical"] += 1
                continue
            gap = float(r[a] - r[b])
            gaps_all.append(abs(gap))
            counts["ties"] += gap == 0.0
            if abs(gap) < cfg.min_gap:
                counts["below_min_gap"] += 1
                continue
            if cfg.labels == "hard":
                if gap == 0.0:
                    continue
                a_wins, p = gap > 0, None
            else:
                p_a = bradley_terry(gap, cfg.temperature)
                a_wins = bool(rng.random() < p_a)
                p = p_a if a_wins else 1.0 - p_a
            c, j = (a, b) if a_wins else (b, a)
            row = {"id": f"{pid}-{c}-{j}", "prompt_id": pid, "prompt": prompt, "chosen": resp[c],
                   "rejected": resp[j], "chosen_reward": float(r[c]), "rejected_reward": float(r[j])}
            if p is not None:
                row["p_chosen"] = p
            counts["label_flips"] += r[c] < r[j]
            rows.append(row)
    counts["kept"] = len(rows)
    gaps_kept = [abs(x["chosen_reward"] - x["rejected_reward"]) for x in rows]
    return rows, {**counts, "gaps_all": gaps_all, "gaps_kept": gaps_kept}


def quantiles(values: Sequence[float]) -> dict[str, float] | None:
    """The gap's distribution as named quantiles (None for no values).

    >>> quantiles([0.0, 1.0])["median"]
    0.5
    """
    if not len(values):
        return None
    v = np.asarray(values, dtype=np.float64)
    return {name: float(np.quantile(v, q)) for name, q in QUANTILES.items()}


def summarize(counts: dict[str, Any], n_prompts: int, k: int) -> dict[str, Any]:
    """summary.json's numbers from `make_pairs`' counts."""
    c = counts["candidates"]
    return {
        "prompts": n_prompts, "samples_per_prompt": k,
        **{key: int(counts[key]) for key in ("candidates", "identical", "ties", "below_min_gap", "kept",
                                             "label_flips")},
        "tie_rate": (counts["identical"] + counts["ties"]) / c if c else None,  # gap 0, identical texts included
        "kept_rate": counts["kept"] / c if c else None,
        "gap_quantiles": {"candidates": quantiles(counts["gaps_all"]), "kept": quantiles(counts["gaps_kept"])},
    }


def run_pairs(cfg: PairsConfig, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """`rmteach rm pairs`: sample, label and write a preference set from `cfg.policy` (see the module docstring).

    Bad input (a prompt set, a policy, a ground truth that fails, no pair kept) fails before anything is
    written; a finished run of the same config in `out` is returned as it is.

    Arguments:
        cfg: the validated config.
        out: the output folder.
        overwrite: replace a different run (or other files) in `out`.

    Returns:
        The summary (also OUT/summary.json).
    """
    plain = to_plain(cfg)
    out = io.claim_out_dir(out, SUMMARY, plain, overwrite, "rm pairs", whole=True)
    done = finished(out, plain, overwrite)
    if done is not None:
        console().print(f"{out}: these pairs are already written; nothing to do")
        return done
    try:
        prompts = load_prompts(cfg.prompts)
    except UserError as e:
        raise UserError(f"prompts: {e}") from None
    check_model_ref(cfg.policy.path, "policy")
    check_sampler(cfg.sampling)
    check_reward_source(cfg.ground_truth, "ground truth")
    ids, texts = [p.id for p in prompts], [p.input for p in prompts]  # a conversation stays one
    device, k = resolve_device(cfg.device), cfg.sampling.samples_per_prompt

    # 1. Sample K responses per prompt from the policy.
    name = cfg.policy.display_name
    with progress_bar(f"sampling {k} responses per prompt from '{name}'", len(texts)) as advance:
        try:
            responses = sample_responses(cfg.policy, texts, cfg.sampling, device=device, dtype=cfg.dtype,
                                         progress=advance)  # (n, K)
        except ItemError as e:
            raise e.named(ids) from e.__cause__

    # 2. Score them with the ground truth, 3. label pairs.
    gt = load_reward_model(cfg.ground_truth, device=device, dtype=cfg.dtype)
    try:
        with progress_bar(f"labelling with '{cfg.ground_truth.name}'", len(texts) * k) as advance:
            rewards = score_grid(gt, texts, responses, ids=ids, progress=advance,
                                 extras=extras_of(prompts))  # (n, K)
    finally:
        gt.close()
    rows, counts = make_pairs(ids, texts, responses, rewards, cfg)
    summary = {"schema": SCHEMA, "config": plain, **summarize(counts, len(texts), k),
               "files": ["pairs.jsonl"] + (["pairs.parquet"] if cfg.parquet else []) + ["samples.jsonl"]}
    if not rows:
        raise UserError(f"no pair kept of {counts['candidates']} candidates ({counts['identical']} identical, "
                        f"{counts['ties']} ties, {counts['below_min_gap']} below min_gap {cfg.min_gap:g}): lower "
                        "min_gap, sample more (sampling.samples_per_prompt, temperature) or use more prompts")

    # 4. Write into a fresh folder: the pairs, every sample, then the summary; it replaces `out` whole.
    with outdir.staged(out, "rm pairs") as stage:
        write_jsonl(stage / "pairs.jsonl", rows)
        if cfg.parquet:
            write_parquet(stage / "pairs.parquet", rows)
        write_jsonl(stage / "samples.jsonl", [{"id": i, "prompt": p, "responses": list(resp),
                                               "rewards": r.tolist()}
                                              for i, p, resp, r in zip(ids, texts, responses, rewards)])
        io.write_json(stage / SUMMARY, summary)
    print_summary(summary, out)
    return summary


def finished(out: Path, plain: dict[str, Any], overwrite: bool = False) -> dict[str, Any] | None:
    """The summary of a finished run of this config in `out` whose files are all there, else None."""
    if overwrite:
        return None
    summary = io.read_json_object(out / SUMMARY)
    whole = bool(summary) and summary.get("config") == plain
    return summary if whole and all((out / f).is_file() for f in summary.get("files", [])) else None


def write_parquet(path: Path, rows: list[Row]) -> None:
    """Write rows as a Parquet table atomically."""
    import pandas as pd

    with io.atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


def print_summary(summary: dict[str, Any], out: Path) -> None:
    """Pairs kept, tie rate and the gap's quartiles, on stderr."""
    q = summary["gap_quantiles"]["candidates"] or {}
    gaps = ", ".join(f"{k} {q[k]:.3g}" for k in ("q25", "median", "q75") if k in q)
    console().print(
        f"kept {summary['kept']} of {summary['candidates']} candidate pairs from {summary['prompts']} prompts "
        f"(tie rate {summary['tie_rate']:.1%}, {summary['identical']} identical, {summary['below_min_gap']} below "
        f"min_gap); ground-truth gap {gaps}; wrote {out / summary['files'][0]}")
