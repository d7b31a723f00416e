"""`rmteach demo`: from nothing to report.html: build the toy world (once), then run the default study on it.

The toy world is cached, because building it is the slow part and does not depend on the study:
`$RMTEACH_TOY_DIR` when set (used as it is), else `OUT/../toy/<preset>-seed<N>/` (for `--out runs/demo`:
`runs/toy/default-seed0/`). `--quick` uses the `tiny` preset of the world and a smaller study (one seed,
fewer steps and prompts); the full demo the `default` preset and three seeds. The study config the demo
generated is written to `OUT/study.yaml`, so `rmteach study --config OUT/study.yaml --out OUT` reruns it;
wall times go to `OUT/demo.json`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from .core import io, outdir
from .core.config import load_config, non_defaults, to_plain, validate
from .core.errors import UserError
from .core.progress import console
from .evaluate.config import EvaluateConfig
from .study.config import StudyConfig
from .study.run import run_study

# The demo's study, on top of what the toy world provides (policies, RMs, ground truth, prompt sets).
# Sized for a 2-core CPU: full <= 20 minutes with the toy build, quick <= 5 minutes.
# Shared by both sizes: RLOO with plain SGD and no clipping (Adam and clipping cancel the reward scale the paper
# is about; larger steps let every proxy RM hack the ground truth), and the paper's Section 4.1 correlations.
_TRAIN = {"algorithm": "rloo", "optimizer": "sgd", "max_grad_norm": 0.0, "learning_rate": 0.003, "kl_coef": 0.0,
          "prompts_per_step": 8, "samples_per_prompt": 4, "max_new_tokens": 16, "device": "cpu", "report_to": []}
_ANALYSIS = {"budgets": [0.25, 0.5, 1.0], "primary_outcome": "gold_auc", "include_ground_truth": True}
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "preset": "default",
        "seeds": 3,
        "jobs": 2,
        "evaluate_prompts": 128,
        "evaluate": {"sampling": {"samples_per_prompt": 8, "max_new_tokens": 16, "batch_size": 32}, "device": "cpu"},
        "train": {**_TRAIN, "steps": 60, "eval_every": 5, "eval_samples_per_prompt": 4},
        "eval_prompts": 64,
        "analysis": {**_ANALYSIS, "bootstrap_samples": 500},
    },
    "quick": {
        "preset": "tiny",
        "seeds": 1,
        "jobs": 2,
        "evaluate_prompts": 48,
        "evaluate": {"sampling": {"samples_per_prompt": 6, "max_new_tokens": 16, "batch_size": 32}, "device": "cpu"},
        "train": {**_TRAIN, "steps": 24, "eval_every": 4, "eval_samples_per_prompt": 2},
        "eval_prompts": 32,
        "analysis": {**_ANALYSIS, "bootstrap_samples": 200},
    },
}


def toy_folder(out: Path, preset: str, seed: int) -> Path:
    """Where the demo keeps its toy world: `$RMTEACH_TOY_DIR`, else `OUT/../toy/<preset>-seed<seed>`."""
    env = os.environ.get("RMTEACH_TOY_DIR")
    return Path(env) if env else out.resolve().parent / "toy" / f"{preset}-seed{seed}"


def ensure_toy(folder: Path, preset: str, seed: int, build: Callable[..., Any] | None = None) -> tuple[dict, float | None]:
    """Load the toy world's manifest, building the world first when `folder` has none.

    Returns:
        (manifest, build seconds or None when it was already built).
    """
    manifest = folder / "manifest.json"
    if manifest.is_file():
        console().print(f"[dim]toy world: reusing {folder}[/dim]")
        return json.loads(manifest.read_text(encoding="utf-8")), None
    if build is None:
        from .toy.build import run_build as build
    console().print(f"[bold]toy world[/bold]: building the '{preset}' preset (seed {seed}) into {folder}")
    t0 = time.perf_counter()
    build(folder, seed=seed, preset=preset, overwrite=False)
    if not manifest.is_file():
        raise RuntimeError(f"the toy build finished without writing {manifest}")
    return json.loads(manifest.read_text(encoding="utf-8")), round(time.perf_counter() - t0, 3)


def _train_prompts(folder: Path, manifest: dict[str, Any]) -> str:
    """The path of the toy world's `train` prompt set, as the manifest names it (relative to the folder)."""
    for key in ("prompt_sets", "prompts"):
        entry = manifest.get(key, {}).get("train") if isinstance(manifest.get(key), dict) else None
        if isinstance(entry, dict):
            entry = entry.get("path")
        if isinstance(entry, str):
            return str((folder / entry).resolve())
    raise UserError(f"{folder / 'manifest.json'} names no 'train' prompt set (looked under prompt_sets, prompts)")


def section_42_rms(manifest: dict[str, Any]) -> list[str]:
    """The world's RMs of the paper's Section 4.2 kind (high variance, poor accuracy: `role:
    high_variance_inaccurate`). The demo trains and ranks them but leaves them out of the correlations, which
    follow the paper's Section 4.1: across the on/off-policy mixes, the perfectly accurate low-variance RM and
    the ground truth."""
    return [e["name"] for e in manifest.get("reward_models", [])
            if isinstance(e, dict) and e.get("role") == "high_variance_inaccurate"]


