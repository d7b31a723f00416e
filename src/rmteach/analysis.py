"""The study's analysis, pure: outcomes from train metrics, correlations across RMs, rankings, claims.

Data in, JSON-able dicts out; no model code and no files. Vocabulary:
- a *run* is one (policy, RM, seed) train run; its *curve* is the held-out evaluation measured every
  `eval_every` steps (`eval_gold_reward`, `eval_proxy_reward`), step 0 being the initial policy;
- an *outcome* is a number per run: `gold_increase@f` is the eval gold reward at the fraction `f` of the curve's
  last step minus its step-0 value (linear interpolation between eval steps), `gold_auc` the area under the
  increase curve divided by the last step (the mean increase over training), and the same for `proxy_*`;
- a *point* is one (policy, RM): its predictors (from the policy's evaluate report) and its outcomes averaged
  over seeds;
- a *predictor* is what one would measure before training: reward variance, on-/off-policy accuracy, their
  combinations as in Razin et al. (2025).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from .metrics import CORRELATIONS, correlation_with_ci, minmax

PREDICTORS = ("reward_variance", "onpolicy_accuracy", "offpolicy_accuracy", "on_off_accuracy", "variance_and_accuracy")
PREDICTOR_LABELS = {
    "reward_variance": "reward variance",
    "onpolicy_accuracy": "on-policy accuracy",
    "offpolicy_accuracy": "off-policy accuracy",
    "on_off_accuracy": "on- & off-policy accuracy (average)",
    "variance_and_accuracy": "variance & accuracy (average)",
}
# The accuracy that `variance_and_accuracy` averages with variance (both min-max scaled within the RMs compared).
COMBINED_ACCURACY = "onpolicy_accuracy"
MIN_POINTS = 3  # a correlation over fewer RMs is undefined
PERFECT_TOLERANCE = 1e-9  # "on-policy accuracy 1" up to rounding
HELD, NOT_HELD, UNDETERMINED = "held", "not held", "undetermined"

# ----------------------------------------------------------------------------------------------------------
# Outcomes of one run


def outcome_names(budgets: Sequence[float]) -> list[str]:
    """Names of every outcome for these budgets (fractions of the steps), gold first.

    >>> outcome_names([0.5, 1.0])
    ['gold_increase@0.5', 'gold_increase@1', 'gold_auc', 'proxy_increase@0.5', 'proxy_increase@1', 'proxy_auc']
    """
    names = []
    for kind in ("gold", "proxy"):
        names += [f"{kind}_increase@{b:g}" for b in budgets] + [f"{kind}_auc"]
    return names


def proxy_counterpart(outcome: str) -> str:
    """The proxy-reward outcome measured like a gold-reward outcome: `gold_auc` -> `proxy_auc`."""
    return "proxy" + outcome.removeprefix("gold")


def eval_curve(records: Iterable[dict[str, Any]]) -> dict[str, list]:
    """The held-out evaluation curve of a run from its metrics records (one dict per metrics.jsonl line).

    Records with `eval_gold_reward` are kept, sorted by step; a step logged twice keeps its last record.

    Returns:
        `{"step": [...], "gold": [...], "proxy": [...], "variance": [...]}`, lists of equal length.
    """
    by_step: dict[int, dict[str, Any]] = {}
    for r in records:
        if r.get("eval_gold_reward") is not None:
            by_step[int(r["step"])] = r
    steps = sorted(by_step)
    return {
        "step": steps,
        "gold": [float(by_step[s]["eval_gold_reward"]) for s in steps],
        "proxy": [_float_or_none(by_step[s].get("eval_proxy_reward")) for s in steps],
        "variance": [_float_or_none(by_step[s].get("eval_reward_variance")) for s in steps],
    }


def _float_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


def run_outcomes(curve: dict[str, list], budgets: Sequence[float]) -> dict[str, float]:
    """Increases of the eval gold and proxy reward after each budget, and the areas under the increase curves.

    Arguments:
        curve: an `eval_curve`, which must start at step 0 and have at least one later step.
        budgets: fractions in (0, 1] of the curve's last step.

    Returns:
        `{outcome name: value}` plus `steps` (the last eval step) and `initial_gold` / `final_gold`.

    >>> c = {"step": [0, 2, 4], "gold": [1.0, 2.0, 4.0], "proxy": [0.0, 1.0, 1.0]}
    >>> o = run_outcomes(c, [0.25, 1.0])
    >>> o["gold_increase@0.25"], o["gold_increase@1"], o["gold_auc"]
    (0.5, 3.0, 1.25)
    """
    steps = np.asarray(curve["step"], dtype=np.float64)  # (n_evals,)
    if steps.size < 2 or steps[0] != 0:
        raise ValueError(f"an eval curve needs step 0 and a later step (has steps {curve['step'][:5]})")
    horizon = float(steps[-1])
    out: dict[str, float] = {"steps": horizon, "initial_gold": float(curve["gold"][0]), "final_gold": float(curve["gold"][-1])}
    for kind in ("gold", "proxy"):
        values = curve[kind]
        if any(v is None for v in values):
            raise ValueError(f"the eval curve lacks some eval_{kind}_reward values")
        increase = np.asarray(values, dtype=np.float64) - float(values[0])  # (n_evals,), 0 at step 0
        for b in budgets:
            out[f"{kind}_increase@{b:g}"] = float(np.interp(b * horizon, steps, increase))
        out[f"{kind}_auc"] = float(np.trapezoid(increase, steps) / horizon)
    return out


# ----------------------------------------------------------------------------------------------------------
# Points: one per (policy, RM), outcomes averaged over seeds


def predictors_from_card(card: dict[str, Any]) -> dict[str, float | None]:
    """The raw predictors of one RM from its evaluate report card.

    Off-policy accuracy is agreement with the ground truth's ordering of the preference pairs (the paper's
    "relabeled by the ground truth") when the report has it, else agreement with the data set's labels.
    `variance_and_accuracy` depends on the other RMs compared and is filled in by `correlations`.
    """
    off = card.get("offpolicy_accuracy_vs_gold")
    if off is None:
        off = card.get("offpolicy_accuracy")
    on = card.get("onpolicy_accuracy")
    return {
        "reward_variance": float(card["reward_variance"]["mean"]),
        "onpolicy_accuracy": on,
        "offpolicy_accuracy": off,
        "on_off_accuracy": None if on is None or off is None else (on + off) / 2.0,
    }


def aggregate_points(runs: Sequence[dict[str, Any]], outcomes: Sequence[str]) -> list[dict[str, Any]]:
    """Group runs by (policy, RM), in first-seen order; average each outcome over seeds.

    Arguments:
        runs: dicts with `policy`, `reward_model`, `seed`, `is_ground_truth`, `predictors`, `outcomes`.
        outcomes: the outcome names to aggregate.

    Returns:
        One dict per (policy, RM): `policy`, `reward_model`, `is_ground_truth`, `seeds`, `predictors`, and
        `outcomes` = `{name: {"mean", "std" (ddof=1; None for one seed), "values" (per seed)}}`.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["policy"], r["reward_model"]), []).append(r)
    points = []
    for (policy, rm), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        agg = {}
        for name in outcomes:
            v = np.asarray([r["outcomes"][name] for r in rs], dtype=np.float64)  # (n_seeds,)
            agg[name] = {
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if v.size > 1 else None,
                "values": [float(x) for x in v],
            }
        points.append({
            "policy": policy,
            "reward_model": rm,
            "is_ground_truth": bool(rs[0]["is_ground_truth"]),
            "seeds": [r["seed"] for r in rs],
            "predictors": dict(rs[0]["predictors"]),
            "outcomes": agg,
        })
    return points


