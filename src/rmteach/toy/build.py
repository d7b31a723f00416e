"""`rmteach toy build`: the toy world of tiny real models, built deterministically from a seed.

Steps, each a resumable part (`rmteach.toy.parts`) in its own folder under `--out`:

1. `data/`: prompt sets (`train` for policy gradient, `eval` for measurement, and the RM-training prompts),
   the off-policy preference pairs (train pool and held-out test set).
2. `policies/<name>/`: each initial policy, a tiny causal LM trained from scratch on demonstrations.
3. `on_policy/`: on-policy pairs, two samples of the first policy per prompt (train pool and test set).
4. `reward_models/<name>/`: the zoo, Bradley-Terry RMs started from the first policy's weights (as the
   paper's RMs start from the SFT model): one per on-policy share (100/75/50/25/0 %, same total size), and
   one trained on a narrow slice (off-policy pairs whose chosen answer is the longer one: a length-biased RM
   with high variance and poor accuracy, the paper's Section 4.2 case).
5. `evaluate.yaml`, `evaluate_<policy>.yaml` and, last, `manifest.json` (`toy.manifest`; paths relative to `--out`).

The ground truth (`rmteach.toy.task:ground_truth`) and the perfectly accurate, low-variance RM (the ground
truth with a `ScaleTransform`) are callables, recorded in the manifest and the configs.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core import io, outdir
from ..core.data import write_jsonl
from ..core.errors import UserError
from ..core.progress import console
from . import task
from .config import PolicySpec, ToyConfig, resolve_config, rm_prompt_count
from .fit import FitSettings, fit_policy, fit_reward_model
from .pairs import Row, mix, sampled_pairs, writer_pairs
from .manifest import LONG_RM, SCHEMA, build_manifest, evaluate_config, mix_name
from .parts import Job, Part, Workers, derive_seed, run_jobs

PART_FOLDERS = ("data", "policies", "on_policy", "reward_models")
MAX_LEN = 64  # positions of the tiny models: a conversation is at most ~25 tokens


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: the toy's models are too small to gain from more, and on a shared 2-core
    machine extra threads cost several times the time; one thread also keeps the float sums in one order."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit(optim) -> FitSettings:
    return FitSettings(epochs=optim.epochs, batch_size=optim.batch_size, lr=optim.lr)


# ----------------------------------------------------------------------------------------------------------
# 1. Prompts and off-policy data


def build_data(part: Part, cfg: ToyConfig, seed: int, *, progress=None) -> dict[str, Any]:
    """Prompt sets and off-policy pairs. Returns facts for the manifest."""
    d = part.start()
    rng = np.random.default_rng(derive_seed(seed, "prompts"))
    eval_p = task.sample_prompts(cfg.prompts.eval, rng)
    train_p = task.sample_prompts(cfg.prompts.train, rng, exclude=set(eval_p))
    # RM training prompts are disjoint from both: the paper splits RM data from policy-gradient prompts.
    rm_p = task.sample_prompts(rm_prompt_count(cfg.zoo.pairs), rng, exclude=set(eval_p) | set(train_p))
    write_jsonl(d / "prompts_eval.jsonl", [{"id": f"eval-{i:04d}", "prompt": p} for i, p in enumerate(eval_p)])
    write_jsonl(d / "prompts_train.jsonl", [{"id": f"train-{i:04d}", "prompt": p} for i, p in enumerate(train_p)])
    write_jsonl(d / "prompts_rm.jsonl", [{"id": f"rm-{i:05d}", "prompt": p} for i, p in enumerate(rm_p)])
    style = cfg.off_policy.style()
    # A pool three times the RM size, so the narrow (length) slice can still be full size.
    pool = writer_pairs(rm_p, style, 3 * cfg.zoo.pairs, np.random.default_rng(derive_seed(seed, "off_train")),
                        prefix="off-train")
    test = writer_pairs(eval_p, style, cfg.zoo.test_pairs, np.random.default_rng(derive_seed(seed, "off_test")),
                        prefix="off-test")
    write_jsonl(d / "preferences_off_policy_train.jsonl", pool)
    write_jsonl(d / "preferences_off_policy_test.jsonl", test)
    if progress:
        progress(1)
    return {"prompts": {"train": len(train_p), "eval": len(eval_p), "rm": len(rm_p)},
            "off_policy_pairs": {"train": len(pool), "test": len(test)}}


def _prompts(path: Path) -> list[str]:
    return [r["prompt"] for r in io.read_jsonl_rows(path)]


# ----------------------------------------------------------------------------------------------------------
# 2. Policies


def policy_steps(spec: PolicySpec) -> int:
    return spec.optim.epochs * -(-spec.demos // spec.optim.batch_size)


def build_policy(part: Part, spec: PolicySpec, data_dir: Path, seed: int, *, progress=None) -> dict[str, Any]:
    """Train one policy from scratch on demonstrations in its style; save it as an HF directory."""
    from .tiny import build_policy as new_policy

    d = part.start()
    s = derive_seed(seed, f"policy:{spec.name}")
    rng = np.random.default_rng(s)
    # Demonstration prompts: drawn like any prompt, but never one of the train/eval prompts handed out.
    held_out = set(_prompts(data_dir / "prompts_eval.jsonl")) | set(_prompts(data_dir / "prompts_train.jsonl"))
    prompts = task.sample_prompts(spec.demos, rng, exclude=held_out, distinct=False)
    style = spec.style.style()
    demos = [task.write_response(p, style, rng) for p in prompts]
    extra = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0) if spec.arch == "gpt2" else {}
    model, tok = new_policy(d, task.WORDS, arch=spec.arch, seed=s, d=spec.d, layers=spec.layers, heads=spec.heads,
                            max_len=MAX_LEN, **extra)
    loss = fit_policy(model, tok, prompts, demos, _fit(spec.optim), seed=s, progress=progress)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    write_jsonl(d / "demos.jsonl", [{"prompt": p, "response": r} for p, r in zip(prompts, demos)])
    return {"final_loss": round(loss, 6), "demo_reward": round(float(np.mean(task.ground_truth(prompts, demos))), 6)}


# ----------------------------------------------------------------------------------------------------------
# 3. On-policy pairs


def build_on_policy(
    part: Part, cfg: ToyConfig, policy_dir: Path, data_dir: Path, seed: int, *, progress=None
) -> dict[str, Any]:
    """Pairs of two samples of the first policy, on the RM prompts (train pool) and eval prompts (test)."""
    d = part.start()
    rm_p = _prompts(data_dir / "prompts_rm.jsonl")
    eval_p = _prompts(data_dir / "prompts_eval.jsonl")
    mnt = cfg.sampling.max_new_tokens
    train = sampled_pairs(policy_dir, rm_p, cfg.zoo.pairs, seed=derive_seed(seed, "on_train"),
                          prefix="on-train", max_new_tokens=mnt, progress=progress)
    test = sampled_pairs(policy_dir, eval_p, cfg.zoo.test_pairs, seed=derive_seed(seed, "on_test"),
                         prefix="on-test", max_new_tokens=mnt, progress=progress)
    write_jsonl(d / "preferences_on_policy_train.jsonl", train)
    write_jsonl(d / "preferences_on_policy_test.jsonl", test)
    return {"on_policy_pairs": {"train": len(train), "test": len(test)}}


# ----------------------------------------------------------------------------------------------------------
# 4. Reward models


def rm_steps(n_pairs: int, cfg: ToyConfig) -> int:
    return cfg.zoo.optim.epochs * -(-n_pairs // cfg.zoo.optim.batch_size)


def build_reward_model(
    part: Part, name: str, pairs: list[Row], init_dir: Path, cfg: ToyConfig, seed: int, *, progress=None
) -> dict[str, Any]:
    """Bradley-Terry RM started from the first policy's weights (new scalar head); save as an HF directory."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..core.hf import load_weights

    d = part.start()
    s = derive_seed(seed, f"rm:{name}")
    torch.manual_seed(s)  # the new head's initialisation
    # A policy's weights under a new scalar head, explicitly: rmteach refuses a new head by default.
    model = load_weights(AutoModelForSequenceClassification, str(init_dir), "toy policy", new_head_ok=True,
                         num_labels=1, hint="rebuild the toy world's policies (delete its policies/ folder)")
    tok = AutoTokenizer.from_pretrained(init_dir)
    model.config.pad_token_id = tok.pad_token_id
    acc = fit_reward_model(model, tok, [r["prompt"] for r in pairs], [r["chosen"] for r in pairs],
                           [r["rejected"] for r in pairs], _fit(cfg.zoo.optim), seed=s, progress=progress)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    n_on = sum(r["source"] == "on_policy" for r in pairs)
    return {"train_pairs": len(pairs), "on_policy_pairs": n_on, "train_accuracy": round(acc, 6)}


