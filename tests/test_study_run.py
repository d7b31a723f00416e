"""`rmteach study` end to end with the fake world: outcomes, correlations, claims, resume, jobs, the
real evaluate and the real trainer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rmteach.core.config import validate
from rmteach.core.errors import UserError
from rmteach.study.run import run_study
from rmteach.study.config import StudyConfig

from study_world import CANDIDATES, GOLD, POLICIES, SEED_BUMP, WORLD, Counting, fake_evaluate, fake_train, gold_increase, make_config, study_dict


# ----------------------------------------------------------------------------------------------------------
# End to end


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One whole study with the fakes, shared by the checks that only read its outputs."""
    out = tmp_path_factory.mktemp("study") / "out"
    return out, run_study(make_config(), out, train_fn=fake_train, evaluate_fn=fake_evaluate)


def test_runs_outcomes_and_normalization(finished):
    out, study = finished
    saved = json.loads((out / "study.json").read_text())
    assert saved == json.loads(json.dumps(study)) and saved["schema"] == "rmteach.study/1"
    assert len(saved["runs"]) == 2 * (5 + 1) * 2  # policies x (candidates + ground truth) x seeds
    for r in saved["runs"]:
        inc = gold_increase(r["policy"], r["reward_model"], r["seed"])
        o = r["outcomes"]
        assert o["gold_increase@1"] == pytest.approx(inc)
        assert o["gold_increase@0.25"] == pytest.approx(inc / 4) and o["gold_increase@0.5"] == pytest.approx(inc / 2)
        assert o["gold_auc"] == pytest.approx(inc / 2)  # a straight line from 0 to inc
        assert o["proxy_increase@1"] == pytest.approx(2 * inc)
        assert r["predictors"]["reward_variance"] == WORLD[(r["policy"], r["reward_model"])][0]
        # The run trained with the RM's normalization from its policy's evaluate report.
        done = json.loads((out / r["folder"] / "done.json").read_text())["config"]
        report_path = out / "evaluate" / r["policy"] / "report.json"
        card = next(c for c in json.loads(report_path.read_text())["reward_models"] if c["name"] == r["reward_model"])
        assert done["normalization"] == card["normalization"] == r["evaluate"]["normalization"]
        train = done["train"]
        assert train["normalization"]["path"] == str(report_path)
        assert train["reward_model"]["name"] == r["reward_model"] and train["seed"] == r["seed"]
        assert train["ground_truth"]["name"] == GOLD and train["steps"] == 8 and train["eval_every"] == 2
        assert train["train_prompts"]["path"] == "/data/train.jsonl" and train["eval_prompts"]["path"] == "/data/eval.jsonl"
        assert (train["reward_model"]["transform"] is not None) == (r["reward_model"] == "perfect")
        assert "role" not in train["reward_model"]
    assert "wall" not in json.dumps(saved)  # wall times live in timing.json only
    timing = json.loads((out / "timing.json").read_text())
    assert len(timing["train_s"]) == 24 and timing["total_s"] > 0


def test_correlations_rankings_and_claims(finished):
    _, study = finished
    mean = {k: v[3] + SEED_BUMP * 0.5 for k, v in WORLD.items()}  # seeds 0 and 1
    scopes = study["correlations"]["scopes"]
    assert list(scopes) == ["alpha", "beta", "pooled"] and scopes["pooled"]["n"] == 10
    assert study["correlations"]["include_ground_truth"] is False
    # alpha, variance vs gold increase: variance ranks (4 3 2 1 5) vs increase ranks (5 4 2 1 3): sum d^2 = 6
    rho = scopes["alpha"]["table"]["reward_variance"]["gold_increase@1"]["spearman"]["value"]
    assert rho == pytest.approx(1 - 6 * 6 / 120)
    x = np.array([WORLD[("alpha", n)][0] for n in CANDIDATES])
    y = np.array([mean[("alpha", n)] for n in CANDIDATES])
    r = scopes["alpha"]["table"]["reward_variance"]["gold_increase@1"]["pearson"]["value"]
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks = study["rankings"]
    assert [row["reward_model"] for row in ranks["policies"]["alpha"]] == ["rm100", "rm50", "loud", "rm0", "perfect", "gold"]
    assert ranks["best"] == {"alpha": "rm100", "beta": "rm0"}
    claims = {c["id"]: c for c in study["claims"]}
    assert claims["a"]["status"] == "held"
    assert claims["a"]["evidence"]["alpha"]["perfect"] == "perfect"  # found from the data: transform + accuracy 1
    assert claims["a"]["evidence"]["alpha"]["n_faster"] == 4
    assert claims["b"]["status"] == "held"
    assert claims["b"]["evidence"]["alpha"]["variance_spearman"] == pytest.approx(0.7)
    assert claims["c"]["status"] == "held"