# ----------------------------------------------------------------------------------------------------------
# Correlations across RMs


def counted(point: dict[str, Any], include_ground_truth: bool, exclude: Sequence[str] = ()) -> bool:
    """Whether a point enters the correlations: not an excluded RM, and not the ground truth unless included."""
    return (include_ground_truth or not point["is_ground_truth"]) and point["reward_model"] not in exclude


def scope_points(
    points: Sequence[dict[str, Any]], include_ground_truth: bool, exclude: Sequence[str] = ()
) -> dict[str, list[dict[str, Any]]]:
    """The points each correlation is computed over: one scope per policy, plus `pooled` with 2+ policies."""
    kept = [p for p in points if counted(p, include_ground_truth, exclude)]
    scopes: dict[str, list[dict[str, Any]]] = {}
    for p in kept:
        scopes.setdefault(p["policy"], []).append(p)
    if len(scopes) > 1:
        scopes["pooled"] = list(kept)
    return scopes


def predictor_matrix(points: Sequence[dict[str, Any]]) -> dict[str, np.ndarray | None]:
    """Each predictor as an array over `points` (None when any point lacks it).

    `variance_and_accuracy` is the mean of min-max scaled variance and min-max scaled `COMBINED_ACCURACY`,
    scaled within these points (so it depends on which RMs are compared, as in the paper).
    """
    cols: dict[str, np.ndarray | None] = {}
    for name in PREDICTORS[:-1]:
        vals = [p["predictors"].get(name) for p in points]
        cols[name] = None if any(v is None for v in vals) else np.asarray(vals, dtype=np.float64)
    var, acc = cols["reward_variance"], cols[COMBINED_ACCURACY]
    if var is None or acc is None:
        cols["variance_and_accuracy"] = None
    else:  # rounded so that ties by construction (e.g. 0 + 1 and 1 + 0) are exact ties, not 1e-17 apart
        cols["variance_and_accuracy"] = np.round((minmax(var) + minmax(acc)) / 2.0, 12)
    return cols


