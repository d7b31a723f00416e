"""What the validation grids share (`regime_grid.py`, `curation_grid.py`): the regimes, the demo's study over a
toy world with a changed train block, and the resumable walk over (regime, world) studies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

REGIMES = {  # name: the train block's settings on top of the demo's; learning rates chosen once per optimizer
    "sgd-kl0": {"optimizer": "sgd", "learning_rate": 0.003, "max_grad_norm": 0.0, "kl_coef": 0.0},
    "adamw-kl0": {"optimizer": "adamw", "learning_rate": 0.001, "max_grad_norm": 1.0, "kl_coef": 0.0},
    "sgd-kl0.05": {"optimizer": "sgd", "learning_rate": 0.003, "max_grad_norm": 0.0, "kl_coef": 0.05},
    "adamw-kl0.05": {"optimizer": "adamw", "learning_rate": 0.001, "max_grad_norm": 1.0, "kl_coef": 0.05},
}


def demo_study(world: Path, regime: str, seeds: int, *, steps: int, eval_every: int, name: str,
               extra: dict[str, Any] | None = None):
    """The demo's full study over the toy world in `world`, trained in `regime` for `steps` steps."""
    from rmteach.core.config import to_plain, validate
    from rmteach.demo import demo_config
    from rmteach.study.config import StudyConfig

    manifest = json.loads((world / "manifest.json").read_text(encoding="utf-8"))
    plain = to_plain(demo_config(world, manifest, quick=False, seed=0, seeds=seeds))
    plain["train"] = {**plain["train"], **REGIMES[regime], "steps": steps, "eval_every": min(eval_every, steps)}
    plain.update(extra or {})
    plain["name"] = f"{name}: {world.name}, {regime}, {steps} steps"
    return validate(StudyConfig, plain, f"{name} {world.name} {regime}")


def run_cells(worlds: Iterable[str], regimes: Iterable[str], out: str, config: Callable[[Path, str], Any], *,
              force: bool, label: str) -> None:
    """Run one study per (regime, world) into OUT/<world>/<regime>, skipping finished ones unless `force`."""
    from rmteach.study.run import run_study

    paths = [Path(w).resolve() for w in worlds]
    for regime in regimes:
        for world in paths:
            folder = Path(out) / world.name / regime
            if (folder / "study.json").is_file() and not force:
                print(f"[{label}] {folder}: done, skipped", flush=True)
                continue
            print(f"[{label}] {folder}: running", flush=True)
            run_study(config(world, regime), folder, overwrite=True)


def add_run_parser(sub: Any, regimes: Iterable[str]) -> Any:
    """The `run` subcommand both grids take: --world (repeat), --out, --seeds, --regime (repeat), --force."""
    r = sub.add_parser("run", help="train every study of the grid (resumes: finished studies and runs are reused)")
    r.add_argument("--world", action="append", required=True, help="a built toy world (default preset); repeat")
    r.add_argument("--out", required=True)
    r.add_argument("--seeds", type=int, default=3)
    r.add_argument("--regime", action="append", choices=list(regimes), help="only these regimes (repeat)")
    r.add_argument("--force", action="store_true", help="run a finished study again (its finished runs are reused)")
    return r
