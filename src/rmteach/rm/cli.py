"""`rmteach rm pairs` and `rmteach rm train` on the command line: parse, load the config, call the library.

`rmteach.cli` registers them with `add_parsers(subparsers)` and dispatches `args.command == "rm"` to `run`.
Bad input raises `UserError`, which `rmteach.cli.main` turns into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.args import add_run_args


def add_parsers(subparsers: Any) -> argparse.ArgumentParser:
    """Register `rm` with its actions `pairs` and `train` on the `rmteach` command's subparsers.

    Returns:
        The `rm` parser.
    """
    p = subparsers.add_parser(
        "rm", help="reward models for real policies: on-policy pairs, Bradley-Terry training on a mix",
        description="The paper's Section 4.1 pipeline: preference pairs sampled from the policy and labelled "
        "by a ground truth (rm pairs), and Bradley-Terry RMs trained on mixes of on- and off-policy pairs "
        "(rm train), ready for evaluate, train and study.",
    )
    sub = p.add_subparsers(dest="rm_command", required=True, metavar="ACTION")
    a = sub.add_parser(
        "pairs", help="sample K responses per prompt, label pairs by a ground truth, write a preference set",
        description="Sample responses from the policy, score them with the ground truth and write "
        "pairs.jsonl (prompt, chosen, rejected, id), samples.jsonl and summary.json (pairs kept, tie rate, gaps).",
    )
    add_run_args(a, example="total=2000")
    a = sub.add_parser(
        "train", help="train a Bradley-Terry RM (TRL RewardTrainer) on a mix of preference sets",
        description="Draw `total` pairs from the mix's sets (seeded), train from the base model with TRL's "
        "RewardTrainer (LoRA optional), write OUT/model (an HF sequence classifier with one output), "
        "metrics.jsonl and run.json (held-out accuracy). Runs under `accelerate launch -m rmteach rm train ...`.",
    )
    add_run_args(a, example="total=2000")
    a.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    return p


def run(args: argparse.Namespace) -> int:
    """Run `rm pairs` or `rm train` from parsed arguments; returns the exit code (0)."""
    from .config import PairsConfig, RMTrainConfig, load

    if args.rm_command == "pairs":
        from .pairs import run_pairs

        run_pairs(load(PairsConfig, args.config, args.overrides), Path(args.out), overwrite=args.overwrite)
    elif args.rm_command == "train":
        from .trainer import run_rm_train

        cfg = load(RMTrainConfig, args.config, args.overrides)
        run_rm_train(cfg, Path(args.out), resume=args.resume, overwrite=args.overwrite)
    return 0
