"""The regime grid of issue 19: the demo's study re-run where practitioners train, and every predictor judged there.

Cells: toy worlds (default preset, seeds 0 and 1) x both policies x optimizer {SGD, AdamW} x KL {0, 0.05} x
horizon {60, 240} steps, 3 train seeds, all 8 RMs and the ground truth's own run. One study per (world,
optimizer, KL) trains 240 steps at a constant learning rate, evaluating every 10 steps; the 60-step cell reads
the same runs' eval curves up to step 60 (with a constant schedule the first 60 steps of a 240-step run are a
60-step run).

Learning rates (chosen once per optimizer, never per cell): SGD 0.003 without clipping (the demo's), AdamW 0.001
with max_grad_norm 1.0 (TRL's clipping default). Both make the ground truth's own run learn without saturating
early: `analyze` prints the share of its 240-step gain reached by step 20 per cell.

    python scripts/regime_grid.py run --world runs/toy/default-seed0 --world runs/toy/default-seed1 --out runs/grid
    python scripts/regime_grid.py analyze --out runs/grid [--json runs/grid/grid.json]

`run` resumes: a finished study (or run) is reused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gridlib import REGIMES, add_run_parser, demo_study, run_cells  # noqa: E402 (beside this script)

STEPS, EVAL_EVERY, HORIZONS = 240, 10, (60, 240)


def study_config(world: Path, regime: str, seeds: int):
    """The demo's full study over `world`, trained in `regime` for 240 steps."""
    return demo_study(world, regime, seeds, steps=STEPS, eval_every=EVAL_EVERY, name="regime grid")


def cmd_run(a: argparse.Namespace) -> None:
    run_cells(a.world, a.regime or list(REGIMES), a.out, lambda w, r: study_config(w, r, a.seeds), force=a.force,
              label="grid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    add_run_parser(sub, REGIMES)
    an = sub.add_parser("analyze", help="every predictor's Spearman with gold_auc per cell")
    an.add_argument("--out", required=True)
    an.add_argument("--json")
    a = ap.parse_args()
    if a.cmd == "run":
        cmd_run(a)
    else:
        from regime_analysis import cmd_analyze  # noqa: E402 (beside this script)

        cmd_analyze(a)


if __name__ == "__main__":
    main()