def test_report_files(finished):
    out, study = finished
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    measured = [p for p in study["predictors"] if p != "gradient_alignment"]  # the fake evaluate has no gradients
    assert page.count('src="data:image/png;base64,') == 2 + len(measured)  # curves per policy + scatter per predictor
    assert "http://" not in page and "https://" not in page  # self-contained
    heads = ["<h2>Claims</h2>", "<h2>Reward curves</h2>", "<h2>Correlations over all RMs",
             "<h2>Correlations over the paper's set", "<h2>Rankings per policy</h2>", "<h2>Configuration</h2>"]
    assert [page.index(h) for h in heads] == sorted(page.index(h) for h in heads)
    assert page.count("HELD") == 4 and "0.834" in page  # the paper's value beside ours
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == sorted([f"curves_{p}.png" for p in POLICIES] + [f"scatter_{p}.png" for p in measured])
    assert all((out / "plots" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
    md = (out / "summary.md").read_text()
    assert "**(a) held**" in md and "| rank | reward model |" in md


# ----------------------------------------------------------------------------------------------------------
# Resume


@pytest.mark.slow
def test_killed_study_resumes_and_matches_uninterrupted(tmp_path, finished):
    cfg = make_config()
    killed = Counting(fail_at=7)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path / "s", train_fn=killed, evaluate_fn=fake_evaluate)
    assert not (tmp_path / "s" / "study.json").exists()
    assert len(list((tmp_path / "s" / "runs").rglob("done.json"))) == 6
    evaluated = []

    def counting_evaluate(ecfg, folder):
        evaluated.append(folder)
        return fake_evaluate(ecfg, folder)

    resumed = Counting()
    run_study(cfg, tmp_path / "s", train_fn=resumed, evaluate_fn=counting_evaluate)
    assert evaluated == []  # both evaluate reports reused
    assert resumed.calls[0] == killed.calls[6] and len(resumed.calls) == 24 - 6
    assert not set(resumed.calls) & set(killed.calls[:6])
    assert resumed.resumed == [killed.calls[6]]  # the interrupted run continues from its checkpoint
    # Same seeds, same fakes: the resumed study.json equals the uninterrupted one.
    assert (tmp_path / "s" / "study.json").read_text() == (finished[0] / "study.json").read_text()
    again = Counting()
    run_study(cfg, tmp_path / "s", train_fn=again, evaluate_fn=fake_evaluate)
    assert again.calls == []


@pytest.mark.slow
def test_a_different_study_needs_overwrite_and_redoes_changed_runs(tmp_path):
    run_study(make_config(seeds=[0]), tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    changed = make_config(seeds=[0], train={"steps": 4, "eval_every": 2})
    with pytest.raises(UserError, match="already holds a different study"):
        run_study(changed, tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    counting = Counting()
    study = run_study(changed, tmp_path / "s", overwrite=True, train_fn=counting, evaluate_fn=fake_evaluate)
    assert len(counting.calls) == 12 and {r["outcomes"]["steps"] for r in study["runs"]} == {4}


# ----------------------------------------------------------------------------------------------------------
# Small and bad studies


def test_one_rm_study_reports_that_correlations_need_three(tmp_path):
    cfg = make_config(reward_models=[{"name": "rm100", "callable": "rm_fns:gold"}], seeds=[0])
    study = run_study(cfg, tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    assert "correlations need at least 3 reward models" in (tmp_path / "s" / "report.html").read_text()
    claims = {c["id"]: c["status"] for c in study["claims"]}
    # rm100 is best for both policies, but one seed has no standard error: nothing is resolved beyond noise.
    assert claims == {"a": "undetermined", "b": "undetermined", "c": "undetermined", "d": "undetermined"}


@pytest.mark.slow
def test_only_and_rm_policies_restrict_the_grid(tmp_path):
    rms = study_dict()["reward_models"]
    rms[4]["policies"] = ["beta"]  # loud only with beta
    cfg = make_config(reward_models=rms, only={"reward_models": ["rm100", "rm50", "rm0", "loud"]},
                      train_on_ground_truth=False, seeds=[0])
    study = run_study(cfg, tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    got = sorted((r["policy"], r["reward_model"]) for r in study["runs"])
    want = sorted([(p, n) for p in POLICIES for n in ("rm100", "rm50", "rm0")] + [("beta", "loud")])
    assert got == want
    report = json.loads((tmp_path / "s" / "evaluate" / "alpha" / "report.json").read_text())
    assert [c["name"] for c in report["reward_models"]] == ["rm100", "rm50", "rm0", GOLD]


# ----------------------------------------------------------------------------------------------------------
# Worker processes and the real evaluate


@pytest.mark.slow
def test_parallel_jobs_give_the_same_study(tmp_path, finished):
    run_study(make_config(jobs=2), tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    parallel = json.loads((tmp_path / "s" / "study.json").read_text())
    serial = json.loads((finished[0] / "study.json").read_text())
    assert parallel["config"].pop("jobs") == 2 and serial["config"].pop("jobs") == 1
    assert parallel == serial  # everything but the config's `jobs` is the same
    logs = list((tmp_path / "s" / "logs").glob("*.log"))
    assert len(logs) == 24


@pytest.mark.slow
def test_parallel_jobs_split_the_cores_whatever_the_train_block_asks(tmp_path):
    """A train block's cpu_threads (the real recipe's 2, for running alone on 2 cores) is capped at the pool's
    share, cores // jobs, else 2 workers x 2 threads oversubscribe 2 cores; the runs' identity keeps the 2."""
    import os

    from study_world import fake_train_threads

    cores = os.cpu_count() or 1
    cfg = make_config(jobs=2, seeds=[0], train={"steps": 8, "eval_every": 2, "cpu_threads": 2 * cores},
                      only={"policies": ["alpha"], "reward_models": ["rm100", "rm50"]})
    run_study(cfg, tmp_path / "s", train_fn=fake_train_threads, evaluate_fn=fake_evaluate)
    share = max(1, cores // 2)
    runs = sorted((tmp_path / "s" / "runs").glob("*/*/seed*"))
    assert len(runs) == 3  # rm100, rm50 and the ground truth's own run
    for run in runs:
        assert json.loads((run / "threads.json").read_text()) == {"cpu_threads": share, "torch": share}
        assert json.loads((run / "done.json").read_text())["config"]["train"]["cpu_threads"] == 2 * cores


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (Linux /proc)."""
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_killing_the_study_ends_its_pool_workers(tmp_path):
    """SIGKILL on a study with jobs: 2 (nothing of it can clean up): its two workers, each in a run that would
    sleep 10 minutes, end within seconds instead of training on into OUT."""
    import signal
    import subprocess
    import sys
    import time

    tests = Path(__file__).resolve().parent
    script = (f"import sys; sys.path.insert(0, {str(tests)!r})\n"
              "from pathlib import Path\n"
              "from study_world import fake_evaluate, fake_train_sleep, make_config\n"
              "from rmteach.study.run import run_study\n"
              "cfg = make_config(jobs=2, seeds=[0], only={'policies': ['alpha'], 'reward_models': ['rm100', 'rm50']})\n"
              f"run_study(cfg, Path({str(tmp_path / 's')!r}), train_fn=fake_train_sleep, evaluate_fn=fake_evaluate)\n")
    study = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(pids := sorted((tmp_path / "s" / "runs").glob("*/*/seed*/pid"))) < 2:
            assert time.monotonic() < deadline, "the workers never started their runs"
            assert study.poll() is None, "the study ended early"
            time.sleep(0.2)
        time.sleep(0.5)  # let both pid files be written whole
        workers = [int(p.read_text()) for p in pids]
        assert all(_running(w) for w in workers)
        study.send_signal(signal.SIGKILL)
        study.wait(10)
        deadline = time.monotonic() + 15
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(w) for w in workers), "a worker outlived its study"
    finally:
        study.kill()
        for pid in [int(p.read_text()) for p in (tmp_path / "s" / "runs").glob("*/*/seed*/pid")]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def test_with_the_real_evaluate_on_tiny_models(tiny, tmp_path):
    """Tiny real policies and callable RMs through `evaluate`; the trainer is still the fake."""
    cfg = validate(StudyConfig, {
        "policies": [{"name": "alpha", "path": str(tiny["policy_gpt2"])}, {"name": "beta", "path": str(tiny["policy_llama"])}],
        "reward_models": [
            {"name": "rm100", "callable": "rm_fns:gold_cubed"},
            {"name": "rm50", "path": str(tiny["rm_llama"])},
            {"name": "perfect", "callable": "rm_fns:gold", "transform": {"fraction": 0.5, "factor": 0.001}},
        ],
        "ground_truth": {"name": GOLD, "callable": "rm_fns:gold"},
        "prompts": {"train": {"path": str(tiny["prompts"])}, "eval": {"path": str(tiny["prompts"])}},
        "preferences": {"path": str(tiny["prefs"])},
        "seeds": [0],
        "evaluate": {"sampling": {"samples_per_prompt": 4, "max_new_tokens": 6}, "device": "cpu", "bootstrap_samples": 20},
        "train": {"steps": 4, "eval_every": 2},
        "analysis": {"bootstrap_samples": 20},
    }, "test")
    study = run_study(cfg, tmp_path / "s", train_fn=fake_train)
    for r in study["runs"]:
        report = json.loads((tmp_path / "s" / "evaluate" / r["policy"] / "report.json").read_text())
        card = next(c for c in report["reward_models"] if c["name"] == r["reward_model"])
        done = json.loads((tmp_path / "s" / r["folder"] / "done.json").read_text())["config"]
        assert done["normalization"] == card["normalization"]
        # rmteach train reads that block from the report, by RM name.
        assert done["train"]["normalization"]["path"] == str(tmp_path / "s" / "evaluate" / r["policy"] / "report.json")
        assert r["predictors"]["onpolicy_accuracy"] == card["onpolicy_accuracy"]
    perfect = [r for r in study["runs"] if r["reward_model"] == "perfect"]
    assert all(r["predictors"]["onpolicy_accuracy"] == pytest.approx(1.0) for r in perfect)  # order kept
    assert study["claims"][0]["evidence"]["alpha"]["perfect"] == "perfect"
    # The hacking-risk flag of each report card beside the runs' held-out ground-truth change, recomputed.
    hack = {(r["policy"], r["reward_model"]): r for r in study["hacking"]["rows"]}
    assert len(hack) == 6  # 2 policies x 3 candidates; the ground truth's own runs are not judged
    for r in study["runs"]:
        if r["is_ground_truth"]:
            continue
        report = json.loads((tmp_path / "s" / "evaluate" / r["policy"] / "report.json").read_text())
        card = next(c for c in report["reward_models"] if c["name"] == r["reward_model"])
        curve = r["curve"]["gold"]
        row = hack[(r["policy"], r["reward_model"])]
        assert row["flag"] == card["forecast"]["hacking_risk"]["flag"]
        assert row["gold_change"] == pytest.approx(curve[-1] - curve[0]) and row["hacked"] == (curve[-1] < curve[0])
    flagged = [r for r in hack.values() if r["flag"]]
    hacked = [r for r in hack.values() if r["hacked"]]
    tp = sum(r["flag"] and r["hacked"] for r in hack.values())
    assert study["hacking"]["recall"] == (tp / len(hacked) if hacked else None)
    assert study["hacking"]["precision"] == (tp / len(flagged) if flagged else None)
    for row in hack.values():  # one seed: no interval, so no claim beyond noise
        assert row["ci95"] is None and row["outcome"] == "undetermined"
    assert study["hacking"]["n_undetermined"] == 6 and study["hacking"]["recall_beyond_noise"] is None
    assert "## Hacking risk against training" in (tmp_path / "s" / "summary.md").read_text()
    # Each policy's forecast stability is its evaluate's, and the summary states it (with advice when low).
    stab = {p: json.loads((tmp_path / "s" / "evaluate" / p / "report.json").read_text())["ranking"]["stability"]
            for p in ("alpha", "beta")}
    assert all(isinstance(v, float) and -1.0 <= v <= 1.0 for v in stab.values())
    assert study["forecast_stability"] == stab
    summary = (tmp_path / "s" / "summary.md").read_text()
    assert f"alpha {stab['alpha']:.2f}, beta {stab['beta']:.2f}." in summary
    assert ("evaluate more prompts or samples per prompt" in summary) == (min(stab.values()) < 0.9)


# ----------------------------------------------------------------------------------------------------------
# rmteach demo (with a fake toy build over the tiny fixture models, and the fake trainer)


# ----------------------------------------------------------------------------------------------------------
# The real trainer


class KilledTrainer:
    """`rmteach.train.run_train`, except that the `kill_at`-th call is interrupted (as by Ctrl-C) mid-run."""

    def __init__(self, kill_at: int | None = None):
        self.calls = 0
        self.kill_at = kill_at

    def __call__(self, cfg, out, **kw):
        from rmteach.train.run import run_train

        self.calls += 1
        if self.calls == self.kill_at:  # what a train run has written when a kill comes after its first line
            from rmteach.core import outdir

            out.mkdir(parents=True, exist_ok=True)
            outdir.claim(out, "train")
            (out / "metrics.jsonl").write_text('{"step": 0}\n')
            raise KeyboardInterrupt
        return run_train(cfg, out, **kw)


def tiny_study(tiny, **train):
    return validate(StudyConfig, {
        "policies": [{"name": "alpha", "path": str(tiny["policy_gpt2"])}],
        "reward_models": [
            {"name": "cubed", "callable": "rm_fns:gold_cubed"},
            {"name": "tinyrm", "path": str(tiny["rm_llama"])},
            {"name": "perfect", "callable": "rm_fns:gold", "transform": {"fraction": 0.5, "factor": 0.001}},
        ],
        "ground_truth": {"name": GOLD, "callable": "rm_fns:gold"},
        "prompts": {"train": {"path": str(tiny["prompts"])}, "eval": {"path": str(tiny["prompts"])}},
        "preferences": {"path": str(tiny["prefs"])},
        "seeds": [0],
        "train_on_ground_truth": False,
        "evaluate": {"sampling": {"samples_per_prompt": 4, "max_new_tokens": 6}, "device": "cpu", "bootstrap_samples": 20},
        "train": {"learning_rate": 0.01, "kl_coef": 0.0, "steps": 4, "eval_every": 2, "prompts_per_step": 4,
                  "samples_per_prompt": 2, "max_new_tokens": 6, "eval_samples_per_prompt": 2, "device": "cpu",
                  "report_to": [], **train},
        "analysis": {"bootstrap_samples": 20},
    }, "test")


@pytest.mark.slow
def test_real_training_resumes_to_the_same_study(tiny, tmp_path):
    """Tiny real policies trained by TRL for a few steps; a study killed in its second run, then resumed,
    ends with the same study.json as one that ran straight through."""
    cfg = tiny_study(tiny)
    straight = run_study(cfg, tmp_path / "straight")
    killed = KilledTrainer(kill_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path / "resumed", train_fn=killed)
    resumed = KilledTrainer()
    run_study(cfg, tmp_path / "resumed", train_fn=resumed)
    assert resumed.calls == 2  # the killed run and the one after it
    assert (tmp_path / "resumed" / "study.json").read_text() == (tmp_path / "straight" / "study.json").read_text()
    for r in straight["runs"]:  # real curves: step 0, 2 and 4 from metrics.jsonl
        assert r["curve"]["step"] == [0, 2, 4] and r["outcomes"]["steps"] == 4
        assert json.loads((tmp_path / "straight" / r["folder"] / "run.json").read_text())["status"] == "finished"


class CheckpointKill:
    """`run_train`, except that the `kill_at`-th call is killed just after its checkpoint at step 2: the run
    trains whole, then its folder is put back to what a kill at that moment leaves (run.json "running", the
    checkpoint, metrics up to step 3, no later checkpoint, no final/). Records each call's resume flag."""

    def __init__(self, kill_at: int | None = None):
        self.resume: list[bool] = []
        self.kill_at = kill_at

    def __call__(self, cfg, out, *, resume, overwrite):
        import shutil

        from rmteach.train.run import run_train

        self.resume.append(resume)
        summary = run_train(cfg, out, resume=resume, overwrite=overwrite)
        if len(self.resume) != self.kill_at:
            return summary
        marker = json.loads((out / "run.json").read_text())
        marker.pop("summary")
        (out / "run.json").write_text(json.dumps({**marker, "status": "running"}))
        shutil.rmtree(out / "final")
        shutil.rmtree(out / "checkpoint-4")
        lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
        (out / "metrics.jsonl").write_text("".join(x for x in lines if json.loads(x)["step"] <= 3))
        raise KeyboardInterrupt


@pytest.mark.slow
def test_a_run_killed_after_its_checkpoint_continues_from_it(tiny, tmp_path):
    cfg = tiny_study(tiny, checkpoint_every=2)
    straight = run_study(cfg, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path / "resumed", train_fn=CheckpointKill(kill_at=2))
    run = tmp_path / "resumed" / straight["runs"][1]["folder"]
    before = (run / "metrics.jsonl").read_text().splitlines()
    resumed = CheckpointKill()
    run_study(cfg, tmp_path / "resumed", train_fn=resumed)
    assert resumed.resume == [True, False]  # the killed run resumes, the next one starts fresh
    after = (run / "metrics.jsonl").read_text().splitlines()
    assert after[:3] == before[:3]  # steps 0-2 kept as written, wall times included: not trained again
    assert json.loads(after[3])["step"] == 3 and json.loads(after[-1])["step"] == 4
    assert (tmp_path / "resumed" / "study.json").read_text() == (tmp_path / "straight" / "study.json").read_text()


def test_resume_flags_resume_only_a_run_begun_with_the_same_identity_and_config(tmp_path):
    from rmteach.core.config import to_plain
    from rmteach.study.executors import begin, capped_threads, resume_flags, started_path
    from rmteach.study.grid import expand

    cfg = expand(make_config(train={"cpu_threads": 2}), tmp_path).runs[0].config
    pooled = capped_threads(cfg, 1)  # what a pool worker trains and its run.json holds
    run, ident = tmp_path / "seed0", {"train": to_plain(pooled), "normalization": {"mean": 0.5, "std": 2.0}}
    fresh, same = {"resume": False, "overwrite": True}, {"resume": True, "overwrite": False}
    assert begin(pooled, run, ident) == fresh  # nothing there yet
    assert json.loads(started_path(run).read_text()) == {"config": ident}
    run.mkdir()
    (run / "run.json").write_text("{not json")
    assert resume_flags(pooled, run, ident) == fresh
    (run / "run.json").write_text(json.dumps({"config": to_plain(pooled), "status": "running"}))
    assert resume_flags(pooled, run, ident) == same
    assert resume_flags(cfg, run, ident) == fresh  # 2 threads is another config: started over
    other = {**ident, "normalization": {"mean": 0.7, "std": 2.0}}  # the evaluate was redone: same config, new numbers
    assert resume_flags(pooled, run, other) == fresh
    assert begin(pooled, run, other) == fresh and resume_flags(pooled, run, other) == same  # from now on, the new one
    started_path(run).unlink()
    assert resume_flags(pooled, run, other) == fresh  # begun by something else than a study


@pytest.mark.slow
def test_an_interrupted_run_of_a_redone_evaluate_starts_over(tmp_path):
    cfg = make_config()
    killed = Counting(fail_at=7)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path / "s", train_fn=killed, evaluate_fn=fake_evaluate)
    policy = killed.calls[6].split("/")[0]
    (tmp_path / "s" / "evaluate" / policy / "report.json").unlink()  # redone below with other numbers

    def shifted_evaluate(ecfg, folder):
        report = fake_evaluate(ecfg, folder)
        for card in report["reward_models"]:
            card["normalization"] = {**card["normalization"], "mean": card["normalization"]["mean"] + 1.0}
        return report

    resumed = Counting()
    run_study(cfg, tmp_path / "s", train_fn=resumed, evaluate_fn=shifted_evaluate)
    assert killed.calls[6] in resumed.calls and resumed.resumed == []  # trained again, from step 0
    assert not list((tmp_path / "s" / "runs").rglob("*.started.json"))  # every run finished: none left


def refusing_train(cfg, out, *, resume, overwrite):
    """A trainer that finds the input bad, as run_train does with a UserError."""
    raise UserError("prompts_per_step (8) is larger than the train prompt set (4)")


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: worker processes
def test_a_bad_run_names_itself(tmp_path, jobs):
    with pytest.raises(UserError, match=r"^train run alpha/rm\w+/seed0: prompts_per_step \(8\) is larger") as e:
        run_study(make_config(seeds=[0], jobs=jobs), tmp_path / "s", train_fn=refusing_train, evaluate_fn=fake_evaluate)
    assert ("log: " in str(e.value)) == (jobs == 2)