def longer_chosen(row: Row) -> bool:
    """The narrow slice of the length-biased RM: pairs whose chosen answer has more words."""
    return len(row["chosen"].split()) > len(row["rejected"].split())


# ----------------------------------------------------------------------------------------------------------
# The command


def build(root: Path, cfg: ToyConfig, seed: int, *, workers: int) -> dict[str, Any]:
    """Build (or finish) every part under `root`; return the manifest (not yet written)."""
    with Workers(workers) as pool:  # one set of worker processes for the policies and the zoo
        return _build(root, cfg, seed, pool)


def _build(root: Path, cfg: ToyConfig, seed: int, workers: Workers) -> dict[str, Any]:
    infos: dict[str, dict[str, Any]] = {}
    base = {"seed": seed, "words": list(task.WORDS)}
    data = Part.at(root, "data", {**base, "prompts": cfg.prompts.model_dump(), "pairs": cfg.zoo.pairs,
                                  "off_policy": cfg.off_policy.model_dump(), "test_pairs": cfg.zoo.test_pairs})
    infos |= run_jobs([Job(data, "data", build_data, (cfg, seed), 1)], workers=1, title="writing prompts and pairs")

    policies = [Part.at(root, f"policies/{p.name}", {**base, "data": data.key, "spec": p.model_dump()})
                for p in cfg.policies]
    infos |= run_jobs([Job(part, f"policy:{p.name}", build_policy, (p, data.dir, seed), policy_steps(p))
                       for part, p in zip(policies, cfg.policies)], workers=workers, title="training policies")
    first = policies[0]

    on = Part.at(root, "on_policy", {**base, "data": data.key, "policy": first.key, "pairs": cfg.zoo.pairs,
                                     "test_pairs": cfg.zoo.test_pairs, "max_new_tokens": cfg.sampling.max_new_tokens})
    n_prompts = infos["data"]["prompts"]["rm"] + infos["data"]["prompts"]["eval"]
    infos |= run_jobs([Job(on, "on_policy", build_on_policy, (cfg, first.dir, data.dir, seed), n_prompts)],
                      workers=1, title=f"sampling on-policy pairs from '{cfg.policies[0].name}'")

    on_pool = io.read_jsonl_rows(on.dir / "preferences_on_policy_train.jsonl")
    off_pool = io.read_jsonl_rows(data.dir / "preferences_off_policy_train.jsonl")
    rm_base = {**base, "data": data.key, "on_policy": on.key, "init": first.key,
               "optim": cfg.zoo.optim.model_dump(), "pairs": cfg.zoo.pairs}
    sets = {mix_name(m): ({"share": m}, mix(on_pool, off_pool, m, cfg.zoo.pairs)) for m in cfg.zoo.mixes}
    sets[LONG_RM] = ({"slice": "longer_chosen"}, [r for r in off_pool if longer_chosen(r)][: cfg.zoo.pairs])
    jobs = [Job(Part.at(root, f"reward_models/{name}", {**rm_base, **extra}), name, build_reward_model,
                (name, pairs, first.dir, cfg, seed), rm_steps(len(pairs), cfg))
            for name, (extra, pairs) in sets.items()]
    infos |= run_jobs(jobs, workers=workers, title=f"training {len(jobs)} reward models")
    return build_manifest(cfg, seed, root, infos)


