"""Every benchmark runs at its smoke size and writes its figures: a change that breaks one fails here.

Each script runs as the user runs it (`python benchmarks/bench_x.py --smoke --json PATH`, this interpreter,
the environment's PYTHONPATH kept). Only that it runs and what it writes are checked: figures finite and
positive, sizes the smoke sizes, the machine's facts as read here; a speed is never asserted.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
pytestmark = pytest.mark.slow


def _run(script: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a benchmark in `cwd`, the environment's PYTHONPATH kept (its relative entries made absolute)."""
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def _smoke(script: str, tmp_path: Path, *args: str) -> dict:
    """Run `script --smoke --json tmp_path/figures.json ARGS`; returns the figures file, checked in common."""
    out = tmp_path / "figures.json"
    proc = _run(script, tmp_path, "--smoke", "--json", str(out), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["schema"] == "rmteach.bench/1" and data["benchmark"] == script[len("bench_"):-len(".py")]
    assert data["figures"] and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        for v in data["figures"].values()), data["figures"]
    assert data["sizes"]["smoke"] is True
    m = data["machine"]
    assert m["cpu_count"] == os.cpu_count() and 1 <= m["usable_cores"] <= os.cpu_count()
    assert (m["torch"], m["transformers"]) == (version("torch"), version("transformers"))
    return data


def test_bench_toy(tmp_path):
    data = _smoke("bench_toy.py", tmp_path, "--out", str(tmp_path / "out"))
    assert set(data["figures"]) == {"build_s", "evaluate_s"} and data["sizes"]["preset"] == "tiny"
    manifest = json.loads((tmp_path / "out" / "world" / "manifest.json").read_text())
    zoo = [rm["name"] for rm in manifest["reward_models"]] + [manifest["ground_truth"]["name"]]
    assert sorted(data["report_card"]) == sorted(zoo)
    assert data["report_card"]["ground_truth"]["english_onpolicy_accuracy"] == 1.0  # the ground truth ranks perfectly


def test_bench_train(toy_world, tmp_path):
    world, manifest = toy_world
    data = _smoke("bench_train.py", tmp_path, "--world", str(world))
    for clock in ("wall", "cpu"):
        f = data["figures"]
        assert {f"{clock}_ratio", f"{clock}_pair_ratio_min", f"{clock}_pair_ratio_max", f"{clock}_best_ratio"} <= set(f)
        # one pair at the smoke size: the ratio is that pair's (and the best of one run is that run)
        assert f[f"{clock}_pair_ratio_min"] == f[f"{clock}_ratio"] == f[f"{clock}_pair_ratio_max"]
        assert f[f"{clock}_best_ratio"] == pytest.approx(f[f"{clock}_ratio"])
        assert f[f"{clock}_ratio"] == pytest.approx(f[f"{clock}_rmteach_steps_per_s"] / f[f"{clock}_plain_steps_per_s"])
    assert (data["sizes"]["steps"], data["sizes"]["repeats"]) == (3, 1)
    assert all(len(v) == 1 for v in data["runs"].values())
    for side in ("plain", "rmteach"):  # steps 1..N-1 of the one run of each side, on both clocks
        [run] = data["step_seconds"][side]
        assert len(run["wall"]) == len(run["cpu"]) == 3 - 1
        assert data["runs"][f"{side}_wall_steps_per_s"][0] == pytest.approx(2 / sum(run["wall"]))
    assert data["sizes"]["reward_model"] == manifest["reward_models"][0]["name"]


def test_bench_evaluate(toy_world, tmp_path):
    data = _smoke("bench_evaluate.py", tmp_path, "--world", str(toy_world[0]))
    f = data["figures"]
    assert set(f) == {"speedup", "rmteach_s", "plain_s", "one_more_rm_s"}
    assert f["speedup"] == pytest.approx(f["plain_s"] / f["rmteach_s"])
    assert (data["sizes"]["prompts"], data["sizes"]["k"], len(data["sizes"]["reward_models"])) == (4, 2, 1)


def test_bench_sampling_builds_the_tiny_world_when_given_nothing(tmp_path):
    data = _smoke("bench_sampling.py", tmp_path)
    f = data["figures"]
    assert {"hf_samples_per_s", "hf_sample_s", "hf_load_s"} <= set(f)
    hf = next(r for r in data["results"] if r["backend"] == "hf")
    assert hf["samples"] == 8 * 2  # smoke: 8 prompts x 2 samples
    assert f["hf_samples_per_s"] == pytest.approx(hf["samples"] / f["hf_sample_s"])
    assert data["sizes"]["policy"] == "toy:english"
    if importlib.util.find_spec("vllm") is None:  # a backend that cannot run here is reported, not timed
        assert list(data["skipped"]) == ["vllm"] and "vLLM" in data["skipped"]["vllm"]
        assert set(f) == {"hf_samples_per_s", "hf_sample_s", "hf_load_s"}


def test_bench_theory(tmp_path):
    data = _smoke("bench_theory.py", tmp_path)
    f = data["figures"]
    assert data["same_parameters"] is True  # the loop and the vectorized flow land on the same parameters
    assert f["speedup"] == pytest.approx(f["vectorized_steps_per_s"] / f["loop_steps_per_s"])
    assert f["vectorized_steps_per_s"] == pytest.approx(data["sizes"]["steps"] / f["vectorized_seconds"])


@pytest.mark.parametrize("script", ["bench_train.py", "bench_evaluate.py", "bench_sampling.py"])
def test_a_missing_world_is_one_line_and_exit_2(script, tmp_path):
    proc = _run(script, tmp_path, "--smoke", "--world", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert proc.stderr == f"{script}: error: --world {tmp_path / 'nowhere'}: no manifest.json there (build one with " \
                          f"`rmteach toy build --out {tmp_path / 'nowhere'}`)\n"
