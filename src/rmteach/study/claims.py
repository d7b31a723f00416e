"""The study's claims, pure: each computed from the points and correlations, never assumed.

(a) the perfectly accurate, low-variance RM teaches slower than a less accurate one; (b) reward variance
correlates with the ground-truth gain more strongly than off-policy accuracy; (c) the best teacher differs
between policies; (d) the primary forecast ranks RMs better than the paper's predictors. Each claim is held,
not held or undetermined, with its evidence and a one-line summary. A claim holds only beyond the seed-to-seed
noise (`study.noise`): differences of outcomes by one-sided Welch t tests at `LEVEL`, with a Bonferroni
allowance where the compared RM was picked as the best of several ((a), (c)); comparisons of correlations by a
seed bootstrap ((b), (d)). Under null worlds (no true difference) each claim is held in at most 5% of studies
(tests/test_claims_null.py).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.metrics import correlation, correlation_rows
from .noise import LEVEL, resolved_difference, seed_bootstrap
from .points import Point

HELD, NOT_HELD, UNDETERMINED = "held", "not held", "undetermined"
PERFECT_TOLERANCE = 1e-9  # "on-policy accuracy 1" up to rounding
# The paper's predictors claim (d) compares the forecast with.
RIVALS = ("reward_variance", "onpolicy_accuracy", "offpolicy_accuracy", "variance_and_accuracy")
SURE = 0.95  # bootstrap probability a comparison of correlations needs to count as resolved
# With 2 seeds each RM's resampled mean takes 3 values, too light-tailed: at 0.95 claim (b) was held in 6.3% of
# null worlds (tests/test_claims_null.py), at 0.975 in 3.5%.
SURE_TWO_SEEDS = 0.975


def _f(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def find_perfect_low_variance(
    points: Sequence[Point], roles: dict[str, str | None], transformed: set[str]
) -> dict[str, str | None]:
    """Per policy, the "perfectly accurate, low-variance" RM: marked with that role in the config, or else
    the first candidate with a transform whose on-policy accuracy is 1 (within `PERFECT_TOLERANCE`)."""
    def marked(p: Point) -> bool:
        return roles.get(p["reward_model"]) == "perfect_low_variance"

    def measured(p: Point) -> bool:
        acc = p["predictors"].get("onpolicy_accuracy")
        return p["reward_model"] in transformed and acc is not None and acc >= 1.0 - PERFECT_TOLERANCE

    found: dict[str, str | None] = {}
    for policy in dict.fromkeys(p["policy"] for p in points):
        cand = [p for p in points if p["policy"] == policy and not p["is_ground_truth"]]
        pick = next((p for p in cand if marked(p)), None) or next((p for p in cand if measured(p)), None)
        found[policy] = pick["reward_model"] if pick else None
    return found


def claim_low_variance_slower(
    points: Sequence[Point], perfect: dict[str, str | None], outcome: str
) -> dict[str, Any]:
    """Claim (a): per policy, some less accurate RM raises the gold reward faster than the perfect RM.

    Per policy each of the m less accurate RMs is compared with the perfect RM by a one-sided Welch t test at
    LEVEL / m (Bonferroni: the claim may pick whichever RM is fastest): held when some RM is faster by that
    margin; not held when the perfect RM is faster than every one of them, each at LEVEL; else undetermined
    (within noise). Held overall when it holds for every policy that has a perfect RM.
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
        mine = ref["outcomes"][outcome]["values"]
        picked = {p["reward_model"]: resolved_difference(p["outcomes"][outcome]["values"], mine,
                                                         comparisons=len(less)) for p in less}
        each = {p["reward_model"]: resolved_difference(p["outcomes"][outcome]["values"], mine) for p in less}
        faster = [n for n, g in picked.items() if g["resolved"] and g["difference"] > 0]
        slower = all(g["resolved"] and g["difference"] < 0 for g in each.values())
        status = HELD if faster else NOT_HELD if slower else UNDETERMINED
        fastest = max(less, key=lambda p: p["outcomes"][outcome]["mean"])
        gap = picked[fastest["reward_model"]]
        per_policy[policy] = {
            "status": status,
            "perfect": name,
            "perfect_value": ref["outcomes"][outcome]["mean"],
            "perfect_onpolicy_accuracy": acc,
            "perfect_reward_variance": ref["predictors"]["reward_variance"],
            "fastest_less_accurate": fastest["reward_model"],
            "fastest_value": fastest["outcomes"][outcome]["mean"],
            "fastest_onpolicy_accuracy": fastest["predictors"]["onpolicy_accuracy"],
            "fastest_reward_variance": fastest["predictors"]["reward_variance"],
            "difference": gap["difference"],
            "se": gap["se"],
            "margin": gap["margin"],
            "resolved_faster": faster,
            "n_less_accurate": len(less),
            "n_faster": sum(p["outcomes"][outcome]["mean"] > ref["outcomes"][outcome]["mean"] for p in less),
        }
    return {
        "id": "a",
        "statement": "The perfectly accurate, low-variance RM raises the ground-truth reward slower than at least "
                     "one less accurate RM (beyond seed noise, allowing for picking the fastest of them).",
        "status": _overall(per_policy),
        "outcome": outcome,
        "summary": "; ".join(_summary_a(policy, e, outcome) for policy, e in per_policy.items()),
        "evidence": per_policy,
    }


