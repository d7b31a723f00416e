"""Output for logs: a result table written to a file keeps its natural width; progress becomes plain lines."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import write_eval_config
from train_world import env

from rmteach.core.progress import EVERY_UNIT, LOG_EVERY_S, LineProgress
from rmteach.evaluate.report import summary_rows


@pytest.mark.slow
def test_evaluate_into_a_file_writes_a_table_a_person_can_read(tiny, tmp_path):
    cfg = write_eval_config(tmp_path / "eval.yaml", tiny)
    out = tmp_path / "run"
    with open(tmp_path / "log.txt", "w") as log, open(tmp_path / "err.txt", "w") as err:  # not a terminal
        r = subprocess.run([sys.executable, "-m", "rmteach", "evaluate", "--config", str(cfg), "--out", str(out)],
                           stdout=log, stderr=err, env={**env(), "RMTEACH_CACHE_DIR": str(tmp_path / "cache"),
                                                        "COLUMNS": "80"}, timeout=300)
    assert r.returncode == 0, (tmp_path / "err.txt").read_text()
    text = (tmp_path / "log.txt").read_text()
    assert "…" not in text  # nothing cut
    header, rows = summary_rows(json.loads((out / "report.json").read_text()))
    lines = text.splitlines()
    for cells in [header] + rows:  # each row of the table, every cell whole and in order, on one line
        found = [ln for ln in lines if all(c in ln for c in cells)]
        assert found, cells
        at = 0
        for c in cells:  # in order: each cell after the one before
            at = found[0].index(c, at) + len(c)
    assert max(len(ln) for ln in lines) > 80
    # progress went to stderr as plain lines: the sampling phase reached its total
    err_lines = (tmp_path / "err.txt").read_text().splitlines()
    n = len([ln for ln in (tiny["prompts"]).read_text().splitlines() if ln.strip()])
    assert any(ln.startswith("sampling") and f": {n}/{n} (" in ln for ln in err_lines), err_lines


def test_line_progress_logs_each_unit_of_a_small_bar():
    lines, t = [], iter([0.0, 1.0, 2.0, 3.5])
    advance = LineProgress("train runs", 3, lines.append, clock=t.__next__)
    for _ in range(3):
        advance(1)
    # the time left: the mean time per unit so far times the units to go (1.0 x 2, then 1.0 x 1)
    assert lines == ["train runs: 1/3 (1.0 s, about 2 s left)", "train runs: 2/3 (2.0 s, about 1 s left)",
                     "train runs: 3/3 (3.5 s)"]
    lines, t = [], iter([0.0, 900.0])
    LineProgress("train runs", 16, lines.append, clock=t.__next__)(1)
    assert lines == ["train runs: 1/16 (900.0 s, about 3 h 45 min left)"]  # 15 x 900 s


def test_line_progress_of_a_large_bar_logs_tenths_and_every_interval():
    total = 10 * EVERY_UNIT
    clock = [0.0]
    lines: list[str] = []
    advance = LineProgress("scoring", total, lines.append, clock=lambda: clock[0])
    for i in range(total):
        clock[0] = i * 0.001  # fast: only the tenths print
        advance(1)
    assert len(lines) == 10 and lines[-1].startswith(f"scoring: {total}/{total}")
    lines.clear()
    clock[0] = 0.0
    slow = LineProgress("slow", total, lines.append, clock=lambda: clock[0])
    for i in range(5):  # five units, each LOG_EVERY_S apart: below a tenth, yet one line each
        clock[0] += LOG_EVERY_S
        slow(1)
    assert [ln.split(" (")[0] for ln in lines] == [f"slow: {i}/{total}" for i in range(1, 6)]
