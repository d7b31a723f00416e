"""The study's report: `report.html` (one self-contained page, read first), `summary.md` and `plots/*.png`.

The page, top to bottom: the claims with the numbers behind them, reward curves per RM, each predictor
against the gold-reward increase, the correlation table beside the paper's, the per-policy rankings, the
definitions, and the full config. Everything comes from the study dict (`study.json`'s content).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import yaml

from ...core import io
from ...core.html import fig_to_png, html_page, html_table, png_data_uri
from ...core.metrics import CORRELATIONS
from ...evaluate.ranking import STABLE
from ..analysis import PREDICTOR_LABELS, PREDICTORS
from ..claims import HELD, NOT_HELD
from ..outcomes import proxy_counterpart
from ..hacking import hacking_sentence
from .curation import curation_figure, curation_html, curation_markdown
from .plots import curves_figure, plotted_predictors, scatter_figure

# The paper's correlation table (Pearson / Spearman, after one epoch, 6 RMs), shown beside ours.
PAPER_CORRELATIONS = {
    "gold": {
        "reward_variance": (0.834, 0.714),
        "onpolicy_accuracy": (-0.283, 0.200),
        "offpolicy_accuracy": (-0.507, -0.543),
        "on_off_accuracy": (-0.397, 0.200),
        "variance_and_accuracy": (0.940, 0.828),
    },
    "proxy": {
        "reward_variance": (0.982, 1.000),
        "onpolicy_accuracy": (-0.762, 0.143),
        "offpolicy_accuracy": (-0.933, -0.943),
        "on_off_accuracy": (-0.870, -0.486),
        "variance_and_accuracy": (0.676, 0.886),
    },
}
_STATUS_COLOUR = {HELD: "#1a7f37", NOT_HELD: "#cf222e"}  # anything else (undetermined): amber
_METHOD_LABEL = {"pearson": "Pearson r", "spearman": "Spearman rho", "kendall": "Kendall tau"}


def describe_outcome(name: str) -> str:
    """A one-line definition of an outcome name.

    >>> describe_outcome("gold_increase@0.5")
    'eval ground-truth (gold) reward after 50% of the steps minus its value at step 0'
    """
    kind = "ground-truth (gold)" if name.startswith("gold") else "proxy (normalized)"
    if name.endswith("_auc"):
        return f"area under the eval {kind} reward increase curve divided by the steps (the mean increase over training)"
    frac = float(name.split("@")[1])
    return f"eval {kind} reward after {frac * 100:g}% of the steps minus its value at step 0"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _coef(c: dict[str, Any]) -> str:
    """'0.714 [0.12, 0.95]' or 'n/a'."""
    if c["value"] is None:
        return "n/a"
    ci = c.get("ci95")
    nb = "\u00a0"  # no-break spaces keep "value [lo, hi]" on one line
    return f"{c['value']:.3f}" + (f"{nb}[{ci[0]:.2f},{nb}{ci[1]:.2f}]" if ci else "")


# ----------------------------------------------------------------------------------------------------------
# Pieces shared by HTML and markdown


def correlation_rows(
    study: dict[str, Any], outcome: str, key: str = "correlations"
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a correlation table for `outcome`: one row per (predictor, scope), the paper's values
    and the outcome's reliability over seeds beside; `key` picks the set (`correlations` or
    `correlations_all_rms`)."""
    paper = PAPER_CORRELATIONS["gold" if outcome.startswith("gold") else "proxy"]
    header = ["predictor", "RMs compared", "n", *(_METHOD_LABEL[m] + " [95% CI]" for m in CORRELATIONS),
              "reliability over seeds (sqrt: Spearman ceiling)", "paper Pearson", "paper Spearman"]
    rows = []
    for pred in PREDICTORS:
        scopes = study[key]["scopes"]
        if all(s["table"][pred][outcome]["spearman"]["value"] is None for s in scopes.values()):
            continue  # a predictor this study did not measure (e.g. gradient alignment, off)
        for i, (scope, s) in enumerate(scopes.items()):
            cells = s["table"][pred][outcome]
            pp, ps = paper.get(pred, (None, None))
            reliability = (s.get("reliability") or {}).get(outcome) or {}
            rows.append([PREDICTOR_LABELS[pred] if i == 0 else "", scope, str(s["n"]),
                         *(_coef(cells[m]) for m in CORRELATIONS), _reliability(reliability),
                         _num(pp) if i == 0 and pp is not None else "", _num(ps) if i == 0 and ps is not None else ""])
    return header, rows