def _summary_a(policy: str, e: dict[str, Any], outcome: str) -> str:
    if "perfect_value" not in e:
        return f"{policy}: {e['reason']}"
    return (f"{policy}: {e['perfect']} (on-policy acc {_f(e['perfect_onpolicy_accuracy'])}, variance "
            f"{_f(e['perfect_reward_variance'])}) {outcome} {_f(e['perfect_value'])}, and {e['n_faster']} of "
            f"{e['n_less_accurate']} less accurate RMs did better (best {e['fastest_less_accurate']}: acc "
            f"{_f(e['fastest_onpolicy_accuracy'])}, variance {_f(e['fastest_reward_variance'])}, "
            f"{_f(e['fastest_value'])}; difference {_f(e['difference'])}, {_noise(e['margin'], e['n_less_accurate'])}"
            f"; faster beyond noise: {', '.join(e['resolved_faster']) or 'none'})")


def _noise(margin: float | None, comparisons: int = 1) -> str:
    if margin is None:
        return "one seed: no standard error"
    allowance = f", best of {comparisons}" if comparisons > 1 else ""
    return f"noise margin {_f(margin)} (Welch t, one-sided {LEVEL:g}{allowance})"


def claim_variance_beats_offpolicy(
    scopes: Mapping[str, Mapping[str, Any]], scopes_all: Mapping[str, Mapping[str, Any]], outcome: str, *,
    rm_set: str, n_resamples: int, seed: int,
) -> dict[str, Any]:
    """Claim (b): per policy, Spearman(variance, outcome) > Spearman(off-policy accuracy, outcome), beyond noise.

    Arguments:
        scopes: the paper's set of RMs per scope (policies, and `pooled` when there are 2+), as `contest` takes
            them; scopes_all: the same over every RM, reported beside it.
        outcome: the outcome; rm_set: the paper's set in words, for the statement.
        n_resamples, seed: the seed bootstrap.

    Returns:
        The claim: signed coefficients are compared (a strongly negative correlation does not make accuracy a
        better predictor); per policy held when variance's Spearman is higher in at least 95% of the seed
        resamples (97.5% with 2 seeds), not held when off-policy accuracy's is that often, else undetermined.
        Held when it holds for every policy; the pooled scope and the all-RM result are reported beside it.
    """

    def judged(sc: Mapping[str, Any]) -> dict[str, Any]:
        e = contest(sc, "reward_variance", ("offpolicy_accuracy",), n_resamples, seed)
        rho = e.get("spearman", {})
        return {**e, "variance_spearman": rho.get("reward_variance"),
                "offpolicy_spearman": rho.get("offpolicy_accuracy")}

    evidence = {k: judged(sc) for k, sc in scopes.items()}
    every = {k: judged(sc) for k, sc in scopes_all.items()}
    status = _overall({k: v for k, v in evidence.items() if k != "pooled"})
    return {
        "id": "b",
        "statement": f"Across the paper's set of RMs ({rm_set}), reward variance correlates with the ground-truth "
                     "reward increase more strongly (Spearman) than off-policy accuracy does, beyond seed noise; "
                     "P = seed-bootstrap probability that variance's Spearman is higher. Over all RMs beside it.",
        "status": status,
        "outcome": outcome,
        "all_rms_status": _overall({k: v for k, v in every.items() if k != "pooled"}),
        "summary": f"Spearman with {outcome}: " + "; ".join(_contest_text(k, e, "reward_variance")
                                                            for k, e in evidence.items())
                   + "; all RMs: " + "; ".join(_contest_text(k, e, "reward_variance") for k, e in every.items()),
        "evidence": evidence,
        "evidence_all_rms": every,
    }


