"""The files of `rmteach curate`: OUT/<rm>/prompts.jsonl, curation.json, summary.md, and the table on stdout.

The output is written whole (`core.outdir.staged`): a fresh folder beside `--out` replaces it when complete.
Its RM folders are named by the RMs, so the ownership table cannot list them: `check_own` refuses a curate
folder holding anything but curation.json, summary.md and the RM folders its curation.json names (each with
its prompts.jsonl only), before `--overwrite` or a rerun replaces it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core import io, outdir
from ..core.errors import UserError
from ..core.progress import console, result_console

HEADER = ["reward model", "kept", "variance share", "forecast share", "forecast gain", "accuracy kept",
          "accuracy dropped"]
# The toy curation grid (README, "Making an RM a better teacher"): of the curated runs whose uniform run did not
# hack, those with a forecast gain >= 1.9 reached the uniform final in <= 0.67 of the steps in 18 of 19 (15
# beyond seed noise), at 1.5-1.9 in 15 of 33 (5), under 1.5 in 2 of 28 (1).
GAIN_PAYS, GAIN_LITTLE = 1.9, 1.5


def check_own(out: Path, marker: str) -> None:
    """Refuse a curate output folder that holds anything a curate run did not write (named in the message)."""
    found = outdir.owner(out) if out.is_dir() else None
    if found is None or found[0] != "curate":
        return  # absent, empty, or not ours: `io.claim_out_dir` has decided already
    try:
        listed = {rm["name"] for rm in json.loads((out / marker).read_text(encoding="utf-8"))["reward_models"]}
    except (OSError, ValueError, KeyError, TypeError):  # absent or not ours: only the fixed names are ours
        listed = set()
    for name in outdir.contents(out):
        p = out / name
        ours = p.is_file() and not p.is_symlink() if name in (marker, "summary.md") else (
            name in listed and p.is_dir() and not p.is_symlink() and outdir.entries(p) == ["prompts.jsonl"])
        if not ours:
            raise UserError(f"--out {out} holds {name}, which no curate run wrote; rmteach replaces only a run's own "
                            "files: move it away or choose another folder")


def _json_line(row: dict[str, Any], name: str) -> str:
    def refuse(value: Any) -> Any:
        col = next((k for k, v in row.items() if v is value), "?")
        raise UserError(f"reward model '{name}': a kept source row holds a {type(value).__name__} in column "
                        f"'{col}', which JSON cannot hold; convert the prompt set to JSONL first")

    return json.dumps(row, default=refuse) + "\n"


def write_outputs(out: Path, result: dict[str, Any], files: dict[str, list[dict[str, Any]]]) -> None:
    """Write every RM's prompts.jsonl, summary.md and curation.json (last) into a stage that replaces `out` whole."""
    texts = {name: "".join(_json_line(r, name) for r in rows) for name, rows in files.items()}  # before any write
    with outdir.staged(out, "curate") as stage:
        for name, text in texts.items():
            io.write_text(stage / name / "prompts.jsonl", text)
        io.write_text(stage / "summary.md", summary_markdown(result))
        io.write_json(stage / "curation.json", result)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _gain(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per RM of the summary table (`HEADER`)."""
    rows = []
    for rm in result["reward_models"]:
        gold = " (ground truth)" if rm["name"] == result["ground_truth"] else ""
        rows.append([rm["name"] + gold, f"{rm['n_kept']} of {rm['n_total']}", _pct(rm["variance_share"]),
                     _pct(rm["forecast_share"]), _gain(rm.get("forecast_gain")), _num(rm["accuracy_kept"]),
                     _num(rm["accuracy_dropped"])])
    return rows


def verdict(result: dict[str, Any]) -> str:
    """One sentence: for which RMs the curated set's forecast gain is one that paid in the toy grid, and for which
    there was little to gain (empty when no RM has a gain, e.g. without a ground truth).

    >>> verdict({"reward_models": [{"name": "a", "forecast_gain": 2.1}, {"name": "b", "forecast_gain": 1.2},
    ...                            {"name": "c", "forecast_gain": 1.7}, {"name": "d", "forecast_gain": None}]})
    'Likely to train faster (forecast gain >= 1.9): a. Little to gain (under 1.5): b. In between: c.'
    """
    gains = {rm["name"]: rm.get("forecast_gain") for rm in result["reward_models"]}
    known = {n: g for n, g in gains.items() if g is not None}
    fast = [n for n, g in known.items() if g >= GAIN_PAYS]
    groups = [(f"Likely to train faster (forecast gain >= {GAIN_PAYS})", fast),
              (f"Little to gain (under {GAIN_LITTLE})", [n for n, g in known.items() if g < GAIN_LITTLE]),
              ("In between", [n for n, g in known.items() if GAIN_LITTLE <= g < GAIN_PAYS])]
    return " ".join(f"{what}: {', '.join(names)}." for what, names in groups if names)


def _rule_text(result: dict[str, Any]) -> str:
    rule, keep = result["rule"], result["keep"]
    if rule == "zero_std":
        return "rule zero_std: every prompt kept but those whose K rewards are all equal (dead groups)"
    what = "reward variance" if rule == "variance" else "forecast term (agreement with the ground truth)"
    amount = f"{keep} prompts" if isinstance(keep, int) else f"{100 * keep:g}% of the eligible prompts"
    return f"rule {rule}: the {amount} with the highest {what}, ties ordered by seed {result['seed']}"


def summary_markdown(result: dict[str, Any]) -> str:
    """summary.md: the rule, the table and how to train on a curated set."""
    lines = ["# Curated prompt sets", "", f"From the evaluate `{result['evaluate']}`; {_rule_text(result)}.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(result)]
    first = result["reward_models"][0]["prompts"]
    lines += ["", "Shares: of the RM's summed per-prompt reward variance, and of its summed forecast term over the "
              "prompts that have one (past 100% when dropped prompts have negative terms). Accuracy: mean on-policy "
              "accuracy of the kept and of the dropped prompts. Forecast gain: the kept prompts' mean forecast term "
              "over that of all prompts with one.", "",
              f"Whether it pays: in rmteach's toy curation grid, sets with a forecast gain of at least {GAIN_PAYS} "
              "(an RM whose teaching signal sits on part of the prompts) reached the whole set's final ground truth "
              f"in at most two thirds of the steps in 18 of 19 cases; under {GAIN_LITTLE}, in 2 of 28. An RM flagged "
              "for hacking still hacks on a curated set. " + verdict(result), "",
              "Train on one with the prompt set `" + json.dumps(first) + "` (the path relative to this folder).", ""]
    return "\n".join(lines)


def print_table(result: dict[str, Any], out: Path) -> None:
    """The summary table on stdout (the result), then where the output went (stderr)."""
    from rich.table import Table

    table = Table(title=_rule_text(result))
    for h in HEADER:
        table.add_column(h, justify="left" if h == "reward model" else "right")
    for r in table_rows(result):
        table.add_row(*r)
    result_console().print(table)
    if said := verdict(result):
        result_console().print(said, highlight=False)
    console().print(f"wrote {out / 'curation.json'} and {len(result['reward_models'])} prompt set(s)")
