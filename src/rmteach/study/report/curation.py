"""The curation part of a study's report (study.json's `curation`): one table and held-out gold curves per policy."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from ...core.html import html_table, png_data_uri
from .plots import mean_band

HEADER = ["policy", "reward model", "rule", "kept", "speed-up steps [95% CI]", "reached",
          "final gold: uniform", "curated", "difference (resolved?)"]
NOTE = ("Each (policy, RM, seed) trained at equal steps on the uniform pool and on each curated set; every curve is "
        "measured on the same held-out eval prompts. Speed-up steps: the fraction of the steps at which the curated "
        "arm's seed-mean held-out gold first reaches the uniform arm's seed-mean final gold (below 1: sooner; '-': "
        "never), with a 95% bootstrap interval over seeds ('-' end: over 2.5% of resamples never reach it); reached: "
        "the share of resamples that do. Difference: curated - uniform final gold, resolved by a Welch t test.")


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def curation_rows(study: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The table: one row per (policy, RM, curated rule)."""
    rows = []
    for c in study["curation"]["comparisons"]:
        ci = c["ci95"]
        interval = "" if ci is None else f" [{_num(ci[0], 2)}, {_num(ci[1], 2)}]"
        d = c["final_gold_difference"]
        rm = c["reward_model"] + (" (ground truth)" if c["is_ground_truth"] else "")
        rows.append([c["policy"], rm, c["rule"], f"{c['n_kept']}/{c['n_total']}",
                     _num(c["speedup_steps"], 2) + interval, _num(c["reached_share"], 2),
                     _num(c["uniform_final_gold"]), _num(c["curated_final_gold"]),
                     f"{d['difference']:+.3f} ({'yes' if d['resolved'] else 'no'})"])
    return HEADER, rows


def curation_figure(study: dict[str, Any], policy: str, max_rms: int = 4):
    """Held-out gold increase, uniform (solid) vs each curated rule (dashed, dotted), one panel per RM (the first
    `max_rms` of the policy)."""
    from matplotlib.figure import Figure

    cur = study["curation"]
    runs = [r for r in study["runs"] + cur["runs"] if r["policy"] == policy]
    rms = list(dict.fromkeys(c["reward_model"] for c in cur["comparisons"] if c["policy"] == policy))[:max_rms]
    rules = [None] + [r for r in cur["rules"] if r != "none"]
    fig = Figure(figsize=(3.2 * max(1, len(rms)), 3.2), dpi=100)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(rms))))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.82, wspace=0.3)
    styles = ["-", "--", ":", "-."]
    for ax, rm in zip(axes, rms):
        for k, rule in enumerate(rules):
            mine = [r for r in runs if r["reward_model"] == rm and r.get("rule") == rule]
            if not mine:
                continue
            steps, mean, _ = mean_band([r["curve"] for r in mine], "gold")
            ax.plot(steps, mean, linestyle=styles[k % len(styles)], linewidth=1.6, label=rule or "uniform")
        ax.set_title(f"{policy} / {rm}", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out gold increase")
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle("held-out gold reward, uniform vs curated (mean over seeds)", fontsize=9)
    return fig


def curation_html(study: dict[str, Any], figures: dict[str, bytes]) -> list[str]:
    """The page's curation section (empty without a curation block)."""
    if "curation" not in study:
        return []
    cur = study["curation"]
    keep = "" if cur["keep"] is None else f", keep {cur['keep']}"
    b = ["<h2>Curation: uniform vs curated prompt sets</h2>",
         f'<p class="note">Rules {html.escape(", ".join(cur["rules"]))}{html.escape(keep)}, selected from each '
         f"policy's evaluate; the uniform arm trains on the pool they select from. {html.escape(NOTE)}</p>",
         html_table(*curation_rows(study))]
    for policy in study["policies"]:
        name = f"curation_{policy}"
        if name in figures:
            b.append(f'<img src="{png_data_uri(figures[name])}" alt="curation curves for {html.escape(policy)}" '
                     'style="width: 100%; max-width: 100%;">')
    return b


def curation_markdown(study: dict[str, Any]) -> list[str]:
    """summary.md's curation section (empty without a curation block)."""
    if "curation" not in study:
        return []
    header, rows = curation_rows(study)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    return ["", "## Curation: speed-up over the uniform prompt set", "", NOTE, "",
            "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(esc, r)) + " |" for r in rows), ""]