def contest(sc: Mapping[str, Any], champion: str, rivals: Sequence[str], n_resamples: int, seed: int) -> dict[str, Any]:
    """Whether `champion` ranks the RMs of one scope better (Spearman with the outcome) than every rival.

    Arguments:
        sc: `{"predictors": {name: (n,) array or None}, "values": (n, n_seeds) outcome per seed,
            "reward_models": names}`.
        champion, rivals: predictor names (rivals without values are left out).
        n_resamples, seed: the bootstrap over seeds (each RM's seeds resampled) that judges the comparison.

    Returns:
        `{"status", "spearman": {name: value}, "p_higher": {rival: P(champion's Spearman > rival's)}, "n",
        "reward_models"}`: held when P >= SURE (SURE_TWO_SEEDS with 2 seeds) for every rival, not held when
        some rival's Spearman is higher that often, else undetermined (with a `reason`, and without the
        undefined parts, when it cannot be judged).
    """
    x, values = sc["predictors"], np.asarray(sc["values"], dtype=np.float64)
    names = [champion, *(r for r in rivals if x.get(r) is not None)]
    out: dict[str, Any] = {"status": UNDETERMINED, "n": int(values.shape[0]),
                           "reward_models": list(sc["reward_models"])}
    if x.get(champion) is None or len(names) < 2 or values.shape[0] < 3:
        return {**out, "reason": f"needs {champion} and a rival's values and 3 or more RMs"}
    y = values.mean(axis=1)  # (n,)
    rho = {name: correlation(x[name], y, "spearman") for name in names}
    out["spearman"] = {k: None if math.isnan(v) else v for k, v in rho.items()}
    if values.shape[1] < 2 or n_resamples < 1:
        return {**out, "reason": "needs 2 or more seeds and a seed bootstrap"}
    boot = seed_bootstrap(values, n_resamples, seed)  # (B, n)
    rows = {name: correlation_rows(np.broadcast_to(x[name], boot.shape), boot, "spearman") for name in names}
    p_beats = {name: float(np.mean(rows[champion] > rows[name])) for name in names[1:]}
    p_loses = {name: float(np.mean(rows[champion] < rows[name])) for name in names[1:]}
    sure = SURE if values.shape[1] > 2 else SURE_TWO_SEEDS
    if min(p_beats.values()) >= sure:
        out["status"] = HELD
    elif max(p_loses.values()) >= sure:
        out["status"] = NOT_HELD
    return {**out, "p_higher": p_beats}


def _contest_text(scope: str, e: dict[str, Any], champion: str) -> str:
    if "spearman" not in e:
        return f"{scope}: {e['reason']}"
    p = e.get("p_higher", {})
    rivals = ", ".join(f"{k} {_f(v)}" + (f" (P={p[k]:.2f})" if k in p else "") for k, v in e["spearman"].items()
                       if k != champion)
    tail = f" ({e['reason']})" if "reason" in e else ""
    return f"{scope} (n={e['n']}): {champion} {_f(e['spearman'][champion])} vs {rivals}{tail}"


