"""The study's figures (matplotlib `Figure`s, no pyplot): reward curves per RM and predictor scatter plots.

Every function takes the study dict (`study.json`'s content, its `points` being `study.points.Point`s) and
returns a `Figure`; `core.html.fig_to_png` renders it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analysis import FORECASTS, PREDICTOR_LABELS, PREDICTORS, counted, predictor_matrix
from ..points import Point

_DPI = 100


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    # Fixed margins: a layout engine would double the rendering time of the report.
    return Figure(figsize=(width, height), dpi=_DPI)


def _colours(names: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def mean_band(curves: list[dict[str, list]], kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds of the increase since step 0 of `kind` ('gold' or 'proxy').

    Seeds evaluated at different steps are interpolated onto the union of their steps.

    Returns:
        (steps, mean, std), each (n_steps,); std is 0 with one seed.
    """
    steps = np.unique(np.concatenate([np.asarray(c["step"], dtype=np.float64) for c in curves]))  # (n_steps,)
    ys = []
    for c in curves:
        v = np.asarray(c[kind], dtype=np.float64)
        ys.append(np.interp(steps, np.asarray(c["step"], dtype=np.float64), v - v[0]))
    y = np.stack(ys)  # (n_seeds, n_steps)
    std = y.std(axis=0, ddof=1) if len(ys) > 1 else np.zeros_like(steps)
    return steps, y.mean(axis=0), std


def curves_figure(study: dict[str, Any], policy: str):
    """Eval gold and proxy reward increase per RM for one policy: mean over seeds, band of +-1 std."""
    runs = [r for r in study["runs"] if r["policy"] == policy]
    names = list(dict.fromkeys(r["reward_model"] for r in runs))
    colours = _colours([n for n in names if n != study["ground_truth"]])
    fig = _figure(11.0, 4.2)
    axes = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.06, right=0.80, bottom=0.12, top=0.85, wspace=0.25)
    for ax, kind, title in zip(axes, ("gold", "proxy"), ("ground-truth (gold) reward", "proxy reward (normalized)")):
        for name in names:
            mine = [r for r in runs if r["reward_model"] == name]
            steps, mean, std = mean_band([r["curve"] for r in mine], kind)
            gt = mine[0]["is_ground_truth"]
            colour = "black" if gt else colours[name]
            label = f"{name} (ground truth)" if gt else name
            ax.plot(steps, mean, color=colour, linestyle="--" if gt else "-", linewidth=1.6, label=label)
            if len(mine) > 1:
                ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_title(f"{policy}: eval {title}", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("increase since step 0")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    n_seeds = len(study["seeds"])
    fig.suptitle(f"mean over {n_seeds} seed{'s' if n_seeds > 1 else ''}" + (", band = +-1 std" if n_seeds > 1 else ""),
                 fontsize=9)
    return fig


def _fmt(c: dict[str, Any] | None) -> str:
    return "n/a" if c is None or c["value"] is None else f"{c['value']:.2f}"


def scatter_x(study: dict[str, Any], predictor: str) -> dict[tuple[str, str], float | None]:
    """Each point's x for `predictor`; `variance_and_accuracy` is scaled within each policy's candidate RMs."""
    pts: list[Point] = study["points"]
    xs: dict[tuple[str, str], float | None] = {}
    if predictor != "variance_and_accuracy":
        for p in pts:
            xs[(p["policy"], p["reward_model"])] = p["predictors"].get(predictor)
        return xs
    corr = study["correlations"]
    for policy in dict.fromkeys(p["policy"] for p in pts):
        mine = [p for p in pts if p["policy"] == policy
                and counted(p, corr["include_ground_truth"], corr.get("excluded", ()))]
        comb = predictor_matrix(mine)["variance_and_accuracy"] if mine else None  # as the correlations scale it
        if comb is None:
            continue
        for p, v in zip(mine, comb):
            xs[(p["policy"], p["reward_model"])] = float(v)
    return xs


def correlation_set(study: dict[str, Any], predictor: str) -> str:
    """Which correlations a predictor is shown with: the forecasts with all RMs, the paper's with the paper's set."""
    return "correlations_all_rms" if predictor in FORECASTS and "correlations_all_rms" in study else "correlations"


def plotted_predictors(study: dict[str, Any]) -> list[str]:
    """The predictors some point has a value for (e.g. no gradient alignment unless it was computed)."""
    return [p for p in PREDICTORS if any(x is not None for x in scatter_x(study, p).values())]


def scatter_figure(study: dict[str, Any], predictor: str):
    """One predictor against the primary outcome, one marker per policy, error bars = seed std.

    The title gives Pearson r, Spearman rho and Kendall tau per policy and pooled.
    """
    outcome = study["primary_outcome"]
    corr = study[correlation_set(study, predictor)]
    xs = scatter_x(study, predictor)
    points: list[Point] = study["points"]
    policies = list(dict.fromkeys(p["policy"] for p in points))
    colours = _colours(policies)
    markers = "osD^vP*X"
    fig = _figure(5.6, 4.6)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.11, top=0.80)
    for i, policy in enumerate(policies):
        for p in (q for q in points if q["policy"] == policy):
            x = xs.get((policy, p["reward_model"]))
            if x is None:
                continue
            o = p["outcomes"][outcome]
            filled = counted(p, corr["include_ground_truth"], corr.get("excluded", ()))
            ax.errorbar(x, o["mean"], yerr=o["std"] or 0.0, fmt=markers[i % len(markers)], color=colours[policy],
                        mfc=colours[policy] if filled else "none", markersize=6, capsize=2, linewidth=0.8)
            ax.annotate(p["reward_model"], (x, o["mean"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for i, policy in enumerate(policies):  # legend entries only
        ax.plot([], [], markers[i % len(markers)], color=colours[policy], label=policy)
    lines = []
    for scope, s in corr["scopes"].items():
        c = s["table"][predictor][outcome]
        lines.append(f"{scope} (n={s['n']}): r={_fmt(c['pearson'])}  rho={_fmt(c['spearman'])}  tau={_fmt(c['kendall'])}")
    ax.set_title(f"{PREDICTOR_LABELS[predictor]} vs {outcome}\n" + "\n".join(lines), fontsize=8)
    xlabel = PREDICTOR_LABELS[predictor] + (" (min-max scaled per policy)" if predictor == "variance_and_accuracy" else "")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(outcome, fontsize=9)
    ax.margins(x=0.12, y=0.08)  # room for the RM names
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return fig
