"""`executor: submitit`: a study's train runs as submitit jobs, through submitit's local executor (no SLURM
here: the SLURM side is checked only as far as the sbatch script it would submit), the config block, errors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from helpers import run_cli

from rmteach.core.config import load_config
from rmteach.core.errors import UserError
from rmteach.study.config import StudyConfig, SubmititConfig
from rmteach.study.executors import make_executor

from study_world import fake_evaluate, fake_train, make_config, study_dict

pytestmark = pytest.mark.slow  # cluster executors in worker processes: `make test-all`

TESTS = Path(__file__).resolve().parent
LOCAL = {"cluster": "local", "timeout_min": 5}
SMALL = {"seeds": [0], "reward_models": study_dict()["reward_models"][:3]}  # rm100, rm50, rm0
N_RUNS = 2 * (3 + 1)  # policies x (candidates + ground truth), one seed


@pytest.fixture(autouse=True)
def _importable_fakes(monkeypatch):
    """The jobs are fresh Python processes: they import the fake trainers by name from this folder."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


def run_study(*args, **kwargs):
    """`rmteach.study.run.run_study`, imported when called: each job imports this module for its fake trainer,
    and need not import the study's analysis (scipy) too."""
    from rmteach.study.run import run_study

    return run_study(*args, **kwargs)


def tally_train(cfg, out, *, resume, overwrite):
    """`fake_train`, leaving one line per call in OUT/calls.txt (the calls happen in other processes)."""
    with open(Path(out).parents[3] / "calls.txt", "a", encoding="utf-8") as f:  # OUT/runs/<policy>/<rm>/seed<k>
        f.write(f"{cfg.policy.display_name}/{cfg.reward_model.name}/seed{cfg.seed}\n")
    return fake_train(cfg, out, resume=resume, overwrite=overwrite)


def crashing_train(cfg, out, *, resume, overwrite):
    """A trainer with a bug in one run (alpha/rm50)."""
    if (cfg.policy.display_name, cfg.reward_model.name) == ("alpha", "rm50"):
        raise RuntimeError("boom in the trainer")
    return fake_train(cfg, out, resume=resume, overwrite=overwrite)


def refusing_train(cfg, out, *, resume, overwrite):
    """A trainer that finds the input bad, as run_train does with a UserError."""
    raise UserError("prompts_per_step (8) is larger than the train prompt set (4)")


def _calls(out: Path) -> list[str]:
    path = out / "calls.txt"
    return sorted(path.read_text().split()) if path.exists() else []


def test_same_study_as_local_and_a_rerun_resumes(tmp_path):
    local = make_config(**SMALL)
    run_study(local, tmp_path / "local", train_fn=fake_train, evaluate_fn=fake_evaluate)
    cfg = make_config(**SMALL, executor="submitit", submitit=LOCAL)
    out = tmp_path / "sub"
    run_study(cfg, out, train_fn=tally_train, evaluate_fn=fake_evaluate)
    first = (out / "study.json").read_text()
    got, want = (json.loads((o / "study.json").read_text()) for o in (out, tmp_path / "local"))
    assert (got["config"].pop("executor"), want["config"].pop("executor")) == ("submitit", "local")
    assert got["config"].pop("submitit") == SubmititConfig(**LOCAL).model_dump()
    assert want["config"].pop("submitit") is None
    assert got == want  # everything but the executor settings
    keys = sorted(f"{r['policy']}/{r['reward_model']}/seed0" for r in want["runs"])
    assert _calls(out) == keys and len(keys) == N_RUNS  # one job per run
    assert len(list((out / "runs").rglob("done.json"))) == N_RUNS
    timing = json.loads((out / "timing.json").read_text())
    assert timing["executor"] == "submitit" and all(t is not None for t in timing["train_s"].values())

    run_study(cfg, out, train_fn=tally_train, evaluate_fn=fake_evaluate)  # all finished: nothing submitted
    assert _calls(out) == keys
    assert all(t is None for t in json.loads((out / "timing.json").read_text())["train_s"].values())

    for key in keys[:2]:  # two runs lost their marker (as if killed): only they are submitted again
        policy, rm, seed = key.split("/")
        (out / "runs" / policy / rm / seed / "done.json").unlink()
    run_study(cfg, out, train_fn=tally_train, evaluate_fn=fake_evaluate)
    assert _calls(out) == sorted(keys + keys[:2])
    assert (out / "study.json").read_text() == first


def test_a_local_study_moves_to_submitit_with_overwrite_and_trains_nothing_again(tmp_path):
    out = tmp_path / "s"
    run_study(make_config(**SMALL), out, train_fn=fake_train, evaluate_fn=fake_evaluate)
    cfg = make_config(**SMALL, executor="submitit", submitit=LOCAL)
    with pytest.raises(UserError, match="already holds a different study"):  # the executor is part of the config
        run_study(cfg, out, train_fn=tally_train, evaluate_fn=fake_evaluate)
    study = run_study(cfg, out, overwrite=True, train_fn=tally_train, evaluate_fn=fake_evaluate)
    assert _calls(out) == [] and not (out / "submitit").exists() and len(study["runs"]) == N_RUNS


