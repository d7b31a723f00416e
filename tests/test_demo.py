"""`rmteach demo` on fakes: the world is built once, a rerun reruns nothing."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from rmteach.core import io
from rmteach.core.config import to_plain
from rmteach.study.config import StudyConfig

from study_world import Counting, GOLD, fake_train


def fake_toy_build(tiny: dict, calls: list):
    """A `run_build` stand-in: a manifest and one evaluate_<policy>.yaml per policy, over the tiny models."""

    def build(folder: Path, *, seed: int, preset: str, overwrite: bool) -> dict:
        calls.append((folder, seed, preset))
        folder.mkdir(parents=True)
        rms = [
            {"name": "rm100", "callable": "rm_fns:gold_cubed"},
            {"name": "rm50", "path": str(tiny["rm_llama"])},
            {"name": "rm0", "path": str(tiny["rm_other_tok"])},
            {"name": "perfect", "callable": "rm_fns:gold", "transform": {"fraction": 0.5, "factor": 0.001, "seed": 1}},
            {"name": "loud", "path": str(tiny["rm_llama"]), "batch_size": 3},
        ]
        for name, key in (("alpha", "policy_gpt2"), ("beta", "policy_llama")):
            cfg = {"policy": {"name": name, "path": str(tiny[key])}, "reward_models": rms,
                   "ground_truth": {"name": GOLD, "callable": "rm_fns:gold"}, "prompts": {"path": "eval.jsonl"},
                   "preferences": {"path": str(tiny["prefs"])}}
            (folder / f"evaluate_{name}.yaml").write_text(yaml.safe_dump(cfg))
        for split in ("train", "eval"):
            (folder / f"{split}.jsonl").write_text(Path(tiny["prompts"]).read_text())
        manifest = {"seed": seed, "preset": preset, "prompt_sets": {"train": "train.jsonl", "eval": "eval.jsonl"},
                    "reward_models": [{"name": "loud", "role": "high_variance_inaccurate"}, {"name": "rm100", "role": "mixed"}]}
        io.write_json(folder / "manifest.json", manifest)
        return manifest

    return build


def test_demo_builds_the_world_once_and_reruns_nothing(tiny, tmp_path, monkeypatch):
    from rmteach import demo

    monkeypatch.delenv("RMTEACH_TOY_DIR", raising=False)
    monkeypatch.setitem(demo.SETTINGS["quick"], "jobs", 1)
    monkeypatch.setitem(demo.SETTINGS["quick"], "analysis", {**demo.SETTINGS["quick"]["analysis"], "bootstrap_samples": 20})
    calls: list = []
    out = tmp_path / "runs" / "demo"
    result = demo.run_demo(out, quick=True, seed=3, build=fake_toy_build(tiny, calls), train_fn=fake_train)
    toy = tmp_path / "runs" / "toy" / "tiny-seed3"
    assert calls == [(toy, 3, "tiny")]
    assert result["toy_built"] and result["wall_s"] > 0 and result["toy_dir"] == str(toy)
    saved = json.loads((out / "demo.json").read_text())
    assert saved["wall_s"] == result["wall_s"] and saved["claims"] == {c["id"]: c["status"] for c in result["study"]["claims"]}
    study = json.loads((out / "study.json").read_text())
    assert study["seeds"] == [3] and study["policies"] == ["alpha", "beta"]
    assert study["reward_models"] == ["rm100", "rm50", "rm0", "perfect", "loud"]
    cfg = study["config"]
    assert cfg["prompts"]["train"]["path"] == str(toy / "train.jsonl")
    assert cfg["prompts"]["eval"]["path"] == str(toy / "eval.jsonl")  # resolved against the world's folder
    assert cfg["train"]["steps"] == demo.SETTINGS["quick"]["train"]["steps"]
    # Section 4.2's kind of RM is trained and ranked but not correlated (the paper's 4.1 correlations)
    assert cfg["analysis"]["exclude_from_correlations"] == ["loud"] and study["correlations"]["excluded"] == ["loud"]
    assert all("alpha/loud" not in s["reward_models"] and "loud" not in s["reward_models"]
               for s in study["correlations"]["scopes"].values())
    assert "loud" in [r["reward_model"] for r in study["rankings"]["policies"]["alpha"]]
    assert (out / "report.html").is_file() and (toy / "cache" / "samples").is_dir()
    # OUT/study.yaml reruns the same study: it loads back to the config the study recorded.
    from rmteach.core.config import load_config

    again = load_config(StudyConfig, out / "study.yaml")
    assert json.loads(json.dumps(to_plain(again))) == json.loads((out / "config.json").read_text())["config"]
    # ... and lists only what differs from the defaults: no spelled-out nulls, no default the demo did not set
    written = yaml.safe_load((out / "study.yaml").read_text())
    assert ": null" not in (out / "study.yaml").read_text()
    assert "executor" not in written and "submitit" not in written  # the study's defaults, untouched by the demo
    assert written["reward_models"][0] == {"name": "rm100", "callable": "rm_fns:gold_cubed"}
    # A second demo reuses the world and every run.
    counting = Counting()
    second = demo.run_demo(out, quick=True, seed=3, build=fake_toy_build(tiny, calls), train_fn=counting)
    assert len(calls) == 1 and counting.calls == [] and not second["toy_built"]
    assert (out / "study.json").read_text() == json.dumps(study, indent=2, sort_keys=True) + "\n"


    # More seeds: a rerun with --seeds 2 (and --overwrite) trains only the new seed's runs.
    more = Counting()
    third = demo.run_demo(out, quick=True, seed=3, seeds=2, overwrite=True, build=fake_toy_build(tiny, calls),
                          train_fn=more)
    assert third["study"]["seeds"] == [3, 4] and more.calls and all(c.endswith("/seed4") for c in more.calls)
    assert len(more.calls) == len(study["runs"])  # one new run per (policy, RM) that had one run before
