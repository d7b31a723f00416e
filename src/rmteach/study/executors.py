"""Where a study's unfinished train runs are executed: here, or as cluster jobs through submitit.

- `train_serial`: one run after another in this process.
- `train_pool`: `jobs` runs at once in worker processes, each writing its output to `OUT/logs/`.
- `train_submitit`: one submitit job per run (a SLURM job array, or submitit's local processes), polled until
  every job ends. The job marks its own run done, so runs that finish while the study's process is gone are
  not redone when the study is re-run.

Each marks a finished run with `done.json` holding its identity (`study.run.identities`) and records its wall
time in `timing["train_s"]`; a failed run stops the study with an error naming it (and its log, if it has one).
A run interrupted earlier (a killed study, a preempted or timed-out job) continues from its newest checkpoint
when it began with the same identity and its folder holds a run of the same train config (`begin`); anything
else there is replaced.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

from ..core import io, run_dir
from ..core.config import to_plain
from ..core.errors import UserError
from ..core.progress import console, progress_bar
from .config import StudyConfig, SubmititConfig
from .grid import RunSpec

TrainFn = Callable[..., Any]  # run_train(cfg, out, *, resume, overwrite) -> dict
Todo = list[tuple[RunSpec, dict[str, Any]]]  # the unfinished runs with the identity their done.json will hold
JOB_NAME = "rmteach-study"  # the cluster jobs' name: `scancel --name rmteach-study` cancels a study's jobs
POLL_S = 1.0  # seconds between looks at the jobs (submitit rate-limits its own sacct calls)
INSTALL = "pip install 'rmteach[cluster]'"
WATCH_S = 2.0  # seconds between a pool worker's looks at whether the study's process is still alive


def started_path(folder: Path) -> Path:
    """Beside a run's folder: the identity it began training with (`begin`), kept while it is unfinished."""
    return folder.parent / f"{folder.name}.started.json"


def resume_flags(train_cfg: Any, folder: Path, identity: dict[str, Any]) -> dict[str, bool]:
    """`run_train`'s `resume` and `overwrite` for a run about to train into `folder`: resume when the run there
    began with this `identity` (the normalization and curated set too, which the train config names only by
    path) and holds this very train config: an interrupted run then continues from its newest checkpoint (from
    step 0 when it has none; `checkpoint_every` sets how much a kill loses), a finished but unmarked one is
    returned as it is. Anything else starts over."""
    same = (io.holds_config(folder / run_dir.MARKER, to_plain(train_cfg))
            and io.holds_config(started_path(folder), identity))
    return {"resume": same, "overwrite": not same}


def begin(train_cfg: Any, folder: Path, identity: dict[str, Any]) -> dict[str, bool]:
    """`resume_flags`, then the identity written beside the folder: what a resumed study will check."""
    flags = resume_flags(train_cfg, folder, identity)
    io.write_json(started_path(folder), {"config": identity})
    return flags


def mark_done(out: Path, run: RunSpec, identity: dict[str, Any]) -> None:
    """Write the run's `done.json`: from now on a re-run of the study skips it."""
    folder = run.folder(out)
    if not (folder / "metrics.jsonl").is_file():
        raise RuntimeError(f"train run {run.key} finished without writing {folder / 'metrics.jsonl'}")
    io.write_json(folder / "done.json", {"config": identity})
    started_path(folder).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------
# Here: one at a time, or `jobs` worker processes


def train_serial(out: Path, todo: Todo, train_fn: TrainFn, timing: dict[str, Any]) -> None:
    """Train the runs one after another in this process."""
    for i, (run, identity) in enumerate(todo):
        console().print(f"[bold]train {i + 1}/{len(todo)}[/bold] {run.key}")
        t0 = time.perf_counter()
        try:
            train_fn(run.config, run.folder(out), **begin(run.config, run.folder(out), identity))
        except UserError as e:
            raise UserError(f"train run {run.key}: {e}") from None
        timing["train_s"][run.key] = round(time.perf_counter() - t0, 3)
        mark_done(out, run, identity)
        console().print(f"train {i + 1}/{len(todo)} {run.key}: finished in {timing['train_s'][run.key]:.1f} s",
                        highlight=False)