def test_a_crashed_job_names_its_run_job_and_log_and_the_others_finish(tmp_path):
    cfg = make_config(**SMALL, executor="submitit", submitit=LOCAL)
    with pytest.raises(UserError, match=r"^train run alpha/rm50/seed0: job \S+ failed: RuntimeError: boom in the "
                       r"trainer \(log: .+_log\.err\)$") as e:
        run_study(cfg, tmp_path / "s", train_fn=crashing_train, evaluate_fn=fake_evaluate)
    log = Path(str(e.value).rsplit("(log: ", 1)[1][:-1])
    assert log.parent == tmp_path / "s" / "submitit" and "boom in the trainer" in log.read_text()
    assert not (tmp_path / "s" / "study.json").exists()
    runs = tmp_path / "s" / "runs"
    done = sorted(p.parent.relative_to(runs).as_posix() for p in runs.rglob("done.json"))
    assert len(done) == N_RUNS - 1 and "alpha/rm50/seed0" not in done  # the others went on
    run_study(cfg, tmp_path / "s", train_fn=tally_train, evaluate_fn=fake_evaluate)  # fixed: only that run again
    assert _calls(tmp_path / "s") == ["alpha/rm50/seed0"]


def test_a_bad_run_names_itself_with_its_job_and_log(tmp_path):
    cfg = make_config(seeds=[0], reward_models=study_dict()["reward_models"][:2], train_on_ground_truth=False,
                      executor="submitit", submitit=LOCAL)
    with pytest.raises(UserError, match=r"^train run \w+/\w+/seed0: prompts_per_step \(8\) is larger than the "
                       r"train prompt set \(4\) \(job \S+, log: .+_log\.err\)$"):
        run_study(cfg, tmp_path / "s", train_fn=refusing_train, evaluate_fn=fake_evaluate)


# submitit's debug executor leaves its log files open
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_debug_cluster_runs_the_jobs_in_this_process(tmp_path):
    cfg = make_config(**SMALL, executor="submitit", submitit={"cluster": "debug"})
    study = run_study(cfg, tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    assert len(study["runs"]) == N_RUNS and len(list((tmp_path / "s" / "runs").rglob("done.json"))) == N_RUNS


# ----------------------------------------------------------------------------------------------------------
# The config block and what is checked before anything runs


def _write(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.mark.parametrize("changes, message", [
    ({"executor": "submitit", "submitit": {"cluster": "local", "gpus": 1}},
     "unknown key 'submitit.gpus' (allowed here: cluster, folder, partition"),
    ({"submitit": {"cluster": "local"}}, "a submitit block needs 'executor: submitit'"),
    ({"executor": "slurm"}, "executor: Input should be 'local' or 'submitit'"),
    ({"executor": "submitit", "submitit": {"cluster": "pbs"}}, "submitit.cluster: Input should be 'slurm', 'local'"),
    ({"executor": "submitit", "submitit": {"timeout_min": 0}}, "submitit.timeout_min: Input should be greater"),
])
def test_bad_submitit_configs_fail_with_one_line(tmp_path, capsys, changes, message):
    path = _write(tmp_path, study_dict(**changes))
    code, out, err = run_cli(["study", "--config", path, "--out", tmp_path / "out"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert message in err and not (tmp_path / "out").exists()


def test_missing_submitit_or_slurm_fails_before_anything_runs(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path, study_dict(executor="submitit"))  # cluster: slurm by default
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    code, _, err = run_cli(["study", "--config", path, "--out", tmp_path / "out"], capsys)
    assert code == 2 and err.count("\n") == 1 and "slurm needs SLURM's sbatch and srun on PATH" in err
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed
    code, _, err = run_cli(["study", "--config", path, "--out", tmp_path / "out"], capsys)
    assert code == 2 and err.count("\n") == 1 and "pip install 'rmteach[cluster]'" in err
    assert not (tmp_path / "out").exists()


def test_slurm_parameters_reach_the_sbatch_script(tmp_path, monkeypatch):
    """What SLURM would be given (submitit needs srun on PATH to build its SLURM executor: a stub)."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    s = SubmititConfig(partition="gpu", account="lab", qos="high", constraint="a100", gpus_per_node=1,
                       cpus_per_task=8, mem_gb=64, timeout_min=90, max_parallel=16, setup=["module load cuda"],
                       slurm_additional_parameters={"gres": "gpu:a100:1"})
    executor = make_executor(s, tmp_path / "submitit")._executor
    executor.parameters["map_count"] = 48  # set by submitit when it submits an array of 48 jobs
    script = executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("--partition=gpu", "--account=lab", "--qos=high", "--constraint=a100", "--gpus-per-node=1",
                 "--cpus-per-task=8", "--mem=64GB", "--time=90", "--array=0-47%16", "--gres=gpu:a100:1",
                 "--job-name=rmteach-study"):
        assert f"#SBATCH {line}\n" in script
    assert "\nmodule load cuda\n" in script


def test_checked_in_slurm_preset_loads():
    path = TESTS.parent / "configs" / "study_slurm.yaml"
    cfg = load_config(StudyConfig, path)
    assert cfg.executor == "submitit" and cfg.submitit is not None and cfg.submitit.cluster == "slurm"
    assert cfg.submitit.gpus_per_node == 1 and cfg.train["device"] == "cuda"
