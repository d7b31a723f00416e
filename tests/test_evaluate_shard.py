"""`rmteach evaluate` under `accelerate launch` (2 CPU processes, gloo) and after `kill -9`.

Sharded: every process samples and scores only its share (counted in timing.json), and the outputs are
byte-identical to one process's. Killed: a rerun reuses the finished RMs' scores and writes the same report
as a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import write_eval_config

pytestmark = pytest.mark.slow  # multi-process launches: `make test-all`

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
OUTPUTS = ("report.json", "rewards.parquet", "prompts.parquet", "preference_rewards.parquet", "summary.md")


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "RMTEACH_CACHE_DIR": str(cache), **extra}


def _rmteach(*args: str) -> list[str]:
    return [sys.executable, "-m", "rmteach", *args]


def _accelerate(*args: str) -> list[str]:
    with socket.socket() as s:  # a free port for the process group's rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
            str(ROOT / "configs" / "accelerate_cpu2.yaml"), "--main_process_port", str(port), "-m", "rmteach", *args]


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"exit {r.returncode}\n--- stdout ---\n{r.stdout[-2000:]}\n--- stderr ---\n{r.stderr}"
    return r


def _prompts(path: Path, n: int) -> Path:
    words = [f"w{i}" for i in range(12)]
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": " ".join(words[i % 10 : i % 10 + 1 + i % 3])}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


def test_two_processes_write_what_one_writes_each_doing_only_its_share(tiny, tmp_path):
    n, k, n_pairs = 13, 4, 6  # 13 prompts in batches of 3: 5 batches, dealt 3 and 2
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, prompts={"path": str(_prompts(tmp_path / "p.jsonl", n))})
    one, two = tmp_path / "one", tmp_path / "two"
    _run(_rmteach("evaluate", "-c", str(cfg), "-o", str(one)), _env(tmp_path / "cache1"))
    _run(_accelerate("evaluate", "-c", str(cfg), "-o", str(two)), _env(tmp_path / "cache2"))
    for name in OUTPUTS:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    work = json.loads((two / "timing.json").read_text())["work"]
    assert json.loads((one / "timing.json").read_text())["processes"] == 1
    assert len(work) == 2
    # Sampling: whole batches of 3 prompts, dealt round-robin (batches 0, 2, 4 and 1, 3 of 13 prompts).
    assert sorted(w["sampled_prompts"] for w in work) == [6, 7]
    names = [rm["name"] for rm in yaml.safe_load(cfg.read_text())["reward_models"]] + ["gold"]
    for name in names:  # every pair scored once, by one process, and both processes scored
        counts = [w[f"scored_pairs:{name}"] for w in work]
        assert sum(counts) == n * k + 2 * n_pairs and min(counts) > 0, (name, counts)
    # The caches do not depend on the number of processes: a sharded rerun reuses the one-process run's.
    again = _run(_accelerate("evaluate", "-c", str(cfg), "-o", str(tmp_path / "again")), _env(tmp_path / "cache1"))
    assert "using cached samples" in again.stderr and "using cached scores of rm_llama" in again.stderr
    assert (tmp_path / "again" / "report.json").read_bytes() == (one / "report.json").read_bytes()
    # Bad input in a sharded run: every process says it in one line of its own and exits 2, nothing aborts.
    other = yaml.safe_load(cfg.read_text())
    other["sampling"]["seed"] += 1
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    r = subprocess.run(_accelerate("evaluate", "-c", str(tmp_path / "other.yaml"), "-o", str(two)),
                       env=_env(tmp_path / "cache1"),
                       capture_output=True, text=True, timeout=300)
    errors = [line for line in r.stderr.splitlines() if line.startswith("rmteach evaluate: error:")]
    assert r.returncode != 0 and len(errors) == 2 and "already holds a different" in errors[0], r.stderr
    assert "terminate called" not in r.stderr and "exitcode  : 2" in r.stderr, r.stderr


def test_a_process_of_a_sharded_run_exits_with_its_code_after_running_exit_handlers(tmp_path):
    # `_exit_now` skips interpreter finalization (where gloo's threads abort) but not exit handlers or output.
    marker = tmp_path / "handler_ran"
    code = ("import atexit, pathlib, sys; from rmteach.cli import _exit_now; "
            f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes'); "
            "sys.stdout.write('unflushed'); _exit_now(3)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, marker.read_text()) == (3, "unflushed", "yes")


def test_a_run_killed_mid_scoring_resumes_without_rescoring_finished_rms(tiny, tmp_path):
    rms = [{"name": "rm_llama", "path": str(tiny["rm_llama"]), "batch_size": 5},
           {"name": "slow_judge", "callable": "rm_fns:gold_then_hang"}]
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, reward_models=rms)
    cache, marker, out = tmp_path / "cache", tmp_path / "hanging", tmp_path / "out"
    proc = subprocess.Popen(_rmteach("evaluate", "-c", str(cfg), "-o", str(out)),
                            env=_env(cache, RMTEACH_TEST_HANG=str(marker)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():  # rm_llama has finished; slow_judge is scoring
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "report.json").exists()
    assert len(list((cache / "scores").glob("*.npz"))) == 1  # rm_llama's, written whole before the kill

    resumed = _run(_rmteach("evaluate", "-c", str(cfg), "-o", str(out), "--overwrite"), _env(cache))
    assert "using cached scores of rm_llama" in resumed.stderr
    assert "using cached samples" in resumed.stderr
    fresh = tmp_path / "fresh"
    _run(_rmteach("evaluate", "-c", str(cfg), "-o", str(fresh)), _env(tmp_path / "cache_fresh"))
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (fresh / name).read_bytes(), name