def run_build(
    out: str | Path, *, seed: int = 0, preset: str = "default", overwrite: bool = False,
    overrides: dict[str, Any] | None = None, workers: int | None = None,
) -> dict[str, Any]:
    """`rmteach toy build`: build the toy world into `out` and write its manifest and configs.

    Arguments:
        out: the world's folder (created; an interrupted build of the same world there is finished).
        seed: seed of everything random in the world (>= 0).
        preset: `default` (the demo world, a few minutes on 2 CPU cores) or `tiny` (seconds, for tests).
        overwrite: build even if `out` holds a different world or other files.
        overrides: nested changes to the preset's settings (see `rmteach.toy.config.ToyConfig`).
        workers: processes for independent parts (default: up to 2, the CPU count); same result for any.

    Returns:
        The manifest (also written to `out/manifest.json`).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"--seed must be an integer >= 0 (got {seed})")
    cfg = resolve_config(preset, overrides)
    ident = {"seed": seed, "toy": cfg.model_dump(mode="json")}
    root = io.claim_out_dir(out, "build.json", ident, overwrite, "toy build")
    if not (root / "build.json").is_file():
        # --overwrite on a folder that is not a toy world: parts wipe their folder, so never touch one
        # that holds something a build did not write.
        for name in PART_FOLDERS:
            if (root / name).exists():
                raise UserError(f"--out {root} already has a '{name}' that no toy build wrote; choose another folder")
    outdir.claim(root, "toy build")
    io.write_json(root / "build.json", {"schema": SCHEMA, "config": ident})
    from ..core.hf import quiet

    quiet()
    t0 = time.perf_counter()
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    with single_thread():
        manifest = build(root, cfg, seed, workers=workers)
    zoo = manifest["reward_models"]
    for p in cfg.policies:
        io.write_yaml(root / f"evaluate_{p.name}.yaml", evaluate_config(p.name, zoo, cfg),
                   f"rmteach toy build (seed {seed}, preset {cfg.preset}): every zoo RM on policy '{p.name}'")
    first = cfg.policies[0].name
    io.write_yaml(root / "evaluate.yaml", evaluate_config(first, zoo, cfg),
               f"rmteach toy build (seed {seed}, preset {cfg.preset}): every zoo RM on the first policy '{first}'")
    io.write_json(root / "manifest.json", manifest)  # last: its presence means a whole world
    console().print(f"toy world built in {time.perf_counter() - t0:.0f} s: {root / 'manifest.json'}")
    return manifest
