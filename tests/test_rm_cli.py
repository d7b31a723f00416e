"""rm.cli: `rm pairs` and `rm train` parsed and run as `rmteach` runs them; bad input is one line, exit 2,
nothing written."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from rmteach.core.errors import UserError
from rmteach.rm.cli import add_parsers, run


def _main(argv: list[str]) -> int:
    """What `rmteach.cli.main` does with the `rm` command once wired: parse, run, a `UserError` -> one line, 2."""
    parser = argparse.ArgumentParser(prog="rmteach")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args([str(a) for a in argv])
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return run(args)
    except UserError as e:
        print(f"rmteach {args.command}: error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 2


def _yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture()
def configs(tiny, tmp_path) -> dict[str, Path]:
    pairs = _yaml(tmp_path / "pairs.yaml", {
        "policy": {"path": str(tiny["policy_llama"]), "name": "llama"},
        "ground_truth": {"name": "gold", "callable": "rm_fns:gold"},
        "prompts": {"path": str(tiny["prompts"])},
        "sampling": {"samples_per_prompt": 6, "max_new_tokens": 6, "batch_size": 8, "seed": 0},
        "pairing": "all", "device": "cpu"})
    train = _yaml(tmp_path / "rm.yaml", {
        "base_model": {"path": str(tiny["policy_llama"]), "num_labels": 1},
        "mix": [{"path": "pairs/pairs.jsonl", "fraction": 0.75, "name": "sampled"},
                {"path": str(tiny["prefs"]), "fraction": 0.25, "name": "fixture"}],
        "total": 16, "held_out_fraction": 0.25, "epochs": 2, "batch_size": 4, "learning_rate": 1e-3,
        "device": "cpu", "cpu_threads": 1})
    return {"pairs": pairs, "train": train}


def test_pairs_then_train_from_the_command_line(configs, tmp_path, capsys):
    assert _main(["rm", "pairs", "-c", configs["pairs"], "-o", tmp_path / "pairs"]) == 0
    assert _main(["rm", "train", "-c", configs["train"], "-o", tmp_path / "rm", "--set", "seed=3"]) == 0
    run_json = json.loads((tmp_path / "rm" / "run.json").read_text())
    assert run_json["config"]["seed"] == 3 and run_json["status"] == "finished"
    assert [m["drawn"] for m in run_json["data"]["mix"]] == [12, 4] and run_json["data"]["held_out"] == 4
    assert (tmp_path / "rm" / "model" / "config.json").is_file()
    err = capsys.readouterr().err
    assert "kept" in err and "tie rate" in err and "held-out accuracy" in err
    # The same command again: already finished; a different config needs --overwrite.
    assert _main(["rm", "train", "-c", configs["train"], "-o", tmp_path / "rm", "--set", "seed=3"]) == 2
    assert "pass --resume to reuse it" in capsys.readouterr().err
    assert _main(["rm", "train", "-c", configs["train"], "-o", tmp_path / "rm", "--set", "seed=3", "--resume"]) == 0
    assert _main(["rm", "train", "-c", configs["train"], "-o", tmp_path / "rm"]) == 2
    assert "already holds a different rm train run" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--set", "mix.1.fraction=0.5"], r"mix fractions must sum to 1 \(got 0.75 \+ 0.5 = 1.25\)"),
    (["--set", "total=400"], "mix entry 'sampled' has 20 pairs, but 0.75 of total 400 needs 300"),
    (["--set", "base_model.num_labels=null"], "not a 1-output sequence classifier: set base_model.num_labels: 1"),
    (["--set", "mix.0.path=identical.jsonl"], "have the same text as chosen and rejected"),
    (["--set", "epoch=3"], "unknown key 'epoch'"),
])
def test_bad_train_input_is_one_line_exit_2_and_writes_nothing(configs, tmp_path, capsys, argv, message):
    (tmp_path / "pairs").mkdir()
    rows = [{"id": str(i), "prompt": "w1", "chosen": "w1 w2", "rejected": "w3" if i else "w1 w2"} for i in range(20)]
    (tmp_path / "identical.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "pairs" / "pairs.jsonl").write_text((tmp_path / "identical.jsonl").read_text().replace(
        '"rejected": "w1 w2"', '"rejected": "w9"'))
    code = _main(["rm", "train", "-c", configs["train"], "-o", tmp_path / "out", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("rmteach rm: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_the_parsers(capsys):
    assert _main(["rm", "--help"]) == 0
    out = capsys.readouterr().out
    assert "pairs" in out and "train" in out
    assert _main(["rm", "pairs", "-c", "x.yaml", "-o", "y", "--resume"]) == 2  # resume is train's only
    assert _main(["rm", "train", "-o", "y"]) == 2  # --config is required
    assert "--config" in capsys.readouterr().err


def test_wired_into_rmteach_cli(configs, tmp_path, capsys):
    """Runs once `rmteach.cli` registers `rm` (the maintainer's two lines)."""
    from rmteach.cli import build_parser, main

    try:
        build_parser().parse_args(["rm", "pairs", "-c", "x", "-o", "y"])
    except SystemExit:
        pytest.skip("rmteach.cli does not register the rm command yet")
    assert main(["rm", "train", "-c", str(configs["train"]), "-o", str(tmp_path / "out"),
                 "--set", "mix.1.fraction=0.5"]) == 2
    assert capsys.readouterr().err.startswith("rmteach rm: error: ") and not (tmp_path / "out").exists()