def _reliability(c: dict[str, Any]) -> str:
    """'0.800 (sqrt 0.894; 3 splits)' or 'n/a'."""
    if c.get("reliability") is None:
        return "n/a"
    return f"{c['reliability']:.3f} (sqrt {c['ceiling']:.3f}; {c['n_splits']} splits)"


def forecast_cost_text(cost: dict[str, Any] | None) -> str:
    """One sentence: the forecast's wall time as a share of the study's RL wall time (from timing.json)."""
    if not cost or cost.get("forecast_fraction") is None:
        return "The forecast's wall time was not recorded (evaluations or train runs without timing files)."
    fc = sum(x for x in cost["forecast_s"].values() if x is not None)
    text = (f"Forecast cost: {fc:.2f} s for the report cards of every policy (forecasts, variance and their "
            f"bootstraps) against {cost['rl_train_s']:.0f} s of RL training summed over "
            f"{cost['runs_with_train_time']} runs: {100 * cost['forecast_fraction']:.3f}% of the RL wall time")
    if cost.get("gradient_fraction") is not None:
        text += f"; gradient alignment {100 * cost['gradient_fraction']:.2f}%"
    return text + "."


def spearman_overview(study: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Spearman of every predictor (columns) with every outcome (rows), per scope (values only)."""
    scopes = study["correlations"]["scopes"]
    preds = [p for p in PREDICTORS if any(s["table"][p][o]["spearman"]["value"] is not None
                                          for s in scopes.values() for o in study["outcomes"])]
    header = ["outcome", "RMs compared", *(PREDICTOR_LABELS[p] for p in preds)]
    rows = []
    for o in study["outcomes"]:
        for i, (scope, s) in enumerate(scopes.items()):
            rows.append([o if i == 0 else "", scope, *(_num(s["table"][p][o]["spearman"]["value"]) for p in preds)])
    return header, rows


def ranking_rows(study: dict[str, Any], policy: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one policy's ranking, with the predictors measured before training."""
    primary = study["primary_outcome"]
    extra = [o for o in ("gold_auc", proxy_counterpart(primary)) if o != primary]
    header = ["rank", "reward model", primary, "seed std", *extra, "forecast (gold_rate)", "reward variance",
              "on-policy acc", "off-policy acc"]
    points = {p["reward_model"]: p for p in study["points"] if p["policy"] == policy}
    rows = []
    for r in study["rankings"]["policies"][policy]:
        p = points[r["reward_model"]]
        name = r["reward_model"] + (" (ground truth)" if r["is_ground_truth"] else "")
        rows.append([
            "ref" if r["rank"] is None else str(r["rank"]), name, _num(r["mean"]), _num(r["std"]),
            *(_num(p["outcomes"][o]["mean"]) for o in extra), _num(p["predictors"].get("gold_rate")),
            _num(p["predictors"]["reward_variance"]), _num(p["predictors"]["onpolicy_accuracy"]),
            _num(p["predictors"]["offpolicy_accuracy"]),
        ])
    return header, rows


def hacking_rows(study: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The hacking-risk flag of each (policy, RM) beside its held-out ground-truth change over training."""
    header = ["policy", "reward model", "flagged", "best-of-K share", "held-out gold change (mean over seeds)",
              "95% CI", "ended below start", "beyond seed noise"]
    ci = lambda c: "-" if not c else f"[{_num(c[0], 4)}, {_num(c[1], 4)}]"  # noqa: E731
    rows = [[r["policy"], r["reward_model"], "-" if r["flag"] is None else ("yes" if r["flag"] else "no"),
             _num(r["best_of_k_share"], 2), _num(r["gold_change"], 4), ci(r.get("ci95")),
             "yes" if r["hacked"] else "no", r.get("outcome", "-")]
            for r in study["hacking"]["rows"]]
    return header, rows


def stability_sentence(study: dict[str, Any]) -> str | None:
    """One sentence on each policy's forecast stability (its evaluate's), or None when none was measured."""
    values = {p: v for p, v in (study.get("forecast_stability") or {}).items() if v is not None}
    if not values:
        return None
    low = [p for p, v in values.items() if v < STABLE]
    text = ("The forecast's own ranking stability (its evaluate's mean bootstrap Spearman over prompts): "
            + ", ".join(f"{p} {v:.2f}" for p, v in values.items()) + ".")
    if low:
        text += (f" Under {STABLE} ({', '.join(low)}), the evaluate's sampling noise alone limits how well the "
                 "forecast can rank the RMs: evaluate more prompts or samples per prompt.")
    return text


def overview(study: dict[str, Any]) -> str:
    """One paragraph saying what was run and how outcomes and correlations are defined."""
    n_runs = len(study["runs"])
    gt = study["ground_truth"]
    trained_gt = any(r["is_ground_truth"] for r in study["runs"])
    corr = study["correlations"]
    return (
        f"{len(study['policies'])} polic{'ies' if len(study['policies']) != 1 else 'y'} "
        f"({', '.join(study['policies'])}) x {len(study['reward_models'])} candidate reward models x "
        f"{len(study['seeds'])} seed(s) (seeds {', '.join(map(str, study['seeds']))}); "
        + (f"the ground truth '{gt}' was also trained on as a reference; " if trained_gt else "")
        + f"{n_runs} train runs in all. Primary outcome <code>{html.escape(study['primary_outcome'])}</code>: "
        f"{html.escape(describe_outcome(study['primary_outcome']))}, averaged over seeds. Correlations are taken "
        f"across the candidate RMs per policy and pooled over policies, "
        f"{'including' if corr['include_ground_truth'] else 'excluding'} the ground truth's own run"
        + (f" and leaving out {', '.join(html.escape(n) for n in corr['excluded'])} (ranked, but not correlated: "
           "<code>analysis.exclude_from_correlations</code>)" if corr.get("excluded") else "")
        + f"; they need at least {corr['min_points']} RMs."
    )


# ----------------------------------------------------------------------------------------------------------
# HTML


def _claims_html(study: dict[str, Any]) -> str:
    parts = []
    for c in study["claims"]:
        colour = _STATUS_COLOUR.get(c["status"], "#9a6700")
        parts.append(
            f'<div class="claim" id="claim-{c["id"]}" style="border-left: 6px solid {colour}; padding: 0.3rem 0.9rem; '
            'margin: 0.7rem 0; background: #fafafa;">'
            f'<p><strong>({c["id"]}) <span class="status" style="color: {colour};">{html.escape(c["status"].upper())}'
            f"</span></strong> &mdash; {html.escape(c['statement'])}</p>"
            f'<p class="note">{"<br>".join(html.escape(part) for part in c["summary"].split("; "))}</p></div>'
        )
    return "\n".join(parts)


def _img(figures: dict[str, bytes], name: str, alt: str, width: str = "100%") -> str:
    return (f'<img src="{png_data_uri(figures[name])}" alt="{html.escape(alt)}" '
            f'style="width: {width}; max-width: 100%;">')


def report_html(study: dict[str, Any], figures: dict[str, bytes], cost: dict[str, Any] | None = None) -> str:
    """The whole report page; `figures` maps plot names (as in `plots/NAME.png`) to PNG bytes; `cost` is
    timing.json's `forecast_cost` (wall times stay out of study.json)."""
    primary = study["primary_outcome"]
    proxy = proxy_counterpart(primary)
    b = [f"<p>{overview(study)}</p>", "<h2>Claims</h2>", _claims_html(study)]
    b.append("<h2>Reward curves</h2>")
    b.append('<p class="note">Eval reward on held-out prompts, as increase since step 0 (the initial policy), per '
             "reward model the policy was trained with.</p>")
    for policy in study["policies"]:
        b.append(_img(figures, f"curves_{policy}", f"reward curves for {policy}"))
    b.append(f"<h2>Predictors vs <code>{html.escape(primary)}</code></h2>")
    b.append('<p class="note">Each point is one (policy, RM), measured by <code>evaluate</code> before training; '
             "error bars are the std over seeds; hollow markers are not in the correlations.</p>")
    b.append("<div>" + "\n".join(_img(figures, f"scatter_{p}", PREDICTOR_LABELS[p], "49%")
                                  for p in PREDICTORS if f"scatter_{p}" in figures) + "</div>")
    b.append(f'<p class="note">{html.escape(forecast_cost_text(cost))}</p>')
    if "correlations_all_rms" in study:
        b.append("<h2>Correlations over all RMs (how the forecasts are judged)</h2>")
        b.append('<p class="note">Every trained RM of a policy, the ground truth and the high-variance inaccurate '
                 "RM included: an RM that hacks the ground truth must be forecast last. The reliability is the "
                 "Spearman between the RM rankings from two halves of the seeds, averaged over splits and stepped "
                 "up to all the seeds (Spearman-Brown); its square root is about what a predictor that knows the "
                 "RMs' true outcomes scores, so a higher Spearman is luck.</p>")
        b.append(html_table(*correlation_rows(study, primary, "correlations_all_rms")))
        if stable := stability_sentence(study):
            b.append(f'<p class="note">{html.escape(stable)}</p>')
    b.append("<h2>Correlations over the paper's set (Section 4.1)</h2>")
    notes = [f"{scope}: {s['note']}" for scope, s in study["correlations"]["scopes"].items() if s["note"]]
    if notes:
        b.append('<p class="note"><strong>' + html.escape("; ".join(notes)) + "</strong></p>")
    for outcome, what in ((primary, "ground-truth"), (proxy, "proxy")):
        b.append(f"<h3>with <code>{html.escape(outcome)}</code> ({what} reward)</h3>")
        b.append(html_table(*correlation_rows(study, outcome)))
    b.append('<p class="note">Paper: Razin et al. (2025), Pythia-2.8B, 6 RMs, reward increase after one epoch of '
             "RLOO. Off-policy accuracy is agreement with the ground truth's ordering of the preference pairs. "
             "On- &amp; off-policy accuracy is their mean; variance &amp; accuracy is the mean of min-max scaled "
             "variance and on-policy accuracy over the RMs compared. CIs: percentile bootstrap over RMs.</p>")
    b.append("<h3>Spearman rho with every outcome</h3>")
    b.append(html_table(*spearman_overview(study)))
    b.append("<h2>Rankings per policy</h2>")
    for policy in study["policies"]:
        best = study["rankings"]["best"].get(policy)
        b.append(f"<h3>{html.escape(policy)}: best teacher {html.escape(str(best))}</h3>")
        b.append(html_table(*ranking_rows(study, policy)))
    if study.get("hacking"):
        b.append("<h2>Hacking risk against training</h2>")
        b.append(f'<p>{html.escape(hacking_sentence(study["hacking"]))}</p>')
        b.append(html_table(*hacking_rows(study)))
    b += curation_html(study, figures)
    b.append("<h2>Definitions</h2><ul>")
    b += [f"<li><code>{html.escape(o)}</code>: {html.escape(describe_outcome(o))}</li>" for o in study["outcomes"]]
    b.append("</ul>")
    b.append("<h2>Configuration</h2>")
    b.append(f"<pre>{html.escape(yaml.safe_dump(study['config'], sort_keys=False))}</pre>")
    return html_page(f"rmteach study: {study['name']}", "\n".join(b))


# ----------------------------------------------------------------------------------------------------------
# Markdown


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    return ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(esc, r)) + " |" for r in rows)]