def correlations(
    points: Sequence[dict[str, Any]],
    outcomes: Sequence[str],
    *,
    ci_outcomes: Sequence[str],
    include_ground_truth: bool,
    n_resamples: int,
    seed: int,
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """Pearson, Spearman and Kendall correlation of every predictor with every outcome, per scope.

    Arguments:
        points: from `aggregate_points`.
        outcomes: outcome names to correlate with.
        ci_outcomes: outcomes that get a bootstrap 95% CI over RMs (the others get the value only: the
            bootstrap costs about 0.2 s per coefficient).
        include_ground_truth: whether the ground truth's own run is one of the points.
        n_resamples, seed: the bootstrap's size and seed (the same resamples for every coefficient).
        exclude: names of candidate RMs left out of every scope (they are still ranked).

    Returns:
        `{"include_ground_truth", "excluded", "min_points", "scopes": {scope: {"reward_models", "n", "note",
        "table": {predictor: {outcome: {method: {"value", "ci95", "n"}}}}}}}`; values are None when undefined.
    """
    result: dict[str, Any] = {"include_ground_truth": include_ground_truth, "excluded": list(exclude),
                              "min_points": MIN_POINTS, "scopes": {}}
    for scope, pts in scope_points(points, include_ground_truth, exclude).items():
        n = len(pts)
        note = None
        if n < MIN_POINTS:
            note = f"correlations need at least {MIN_POINTS} reward models; this scope has {n}"
        cols = predictor_matrix(pts)
        table: dict[str, Any] = {}
        for pred in PREDICTORS:
            x = cols[pred]
            table[pred] = {}
            for out in outcomes:
                y = np.asarray([p["outcomes"][out]["mean"] for p in pts], dtype=np.float64)  # (n,)
                table[pred][out] = {}
                for method in CORRELATIONS:
                    if x is None or n < MIN_POINTS:
                        table[pred][out][method] = {"value": None, "ci95": None, "n": n}
                    else:
                        b = n_resamples if out in ci_outcomes else 0
                        table[pred][out][method] = correlation_with_ci(x, y, method, n_resamples=b, seed=seed)
        label = [p["reward_model"] if scope != "pooled" else f"{p['policy']}/{p['reward_model']}" for p in pts]
        result["scopes"][scope] = {"reward_models": label, "n": n, "note": note, "table": table}
    return result


# ----------------------------------------------------------------------------------------------------------
# Rankings


def rankings(points: Sequence[dict[str, Any]], outcome: str) -> dict[str, Any]:
    """Per policy, the candidate RMs ranked by `outcome` (mean over seeds, highest first; ties by name).

    The ground truth's own run, when there is one, is listed after them with rank None (a reference).

    Returns:
        `{"outcome", "policies": {policy: [{"rank", "reward_model", "mean", "std", "is_ground_truth"}]},
        "best": {policy: RM name or None}}`.
    """
    by_policy: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        by_policy.setdefault(p["policy"], []).append(p)
    table, best = {}, {}
    for policy, pts in by_policy.items():
        cand = sorted((p for p in pts if not p["is_ground_truth"]), key=lambda p: (-p["outcomes"][outcome]["mean"], p["reward_model"]))
        rows = [_rank_row(i + 1, p, outcome) for i, p in enumerate(cand)]
        rows += [_rank_row(None, p, outcome) for p in pts if p["is_ground_truth"]]
        table[policy] = rows
        best[policy] = cand[0]["reward_model"] if cand else None
    return {"outcome": outcome, "policies": table, "best": best}


def _rank_row(rank: int | None, p: dict[str, Any], outcome: str) -> dict[str, Any]:
    o = p["outcomes"][outcome]
    return {"rank": rank, "reward_model": p["reward_model"], "mean": o["mean"], "std": o["std"],
            "is_ground_truth": p["is_ground_truth"]}


# ----------------------------------------------------------------------------------------------------------
# Claims: each computed from the data, never assumed


def _f(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def find_perfect_low_variance(
    points: Sequence[dict[str, Any]], roles: dict[str, str | None], transformed: set[str]
) -> dict[str, str | None]:
    """Per policy, the "perfectly accurate, low-variance" RM: marked with that role in the config, or else
    the first candidate with a transform whose on-policy accuracy is 1 (within `PERFECT_TOLERANCE`)."""
    def marked(p: dict[str, Any]) -> bool:
        return roles.get(p["reward_model"]) == "perfect_low_variance"

    def measured(p: dict[str, Any]) -> bool:
        acc = p["predictors"].get("onpolicy_accuracy")
        return p["reward_model"] in transformed and acc is not None and acc >= 1.0 - PERFECT_TOLERANCE

    found: dict[str, str | None] = {}
    for policy in dict.fromkeys(p["policy"] for p in points):
        cand = [p for p in points if p["policy"] == policy and not p["is_ground_truth"]]
        pick = next((p for p in cand if marked(p)), None) or next((p for p in cand if measured(p)), None)
        found[policy] = pick["reward_model"] if pick else None
    return found


def claim_low_variance_slower(
    points: Sequence[dict[str, Any]], perfect: dict[str, str | None], outcome: str
) -> dict[str, Any]:
    """Claim (a): per policy, some less accurate RM raises the gold reward faster than the perfect RM.

    Held when it holds for every policy that has a perfect RM; undetermined when none has one, or no less
    accurate RM was trained beside it.
    """
    per_policy: dict[str, Any] = {}
    for policy, name in perfect.items():
        pts = [p for p in points if p["policy"] == policy and not p["is_ground_truth"]]
        if name is None:
            per_policy[policy] = {"status": UNDETERMINED, "reason": "no perfectly accurate low-variance RM found"}
            continue
        ref = next(p for p in pts if p["reward_model"] == name)
        acc = ref["predictors"]["onpolicy_accuracy"]
        less = [p for p in pts if p["predictors"].get("onpolicy_accuracy") is not None
                and acc is not None and p["predictors"]["onpolicy_accuracy"] < acc - PERFECT_TOLERANCE]
        if not less:
            per_policy[policy] = {"status": UNDETERMINED, "perfect": name,
                                  "reason": "no less accurate RM was trained for this policy"}
            continue
        mine = ref["outcomes"][outcome]["mean"]
        n_faster = sum(p["outcomes"][outcome]["mean"] > mine for p in less)
        fastest = max(less, key=lambda p: p["outcomes"][outcome]["mean"])
        per_policy[policy] = {
            "status": HELD if n_faster else NOT_HELD,
            "perfect": name,
            "perfect_value": mine,
            "perfect_onpolicy_accuracy": acc,
            "perfect_reward_variance": ref["predictors"]["reward_variance"],
            "fastest_less_accurate": fastest["reward_model"],
            "fastest_value": fastest["outcomes"][outcome]["mean"],
            "fastest_onpolicy_accuracy": fastest["predictors"]["onpolicy_accuracy"],
            "fastest_reward_variance": fastest["predictors"]["reward_variance"],
            "n_less_accurate": len(less),
            "n_faster": n_faster,
        }
    status = _overall(per_policy)
    parts = []
    for policy, e in per_policy.items():
        if "perfect_value" in e:
            parts.append(
                f"{policy}: {e['perfect']} (on-policy acc {_f(e['perfect_onpolicy_accuracy'])}, variance "
                f"{_f(e['perfect_reward_variance'])}) {outcome} {_f(e['perfect_value'])}, and {e['n_faster']} of "
                f"{e['n_less_accurate']} less accurate RMs did better (best {e['fastest_less_accurate']}: "
                f"acc {_f(e['fastest_onpolicy_accuracy'])}, variance {_f(e['fastest_reward_variance'])}, "
                f"{_f(e['fastest_value'])})"
            )
        else:
            parts.append(f"{policy}: {e['reason']}")
    return {
        "id": "a",
        "statement": "The perfectly accurate, low-variance RM raises the ground-truth reward slower than at least "
                     "one less accurate RM.",
        "status": status,
        "outcome": outcome,
        "summary": "; ".join(parts),
        "evidence": per_policy,
    }


def claim_variance_beats_offpolicy(corr: dict[str, Any], outcome: str, policies: Sequence[str]) -> dict[str, Any]:
    """Claim (b): per policy, Spearman(variance, outcome) > Spearman(off-policy accuracy, outcome).

    Signed coefficients are compared: a useful predictor is one whose higher values go with a faster rise,
    so a strongly negative correlation does not make accuracy a better predictor. Held when it holds for
    every policy; the pooled scope is reported beside it.
    """
    evidence: dict[str, Any] = {}
    for scope in [*policies, "pooled"]:
        s = corr["scopes"].get(scope)
        if s is None:
            continue
        var = s["table"]["reward_variance"][outcome]["spearman"]["value"]
        off = s["table"]["offpolicy_accuracy"][outcome]["spearman"]["value"]
        if var is None or off is None:
            reason = s["note"] or "a coefficient is undefined (constant values or no off-policy accuracy)"
            evidence[scope] = {"status": UNDETERMINED, "variance_spearman": var, "offpolicy_spearman": off,
                               "reason": reason, "n": s["n"]}
        else:
            evidence[scope] = {"status": HELD if var > off else NOT_HELD, "variance_spearman": var,
                               "offpolicy_spearman": off, "n": s["n"]}
    status = _overall({k: v for k, v in evidence.items() if k != "pooled"})
    parts = [
        f"{scope} (n={e['n']}): variance {_f(e['variance_spearman'])} vs off-policy accuracy "
        f"{_f(e['offpolicy_spearman'])}" + (f" ({e['reason']})" if "reason" in e else "")
        for scope, e in evidence.items()
    ]
    return {
        "id": "b",
        "statement": "Across RMs, reward variance correlates with the ground-truth reward increase more strongly "
                     "(Spearman) than off-policy accuracy does.",
        "status": status,
        "outcome": outcome,
        "summary": "Spearman with " + outcome + ": " + "; ".join(parts),
        "evidence": evidence,
    }


def claim_best_differs(points: Sequence[dict[str, Any]], ranks: dict[str, Any]) -> dict[str, Any]:
    """Claim (c): the RM that raises the gold reward most is not the same for every policy.

    When it does not hold, the summary says why from the data: the common best RM's margin over the
    runner-up per policy (against the seed spread) and its variance rank under each policy.
    """
    best = {p: b for p, b in ranks["best"].items() if b is not None}
    outcome = ranks["outcome"]
    evidence: dict[str, Any] = {"best": best}
    if len(best) < 2:
        return {"id": "c", "statement": _C_STATEMENT, "status": UNDETERMINED, "outcome": outcome,
                "summary": "needs at least two policies with trained candidate RMs", "evidence": evidence}
    held = len(set(best.values())) > 1
    details = {}
    for policy, name in best.items():
        rows = [r for r in ranks["policies"][policy] if r["rank"] is not None]
        cand = [p for p in points if p["policy"] == policy and not p["is_ground_truth"]]
        by_var = sorted(cand, key=lambda p: -p["predictors"]["reward_variance"])
        d = {"best": name, "best_value": rows[0]["mean"], "best_std": rows[0]["std"],
             "variance_rank": 1 + [p["reward_model"] for p in by_var].index(name), "n": len(rows)}
        if len(rows) > 1:
            d.update(runner_up=rows[1]["reward_model"], runner_up_value=rows[1]["mean"],
                     margin=rows[0]["mean"] - rows[1]["mean"])
        details[policy] = d
    evidence["policies"] = details
    parts = []
    for policy, d in details.items():
        s = f"{policy}: best {d['best']} {_f(d['best_value'])}"
        if "runner_up" in d:
            s += f" (runner-up {d['runner_up']} {_f(d['runner_up_value'])}, margin {_f(d['margin'])}"
            s += f", seed std {_f(d['best_std'])})" if d["best_std"] is not None else ")"
        s += f", variance rank {d['variance_rank']} of {d['n']}"
        parts.append(s)
    summary = "; ".join(parts)
    if not held:
        name = next(iter(best.values()))
        top_var = all(d["variance_rank"] == 1 for d in details.values())
        noisy = [p for p, d in details.items()
                 if "margin" in d and d["best_std"] is not None and d["margin"] < d["best_std"]]
        why = f"{name} is the best teacher for every policy"
        if top_var:
            why += ", and it induces the highest reward variance under every policy: the policies do not differ " \
                   "in which RM gives them the most variance"
        if noisy:
            why += f", though under {', '.join(noisy)} its margin over the runner-up is within one seed std (the " \
                   "ranking there is not resolved by these seeds)"
        summary = why + "; " + summary
    return {"id": "c", "statement": _C_STATEMENT, "status": HELD if held else NOT_HELD, "outcome": outcome,
            "summary": summary, "evidence": evidence}


_C_STATEMENT = "The RM that raises the ground-truth reward most differs between policies."


def _overall(per_scope: dict[str, dict[str, Any]]) -> str:
    """Held when every scope holds; not held when any defined scope fails; undetermined otherwise."""
    statuses = [e["status"] for e in per_scope.values()]
    if NOT_HELD in statuses:
        return NOT_HELD
    if not statuses or UNDETERMINED in statuses:
        return UNDETERMINED
    return HELD


# ----------------------------------------------------------------------------------------------------------
# Everything at once


def analyze(
    runs: Sequence[dict[str, Any]],
    *,
    budgets: Sequence[float],
    primary_outcome: str,
    include_ground_truth: bool,
    n_resamples: int,
    seed: int,
    roles: dict[str, str | None],
    transformed: set[str],
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """Points, correlations, rankings and claims of a study from its runs.

    Arguments:
        runs: one dict per run with `policy`, `reward_model`, `seed`, `is_ground_truth`, `predictors`
            (`predictors_from_card`) and `outcomes` (`run_outcomes`).
        budgets: the outcome budgets; primary_outcome: the gold outcome rankings and claims use.
        include_ground_truth: whether the ground truth's run enters the correlations.
        n_resamples, seed: the correlation bootstrap.
        roles: RM name -> its `role` in the config; transformed: names of RMs with a reward transform.
        exclude: candidate RMs left out of the correlations (and so of claim (b)); still ranked, and still in
            claims (a) and (c).

    Returns:
        `{"points", "correlations", "rankings", "claims"}`.
    """
    names = outcome_names(budgets)
    points = aggregate_points(runs, names)
    proxy = proxy_counterpart(primary_outcome)
    corr = correlations(points, names, ci_outcomes=[primary_outcome, proxy], include_ground_truth=include_ground_truth,
                        n_resamples=n_resamples, seed=seed, exclude=exclude)
    ranks = rankings(points, primary_outcome)
    perfect = find_perfect_low_variance(points, roles, transformed)
    policies = list(dict.fromkeys(p["policy"] for p in points))
    claims = [
        claim_low_variance_slower(points, perfect, primary_outcome),
        claim_variance_beats_offpolicy(corr, primary_outcome, policies),
        claim_best_differs(points, ranks),
    ]
    return {"points": points, "correlations": corr, "rankings": ranks, "claims": claims}
