"""Data safety of every command: a user's files survive byte for byte, an output is whole or absent.

1. Folders holding user files (inside --out under every name a command writes, and beside it) meet every
   command, with and without --overwrite: each ends in exit 2 with one line, and every file is unchanged.
2. An empty, root, home or unwritable --out is refused in one line, before any work.
3. Interrupts at each write of each one-shot command (evaluate, rm pairs, theory), injected in process: --out
   is left as it was, and the rerun writes what an uninterrupted run writes.
"""

from __future__ import annotations

import functools
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from helpers import run_cli, write_eval_config
from study_world import study_dict
from test_demo import fake_toy_build
from train_world import config_dict

from rmteach.core import io, outdir
from rmteach.core.errors import UserError
from rmteach.theory import experiments, report as theory_report

USER_FILES = {  # every top-level name some command writes, as a user's own file or folder
    "README.md": b"# my project\n", "data/important.csv": b"a,b\n1,2\n", "model/my_weights.bin": b"\x00\x01w",
    "final/adapter.bin": b"\x02", "report.json": b'{"mine": true}\n', "summary.json": b'{"config": 1}\n',
    "run.json": b'{"config": {}}\n', "config.json": b'{"config": {}}\n', "theory.json": b"{}\n",
    "pairs.jsonl": b'{"a": 1}\n', "metrics.jsonl": b"{}\n", "checkpoint-5/state.json": b"{}",
    "runs/r/notes.txt": b"r", "build.json": b'{"config": {}}\n', "timing.json": b"[]",
}
LEGACY_TOY = {"build.json": b'{"schema": "rmteach.toy/1", "config": {"seed": 9}}\n',  # a copy of a toy world
              "data/train.jsonl": b'{"id": "p", "prompt": "x"}\n', "policies/a/config.json": b"{}"}