def summary_markdown(study: dict[str, Any]) -> str:
    """summary.md: the claims, the primary correlation table and the rankings."""
    primary = study["primary_outcome"]
    lines = [f"# rmteach study: {study['name']}", "", html.unescape(overview(study)).replace("<code>", "`").replace("</code>", "`"),
             "", "## Claims", ""]
    for c in study["claims"]:
        lines += [f"- **({c['id']}) {c['status']}**: {c['statement']}", f"  {c['summary']}"]
    if "correlations_all_rms" in study:
        lines += ["", f"## Correlations with `{primary}` over all RMs (the forecasts' test)", ""]
        lines += _md_table(*correlation_rows(study, primary, "correlations_all_rms"))
        if stable := stability_sentence(study):
            lines += ["", stable]
    lines += ["", f"## Correlations with `{primary}` over the paper's set", ""]
    lines += _md_table(*correlation_rows(study, primary))
    lines += ["", "## Rankings", ""]
    for policy in study["policies"]:
        lines += [f"### {policy}", ""] + _md_table(*ranking_rows(study, policy)) + [""]
    if study.get("hacking"):
        lines += ["## Hacking risk against training", "", hacking_sentence(study["hacking"]), ""]
        lines += _md_table(*hacking_rows(study)) + [""]
    lines += curation_markdown(study)
    return "\n".join(lines) + "\n"


def write_report(out: Path, study: dict[str, Any], cost: dict[str, Any] | None = None) -> dict[str, Path]:
    """Render the figures and write `plots/*.png`, `summary.md` and `report.html` under `out`.

    Arguments:
        out: the study folder; study: study.json's content; cost: timing.json's `forecast_cost`, if known.

    Returns:
        {"report": path, "summary": path, "plots": folder}.
    """
    figures = {f"curves_{p}": fig_to_png(curves_figure(study, p)) for p in study["policies"]}
    figures.update({f"scatter_{p}": fig_to_png(scatter_figure(study, p)) for p in plotted_predictors(study)})
    if "curation" in study:
        figures.update({f"curation_{p}": fig_to_png(curation_figure(study, p)) for p in study["policies"]})
    for name, png in figures.items():
        io.write_bytes(out / "plots" / f"{name}.png", png)
    io.write_text(out / "summary.md", summary_markdown(study))
    io.write_text(out / "report.html", report_html(study, figures, cost))
    return {"report": out / "report.html", "summary": out / "summary.md", "plots": out / "plots"}