def capped_threads(train_cfg: Any, threads: int) -> Any:
    """The run's config with `cpu_threads` at most the pool's share of the cores: a train block's own setting
    (e.g. 2, for running alone on 2 cores) would otherwise put `jobs` x 2 threads on 2 cores, where torch's
    threads wait on each other (measured: a step 5-10x slower). The run's identity keeps the block's value.

    >>> from rmteach.train.config import TrainConfig
    >>> cfg = TrainConfig.model_construct(cpu_threads=2)
    >>> capped_threads(cfg, 1).cpu_threads, capped_threads(cfg, 4).cpu_threads, cfg.cpu_threads
    (1, 2, 2)
    """
    n = getattr(train_cfg, "cpu_threads", None)
    if n is None or n <= threads:
        return train_cfg
    return train_cfg.model_copy(update={"cpu_threads": threads})


def _train_job(train_fn: TrainFn, train_cfg: Any, folder: str, log: str, threads: int,
               identity: dict[str, Any]) -> float:
    """Run one train job in a worker process, its output to `log`; returns its wall time in seconds."""
    import torch

    torch.set_num_threads(threads)
    train_cfg = capped_threads(train_cfg, threads)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log, "w", encoding="utf-8") as f:  # the worker's fds 1 and 2 now write to this run's log
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    t0 = time.perf_counter()
    train_fn(train_cfg, Path(folder), **begin(train_cfg, Path(folder), identity))
    return time.perf_counter() - t0