def claim_best_differs(points: Sequence[Point], ranks: dict[str, Any]) -> dict[str, Any]:
    """Claim (c): the RM that raises the gold reward most is not the same for every policy.

    Held when two policies cross, beyond noise: policy A's best RM beats policy B's best under A, and B's best
    beats A's under B, each by a one-sided Welch t test at LEVEL / ((n - 1) * pairs), n the policy's candidate
    RMs and pairs the number of policy pairs (Bonferroni: A's best is the fastest of n - 1 rivals of B's best,
    and any pair may cross). Not held when every policy has the same best RM, ahead of its runner-up at LEVEL
    everywhere. Otherwise undetermined, with the margins and their noise.
    """
    best = {p: b for p, b in ranks["best"].items() if b is not None}
    outcome = ranks["outcome"]
    evidence: dict[str, Any] = {"best": best}
    if len(best) < 2:
        return {"id": "c", "statement": _C_STATEMENT, "status": UNDETERMINED, "outcome": outcome,
                "summary": "needs at least two policies with trained candidate RMs", "evidence": evidence}

    def seeds(policy: str, rm: str) -> list[float]:
        return next(p for p in points if p["policy"] == policy and p["reward_model"] == rm)["outcomes"][outcome][
            "values"]

    details, parts = {}, []
    pairs = len(best) * (len(best) - 1) // 2
    for policy, name in best.items():
        rows = [r for r in ranks["policies"][policy] if r["rank"] is not None]
        cand = [p for p in points if p["policy"] == policy and not p["is_ground_truth"]]
        by_var = sorted(cand, key=lambda p: -p["predictors"]["reward_variance"])
        d = {"best": name, "best_value": rows[0]["mean"], "best_std": rows[0]["std"],
             "variance_rank": 1 + [p["reward_model"] for p in by_var].index(name), "n": len(rows)}
        if len(rows) > 1:
            gap = resolved_difference(seeds(policy, name), seeds(policy, rows[1]["reward_model"]))
            d.update(runner_up=rows[1]["reward_model"], runner_up_value=rows[1]["mean"], margin=gap["difference"],
                     margin_noise=gap["margin"], margin_resolved=gap["resolved"])
        # How this policy's best does against every other policy's best, under this policy.
        d["against_other_bests"] = {
            other: resolved_difference(seeds(policy, name), seeds(policy, b), comparisons=(len(rows) - 1) * pairs)
            for other, b in best.items() if other != policy and b != name
        }
        details[policy] = d
        s_ = f"{policy}: best {name} {_f(d['best_value'])}"
        if "runner_up" in d:
            s_ += (f" (runner-up {d['runner_up']} {_f(d['runner_up_value'])}, margin {_f(d['margin'])}, "
                   f"{_noise(d['margin_noise'])})")
        s_ += f", variance rank {d['variance_rank']} of {d['n']}"
        parts.append(s_)
    evidence["policies"] = details
    crossings = [(a, b) for a in best for b in best if a < b and best[a] != best[b]
                 and details[a]["against_other_bests"][b]["resolved"]
                 and details[b]["against_other_bests"][a]["resolved"]]
    evidence["resolved_crossings"] = [list(c) for c in crossings]
    summary = "; ".join(parts)
    if crossings:
        status = HELD
    elif len(set(best.values())) == 1 and all(d.get("margin_resolved") for d in details.values()):
        status = NOT_HELD
        why = f"{next(iter(best.values()))} is the best teacher for every policy"
        if all(d["variance_rank"] == 1 for d in details.values()):
            why += (", and it induces the highest reward variance under every policy: the policies do not differ "
                    "in which RM gives them the most variance")
        summary = why + " (beyond noise); " + summary
    else:
        status = UNDETERMINED
        summary = "the best teachers' order is not resolved beyond seed noise (run more seeds); " + summary
    return {"id": "c", "statement": _C_STATEMENT, "status": status, "outcome": outcome, "summary": summary,
            "evidence": evidence}


_C_STATEMENT = "The RM that raises the ground-truth reward most differs between policies."

def claim_forecast_ranks_best(
    scopes: Mapping[str, Mapping[str, Any]], forecast: str, outcome: str, *, n_resamples: int, seed: int
) -> dict[str, Any]:
    """Claim (d): per policy, the forecast's Spearman with the outcome beats each of the paper's predictors'.

    Arguments:
        scopes: `{policy: scope as `contest` takes it}` over all RMs of the policy (the ground truth's run and
            the high-variance inaccurate RM included).
        forecast: the primary forecast's predictor name; outcome: the outcome it is judged on.
        n_resamples, seed: the bootstrap over seeds (each RM's seeds resampled) that judges the comparison.

    Returns:
        The claim: per policy held when the forecast's Spearman exceeds every rival's in at least 95% of the
        seed resamples, not held when some rival's exceeds the forecast's that often, else undetermined.
    """
    evidence = {policy: contest(sc, forecast, RIVALS, n_resamples, seed) for policy, sc in scopes.items()}
    return {
        "id": "d",
        "statement": f"Across all RMs (the ground truth's own run and the high-variance inaccurate RM included), "
                     f"the forecast ({forecast}) ranks RMs by ground-truth gain better (Spearman) than reward "
                     "variance, either accuracy, or their average, beyond seed noise; P = seed-bootstrap "
                     "probability that the forecast's Spearman is higher.",
        "status": _overall(evidence),
        "outcome": outcome,
        "summary": f"Spearman with {outcome}: " + "; ".join(_contest_text(k, e, forecast) for k, e in evidence.items()),
        "evidence": evidence,
    }


def _overall(per_scope: dict[str, dict[str, Any]]) -> str:
    """Held when every scope holds; not held when any defined scope fails; undetermined otherwise."""
    statuses = [e["status"] for e in per_scope.values()]
    if NOT_HELD in statuses:
        return NOT_HELD
    if not statuses or UNDETERMINED in statuses:
        return UNDETERMINED
    return HELD