FOLDERS = {"user_names": USER_FILES, "one_readme": {"README.md": b"mine\n"}, "toy_world_copy": LEGACY_TOY}
COMMANDS = ("evaluate", "train", "study", "rm pairs", "rm train", "toy build", "theory", "demo")


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root`, by relative path."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def plant(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def argv_of(command: str, tiny: dict, world: Path, tmp: Path, out: Path) -> list:
    """A valid command line of `command` writing to `out` (configs in `tmp`)."""
    def dump(name: str, data: dict) -> Path:
        (tmp / name).write_text(yaml.safe_dump(data), encoding="utf-8")
        return tmp / name

    if command == "evaluate":
        return ["evaluate", "-c", write_eval_config(tmp / "e.yaml", tiny), "-o", out]
    if command == "train":
        return ["train", "-c", dump("t.yaml", config_dict(world, steps=1, eval_every=None)), "-o", out]
    if command == "study":
        real = {"policies": [{"name": "alpha", "path": str(tiny["policy_gpt2"])}],
                "prompts": {"train": {"path": str(tiny["prompts"])}, "eval": {"path": str(tiny["prompts"])}},
                "preferences": {"path": str(tiny["prefs"])}}
        return ["study", "-c", dump("s.yaml", study_dict(**real)), "-o", out]
    if command == "rm pairs":
        return ["rm", "pairs", "-c", dump("p.yaml", pairs_dict(tiny)), "-o", out]
    if command == "rm train":
        return ["rm", "train", "-c", dump("r.yaml", {
            "base_model": {"path": str(tiny["policy_llama"]), "num_labels": 1},
            "mix": [{"path": str(tiny["prefs"]), "fraction": 1.0, "name": "fixture"}], "total": 4, "held_out_fraction": 0.25,
            "batch_size": 4, "device": "cpu", "cpu_threads": 1}), "-o", out]
    if command == "toy build":
        return ["toy", "build", "--preset", "tiny", "--out", out]
    if command == "theory":
        return ["theory", "--experiment", "variance", "--out", out]
    return ["demo", "--quick", "--out", out]


def pairs_dict(tiny: dict, **changes) -> dict:
    return {"policy": {"path": str(tiny["policy_llama"]), "name": "llama"},
            "ground_truth": {"name": "gold", "callable": "rm_fns:gold"}, "prompts": {"path": str(tiny["prompts"])},
            "sampling": {"samples_per_prompt": 4, "max_new_tokens": 4, "batch_size": 8, "seed": 0},
            "pairing": "all", "device": "cpu", **changes}


@pytest.fixture()
def demo_world(tiny, tmp_path, monkeypatch) -> Path:
    """A stand-in toy world the demo reuses (`RMTEACH_TOY_DIR`), so a demo that were not refused would not build."""
    folder = tmp_path / "toyworld"
    fake_toy_build(tiny, [])(folder, seed=0, preset="tiny", overwrite=False)
    monkeypatch.setenv("RMTEACH_TOY_DIR", str(folder))
    return folder


def check_refused(code: int, err: str, seconds: float, *words: str) -> None:
    """Exit 2, one line on stderr naming `words`, within 10 s."""
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert seconds < 10


# ----------------------------------------------------------------------------------------------------------
# 1. User files survive every command, with and without --overwrite


@pytest.mark.parametrize("command, folder", [(c, f) for c in COMMANDS for f in sorted(FOLDERS)
                                             if (c, f) != ("toy build", "toy_world_copy")])  # that one is its own
def test_user_files_inside_and_beside_out_survive(command, folder, tiny, world, demo_world, tmp_path, capsys):
    case = tmp_path / "case"
    out = case / "out"
    plant(out, FOLDERS[folder])
    plant(case, {"beside.txt": b"next to --out\n", ".out.rmteach-new.x/keep": b"k"})  # beside it, even our names
    before = snapshot(case)
    argv = argv_of(command, tiny, world, tmp_path, out)
    for extra in ([], ["--overwrite"]) if command != "theory" else ([],):
        t0 = time.perf_counter()
        code, _, err = run_cli(argv + extra, capsys)
        check_refused(code, err, time.perf_counter() - t0, str(out))
        assert snapshot(case) == before


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ("theory", "demo")])
def test_overwrite_of_an_own_output_holding_a_user_file_names_it_and_keeps_it(command, tiny, world, demo_world,
                                                                             tmp_path, capsys):
    out = tmp_path / "out"
    kind = command if command != "demo" else "study"
    plant(out, {outdir.OWNERSHIP: json.dumps({"schema": outdir.SCHEMA, "command": kind,
                                              "names": list(outdir.OWNED[kind])}).encode(),
                "timing.json": b"{}", "notes.txt": b"my notes\n"})
    before = snapshot(out)
    t0 = time.perf_counter()
    code, _, err = run_cli(argv_of(command, tiny, world, tmp_path, out) + ["--overwrite"], capsys)
    check_refused(code, err, time.perf_counter() - t0, "notes.txt")
    assert snapshot(out) == before


def test_clear_owned_removes_only_what_the_manifest_names(tmp_path):
    out = tmp_path / "run"
    plant(out, {"run.json": b"{}", "final/w.bin": b"w", "checkpoint-3/s.json": b"{}"})
    outdir.claim(out, "train")
    outdir.clear_owned(out, "train")
    assert snapshot(out) == {}
    plant(out, {"run.json": b"{}", "model/w.bin": b"w"})  # model/ is an rm train name, not a train one
    outdir.claim(out, "train")
    before = snapshot(out)
    with pytest.raises(UserError, match="holds model"):
        outdir.clear_owned(out, "train")
    assert snapshot(out) == before
    with pytest.raises(UserError, match="not an rmteach output"):  # no manifest: never touched
        outdir.clear_owned(tmp_path, "train")


def test_staged_output_replaces_an_earlier_one_in_its_own_folder_or_rolls_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    outdir.claim(out, "theory")
    plant(out, {"theory.json": b"old", "variance.png": b"png"})
    inode, manifest = out.stat().st_ino, (out / outdir.OWNERSHIP).read_bytes()
    with outdir.staged(out, "theory") as stage:
        (stage / "theory.json").write_bytes(b"new")
    assert out.stat().st_ino == inode  # the folder itself kept (a mount point, the current folder)
    assert snapshot(tmp_path) == {"out": None, f"out/{outdir.OWNERSHIP}": manifest, "out/theory.json": b"new"}
    real, calls = outdir.os.replace, []

    def failing(a, b):
        calls.append(a)
        if len(calls) == 3:  # the two old entries moved aside; moving the first new one in fails
            raise OSError(5, "I/O error")
        real(a, b)

    monkeypatch.setattr(outdir.os, "replace", failing)
    with pytest.raises(OSError):
        with outdir.staged(out, "theory") as stage:
            (stage / "theory.json").write_bytes(b"newer")
    assert snapshot(tmp_path) == {"out": None, f"out/{outdir.OWNERSHIP}": manifest, "out/theory.json": b"new"}


# ----------------------------------------------------------------------------------------------------------
# 2. An --out that cannot be one


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("out", ["", "/", "~", "/proc/rmteach-x/y"])
def test_empty_root_home_and_unwritable_out_are_refused_at_once(command, out, tiny, world, demo_world, tmp_path,
                                                                capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty --out was taken as the current folder
    plant(tmp_path, {"data/train_v3.jsonl": b'{"id": 1}\n'})
    (tmp_path / "cfg").mkdir()
    argv = argv_of(command, tiny, world, tmp_path / "cfg", Path("X"))
    argv[argv.index(Path("X"))] = str(Path(out).expanduser()) if out else ""
    before = snapshot(tmp_path)
    t0 = time.perf_counter()
    code, _, err = run_cli(argv + ["--overwrite"] * (command != "theory"), capsys)
    check_refused(code, err, time.perf_counter() - t0, "--out")
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------------------------------------
# 3. Interrupts at each write of the one-shot commands


@contextmanager
def interrupt_at(monkeypatch, n: int | None):
    """Make the `n`th atomic write (1-based) raise KeyboardInterrupt; yields the list of written names."""
    real, names = io.atomic_path, []

    @contextmanager
    def counting(path):
        names.append(Path(path).name)
        if n is not None and len(names) == n:
            raise KeyboardInterrupt
        with real(path) as tmp:
            yield tmp

    monkeypatch.setattr(io, "atomic_path", counting)
    yield names
    monkeypatch.setattr(io, "atomic_path", real)


def outputs(out: Path, skip=("timing.json",)) -> dict[str, bytes | None]:
    return {k: v for k, v in snapshot(out).items() if Path(k).name not in skip}


def _one_shot(command: str, tiny: dict, tmp: Path, variant: int) -> tuple[list, tuple[str, ...]]:
    """(command line without --out, the files compared byte for byte) of config `variant` (0 or 1)."""
    if command == "theory":
        return ["theory", "--experiment", "variance", "--seed", str(variant)], ("theory.json",)
    if command == "rm pairs":
        path = tmp / f"p{variant}.yaml"
        path.write_text(yaml.safe_dump(pairs_dict(tiny, min_gap=0.1 * variant)))
        return ["rm", "pairs", "-c", path], ("pairs.jsonl", "samples.jsonl", "summary.json")
    path = write_eval_config(tmp / f"e{variant}.yaml", tiny, bootstrap_samples=50 + variant)
    return ["evaluate", "-c", path], ("report.json", "rewards.parquet", "prompts.parquet", "preference_rewards.parquet",
                                      "summary.md")


def _interrupted_then_rerun(command, tiny, tmp_path, capsys, monkeypatch, *, every: bool) -> int:
    """An earlier output (variant 0) in --out; variant 1 interrupted at each write, then rerun. Returns the cases."""
    argv0, _ = _one_shot(command, tiny, tmp_path, 0)
    argv1, compared = _one_shot(command, tiny, tmp_path, 1)
    out = tmp_path / "case" / "out"
    plant(out.parent, {"beside.txt": b"mine\n", "data/keep.csv": b"1\n"})  # the user's files beside --out
    assert run_cli(argv0 + ["--out", out], capsys)[0] == 0  # (evaluate: fills the sample and score caches)
    clean = tmp_path / "clean"
    with interrupt_at(monkeypatch, None) as names:
        assert run_cli(argv1 + ["--out", clean], capsys)[0] == 0
    writes = len(names)
    assert writes >= 3 and names[0] == outdir.OWNERSHIP
    earlier = snapshot(out.parent)
    for n in range(1, writes + 1):
        with interrupt_at(monkeypatch, n):
            code, _, err = run_cli(argv1 + ["--out", out] + ["--overwrite"] * (command != "theory"), capsys)
        assert code == 130 and "interrupted" in err
        assert snapshot(out.parent) == earlier  # untouched: no half output, no temporary folder left beside it
        if every or n == writes:
            assert run_cli(argv1 + ["--out", out] + ["--overwrite"] * (command != "theory"), capsys)[0] == 0
            assert outputs(out) == outputs(clean) and all((out / f).is_file() for f in compared)
            # back to the earlier output for the next interrupt
            assert run_cli(argv0 + ["--out", out] + ["--overwrite"] * (command != "theory"), capsys)[0] == 0
            earlier = snapshot(out.parent)
    return writes


@pytest.mark.parametrize("command", ["theory", "rm pairs", "evaluate"])
def test_one_shot_interrupted_at_each_write_leaves_out_as_it_was(command, tiny, tmp_path, capsys, monkeypatch):
    for name, fn in list(experiments.RUNNERS.items()):  # theory: each seed's numbers computed once, not per run
        monkeypatch.setitem(experiments.RUNNERS, name, functools.cache(fn))
    monkeypatch.setattr(theory_report, "plot_variance", lambda block: None)  # and no plot drawn (the slow test does)
    monkeypatch.setattr(theory_report, "fig_to_png", lambda fig: b"png")
    writes = _interrupted_then_rerun(command, tiny, tmp_path, capsys, monkeypatch, every=False)
    assert writes == {"theory": 4, "rm pairs": 4, "evaluate": 8}[command]  # the manifest, then each file


@pytest.mark.slow
@pytest.mark.parametrize("command", ["theory", "rm pairs", "evaluate"])
def test_one_shot_rerun_after_each_interrupt_matches_an_uninterrupted_run(command, tiny, tmp_path, capsys,
                                                                         monkeypatch):
    _interrupted_then_rerun(command, tiny, tmp_path, capsys, monkeypatch, every=True)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "rm train", "toy build"])
def test_a_whole_run_and_its_overwrite_leave_the_files_beside_out_alone(command, tiny, world, tmp_path, capsys):
    case = tmp_path / "case"
    plant(case, {"beside.txt": b"mine\n", "README.md": b"# project\n", "data/train_v3.jsonl": b"{}\n"})
    beside = snapshot(case)
    out = case / "out"
    argv = argv_of(command, tiny, world, tmp_path, out)
    assert run_cli(argv, capsys)[0] == 0
    first = sorted(p.name for p in out.iterdir())
    assert outdir.OWNERSHIP in first and outdir.foreign(out, command) is None
    assert run_cli(argv + ["--overwrite"], capsys)[0] == 0  # the run's own files replaced, and only those
    assert sorted(p.name for p in out.iterdir()) == first
    assert {k: v for k, v in snapshot(case).items() if not k.startswith("out")} == beside


def test_a_killed_runs_fresh_folder_is_removed_by_the_next_run_and_nothing_else(tmp_path, capsys):
    """`kill -9` during a one-shot command leaves its fresh folder beside --out; the next run of a command
    to that --out removes it when its process is gone and it holds an rmteach manifest, and nothing else."""
    import subprocess
    import sys

    from rmteach.core import outdir

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has exited
    out = tmp_path / "theory"
    stale = tmp_path / f".theory.rmteach-new.{dead_pid}.abc"
    live = tmp_path / f".theory.rmteach-new.{os.getpid()}.def"  # a run still going (this process)
    mine = tmp_path / f".theory.rmteach-new.{dead_pid}.user"  # same name pattern, but no rmteach manifest
    for folder in (stale, live):
        outdir.claim(folder, "theory")
        (folder / "theory.json").write_text("{}")
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, _, err = run_cli(["theory", "--out", out, "--experiment", "variance"], capsys)
    assert code == 0, err
    assert not stale.exists() and live.is_dir() and (mine / "notes.txt").read_text() == "mine"
    assert (out / "theory.json").is_file()