def _exit_with_parent(parent: int, every_s: float = WATCH_S) -> None:
    """Worker initializer: a daemon thread that ends this worker once the study's process `parent` is gone.

    A study killed by SIGTERM or SIGKILL cannot stop its pool, and a worker left running would go on with its run
    and the runs queued for it, writing into OUT while a resumed study trains the same runs."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(every_s)
            if os.getppid() != parent:  # re-parented: the study's process died
                os._exit(1)

    threading.Thread(target=watch, name="rmteach-parent-watch", daemon=True).start()


def train_pool(jobs: int, out: Path, todo: Todo, train_fn: TrainFn, timing: dict[str, Any]) -> None:
    """Train the runs `jobs` at once in worker processes (`train_fn` must be importable by name there); the
    workers end within `WATCH_S` seconds of this process's death, however it dies."""
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    console().print(f"training {len(todo)} runs, {jobs} at a time; logs in {out / 'logs'}")
    ctx = multiprocessing.get_context("spawn")  # fork after torch/rich threads started is unsafe
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_exit_with_parent,
                               initargs=(os.getpid(),))
    with pool, progress_bar("train runs", len(todo)) as advance:
        futures, finished = {}, 0
        for run, identity in todo:
            fut = pool.submit(_train_job, train_fn, run.config, str(run.folder(out)), str(run.log(out)), threads,
                              identity)
            futures[fut] = (run, identity)
        try:
            for fut in as_completed(futures):
                run, identity = futures[fut]
                try:
                    timing["train_s"][run.key] = round(fut.result(), 3)
                except UserError as e:
                    raise UserError(f"train run {run.key}: {e} (log: {run.log(out)})") from None
                mark_done(out, run, identity)
                finished += 1
                secs = timing["train_s"][run.key]
                console().print(f"train {finished}/{len(todo)} {run.key}: finished in {secs:.1f} s", highlight=False)
                advance(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # finished runs keep their done.json
            raise


# ----------------------------------------------------------------------------------------------------------
# submitit: one cluster job per run


def preflight(cfg: StudyConfig) -> None:
    """Fail before the first evaluate when the executor cannot run here (no submitit, or no SLURM commands)."""
    if cfg.executor != "submitit":
        return
    import importlib
    import shutil

    try:
        importlib.import_module("submitit")
    except ImportError:
        raise UserError(f"executor: submitit needs the submitit package: {INSTALL}") from None
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if (cfg.submitit or SubmititConfig()).cluster == "slurm" and missing:
        raise UserError(f"submitit.cluster: slurm needs SLURM's {' and '.join(missing)} on PATH, and this machine "
                        "has none (submitit.cluster: local runs the jobs here)")


def _submitit_job(train_fn: TrainFn, run: RunSpec, out: str, identity: dict[str, Any],
                  threads: int | None) -> tuple[float, str | None]:
    """One train run as a submitit job, marking it done. Returns (wall seconds, None), or (seconds, the message)
    when the run finds its input bad: the message then reaches the study's process whole."""
    if threads is not None:  # SLURM confines the job to its CPUs, but torch counts the node's
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        train_fn(run.config, run.folder(Path(out)), **begin(run.config, run.folder(Path(out)), identity))
    except UserError as e:
        print(f"train run {run.key}: {e}", file=sys.stderr)
        return time.perf_counter() - t0, str(e)
    mark_done(Path(out), run, identity)
    return time.perf_counter() - t0, None


def make_executor(s: SubmititConfig, folder: Path) -> Any:
    """A `submitit.AutoExecutor` with the block's parameters (unset ones keep submitit's defaults)."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=s.cluster)
    slurm = {"partition": s.partition, "account": s.account, "qos": s.qos, "constraint": s.constraint,
             "array_parallelism": s.max_parallel, "setup": s.setup or None,
             "additional_parameters": s.slurm_additional_parameters or None}
    executor.update_parameters(  # None means unset to submitit
        name=JOB_NAME, timeout_min=s.timeout_min, gpus_per_node=s.gpus_per_node, cpus_per_task=s.cpus_per_task,
        mem_gb=s.mem_gb, **{f"slurm_{k}": v for k, v in slurm.items()},
    )
    return executor


def _failure(job: Any, run: RunSpec) -> UserError:
    """The error of a job that ended without a result: its last traceback line, its id and its log."""
    err = job.exception()
    parts = str(err).split("-" * 22)  # FailedJobError: "...trace:\n-----\n<traceback>\n-----\nYou can check..."
    lines = [x for x in (parts[1] if len(parts) > 2 else str(err)).splitlines() if x.strip()]
    why = lines[-1].strip() if lines else "no result (cancelled, timed out or out of memory?)"
    return UserError(f"train run {run.key}: job {job.job_id} failed: {why} (log: {job.paths.stderr})")


def train_submitit(cfg: StudyConfig, out: Path, todo: Todo, train_fn: TrainFn, timing: dict[str, Any]) -> None:
    """Submit every run as one submitit job, then wait for them all with a progress bar.

    A job that crashes (a bug, out of memory, past its time) does not stop the others: once all have ended, a
    `UserError` names its run, job id and log. A run that finds its input bad (the same for every run) cancels
    the jobs still pending at once, and so does an interrupt (Ctrl-C). Finished runs keep their `done.json`.
    """
    from submitit.core.utils import FailedJobError

    s = cfg.submitit or SubmititConfig()
    folder = Path(s.folder) if s.folder else out / "submitit"
    executor = make_executor(s, folder)
    try:
        jobs = executor.map_array(
            _submitit_job, [train_fn] * len(todo), [run for run, _ in todo], [str(out)] * len(todo),
            [identity for _, identity in todo], [s.cpus_per_task] * len(todo),
        )
    except (OSError, FailedJobError) as e:  # sbatch refusing (partition, account, ...)
        raise UserError(f"submitit could not submit the train runs ({s.cluster}): {str(e).strip()}") from None
    console().print(f"submitted {len(jobs)} train runs as {s.cluster} jobs ({jobs[0].job_id}, ...); logs in {folder}")
    pending = {job: run for job, (run, _) in zip(jobs, todo)}
    crashed: list[UserError] = []
    with progress_bar("train jobs", len(jobs)) as advance:
        try:
            while pending:
                for job in [j for j in pending if j.done()]:
                    run = pending.pop(job)
                    advance(1)
                    if job.exception() is not None:
                        crashed.append(_failure(job, run))
                        continue
                    seconds, error = job.result()
                    if error is not None:
                        raise UserError(f"train run {run.key}: {error} (job {job.job_id}, log: {job.paths.stderr})")
                    timing["train_s"][run.key] = round(seconds, 3)
                if pending:
                    time.sleep(POLL_S)
        except BaseException:
            for job in pending:  # else a re-run would submit them again: two jobs writing one folder
                job.cancel(check=False)
            while s.cluster == "local" and not all(job.done() for job in pending):  # let its processes end first
                time.sleep(0.1)
            raise
    if crashed:
        more = f" ({len(crashed) - 1} more failed: see {folder})" if len(crashed) > 1 else ""
        raise UserError(f"{crashed[0]}{more}")