def _evaluate_configs(folder: Path) -> list[EvaluateConfig]:
    """The world's per-policy evaluate configs (`evaluate_<policy>.yaml`), in name order."""
    paths = sorted(folder.glob("evaluate_*.yaml"))
    if not paths:
        raise UserError(f"the toy world in {folder} has no evaluate_<policy>.yaml configs")
    return [load_config(EvaluateConfig, p) for p in paths]


def demo_config(folder: Path, manifest: dict[str, Any], *, quick: bool, seed: int,
                seeds: int | None = None) -> StudyConfig:
    """The demo's study over the toy world in `folder`.

    Policies, candidate RMs (transforms included), the ground truth, the eval prompts and the off-policy
    preferences come from the world's per-policy evaluate configs; the train prompts from the manifest;
    the rest from `SETTINGS`.
    """
    s = SETTINGS["quick" if quick else "full"]
    ecfgs = _evaluate_configs(folder)
    first = ecfgs[0]
    names = [rm.name for rm in first.reward_models]
    for e in ecfgs[1:]:
        if [rm.name for rm in e.reward_models] != names:
            raise UserError(f"the toy world's evaluate configs disagree on the reward models ({folder})")
    train = {"path": _train_prompts(folder, manifest)}
    evaluate_block = {**s["evaluate"], "cache_dir": str(folder / "cache")}
    evaluate_block["sampling"] = {**s["evaluate"]["sampling"], "seed": seed}
    data = {
        "name": f"toy world ({'quick' if quick else 'full'} demo, seed {seed})",
        "policies": [to_plain(e.policy) for e in ecfgs],
        "reward_models": [to_plain(rm) for rm in first.reward_models],
        "ground_truth": to_plain(first.ground_truth),
        "prompts": {"train": train, "eval": {**to_plain(first.prompts), "limit": s["eval_prompts"]},
                    "evaluate": {**train, "limit": s["evaluate_prompts"]}},
        "preferences": to_plain(first.preferences) if first.preferences else None,
        "seeds": [seed + i for i in range(seeds or s["seeds"])],
        "jobs": s["jobs"],
        "evaluate": evaluate_block,
        "train": s["train"],
        "analysis": {**s["analysis"], "seed": seed,
                     "exclude_from_correlations": [n for n in names if n in section_42_rms(manifest)]},
    }
    return validate(StudyConfig, data, f"demo study over {folder}")


def run_demo(out: Path, quick: bool = False, seed: int = 0, overwrite: bool = False, *, seeds: int | None = None,
             build: Callable[..., Any] | None = None, train_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """`rmteach demo`: the toy world (built if absent) and the default study on it, with its wall time.

    Arguments:
        out: the study's output folder.
        quick: the small version (tiny world, one seed, fewer steps): a few minutes on a 2-core CPU.
        seed: seed of the toy world, the study's first train seed, and its sampling.
        overwrite: let this demo take an `out` holding a different study.
        seeds: train seeds per (policy, RM) (default 3, quick 1); more seeds sharpen the reliability and the
            claims, and a rerun with more seeds (and --overwrite) reuses the runs already finished.
        build, train_fn: the toy builder and the trainer (defaults: `rmteach.toy.build.run_build`,
            `rmteach.train.run.run_train`); tests pass fakes.

    Returns:
        `{"report", "study", "toy_dir", "toy_built", "wall_s", ...}`; the same (without the study) in demo.json.
    """
    if seed < 0:
        raise UserError(f"--seed must be >= 0 (got {seed})")
    t0 = time.perf_counter()
    out = Path(out)
    s = SETTINGS["quick" if quick else "full"]
    why = outdir.foreign(out, "study") if out.is_dir() else None
    if why is not None:  # a folder that is not a study output is refused before the toy world is built
        raise UserError(why)
    folder = toy_folder(out, s["preset"], seed)
    manifest, build_s = ensure_toy(folder, s["preset"], seed, build)
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be >= 1 (got {seeds})")
    cfg = demo_config(folder, manifest, quick=quick, seed=seed, seeds=seeds)
    t1 = time.perf_counter()
    study = run_study(cfg, out, overwrite=overwrite, train_fn=train_fn)
    io.write_text(out / "study.yaml", "# written by rmteach demo (settings that differ from the defaults); rerun: "
                  "rmteach study --config study.yaml --out .\n" + yaml.safe_dump(non_defaults(cfg), sort_keys=False))
    wall = time.perf_counter() - t0
    record = {
        "quick": quick, "seed": seed, "toy_dir": str(folder), "toy_preset": s["preset"], "toy_built": build_s is not None,
        "toy_build_s": build_s, "study_s": round(time.perf_counter() - t1, 3), "wall_s": round(wall, 3),
        "claims": {c["id"]: c["status"] for c in study["claims"]},
    }
    io.write_json(out / "demo.json", record)
    console().print(f"[bold]demo finished in {wall / 60:.1f} min[/bold] ({wall:.0f} s"
                    + (f", toy build {build_s:.0f} s" if build_s is not None else ", toy world reused")
                    + f"); open {out / 'report.html'}")
    return {**record, "report": str(out / "report.html"), "study": study}
