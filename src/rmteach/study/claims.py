"""The study's claims, pure: each computed from the points and correlations, never assumed.

(a) the perfectly accurate, low-variance RM teaches slower than a less accurate one; (b) reward variance
correlates with the ground-truth gain more strongly than off-policy accuracy; (c) the best teacher differs
between policies; (d) the primary forecast ranks RMs better than the paper's predictors. Each claim is held,
not held or undetermined, with its evidence and a one-line summary; a comparison of outcomes holds only when
it exceeds the seed-to-seed noise (`study.noise`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.metrics import correlation, correlation_rows
from .noise import Z_MARGIN, resolved_difference, seed_bootstrap
from .points import Point

HELD, NOT_HELD, UNDETERMINED = "held", "not held", "undetermined"
PERFECT_TOLERANCE = 1e-9  # "on-policy accuracy 1" up to rounding


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

    Per policy it compares the perfect RM with the fastest less accurate one: held when that one is faster by
    more than two standard errors over seeds, not held when the perfect RM is faster by that much, else
    undetermined (within noise). Held overall when it holds for every policy that has a perfect RM.
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
        fastest = max(less, key=lambda p: p["outcomes"][outcome]["mean"])
        gap = resolved_difference(fastest["outcomes"][outcome]["values"], ref["outcomes"][outcome]["values"])
        status = UNDETERMINED if not gap["resolved"] else HELD if gap["difference"] > 0 else NOT_HELD
        per_policy[policy] = {
            "status": status,
            "perfect": name,
            "perfect_value": mine,
            "perfect_onpolicy_accuracy": acc,
            "perfect_reward_variance": ref["predictors"]["reward_variance"],
            "fastest_less_accurate": fastest["reward_model"],
            "fastest_value": fastest["outcomes"][outcome]["mean"],
            "fastest_onpolicy_accuracy": fastest["predictors"]["onpolicy_accuracy"],
            "fastest_reward_variance": fastest["predictors"]["reward_variance"],
            "difference": gap["difference"],
            "se": gap["se"],
            "n_less_accurate": len(less),
            "n_faster": sum(p["outcomes"][outcome]["mean"] > mine for p in less),
        }
    return {
        "id": "a",
        "statement": "The perfectly accurate, low-variance RM raises the ground-truth reward slower than at least "
                     "one less accurate RM.",
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
            f"{_f(e['fastest_value'])}; difference {_f(e['difference'])}, {_noise(e['se'])})")


def _noise(se: float | None) -> str:
    return "one seed: no standard error" if se is None else f"2 SE {_f(Z_MARGIN * se)}"


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


def claim_best_differs(points: Sequence[Point], ranks: dict[str, Any]) -> dict[str, Any]:
    """Claim (c): the RM that raises the gold reward most is not the same for every policy.

    Held when two policies cross, beyond noise: policy A's best RM beats policy B's best by more than two
    standard errors under A, and B's best beats A's by that much under B. Not held when every policy has the
    same best RM, ahead of its runner-up by more than two standard errors everywhere. Otherwise undetermined,
    with the margins and their noise.
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
    for policy, name in best.items():
        rows = [r for r in ranks["policies"][policy] if r["rank"] is not None]
        cand = [p for p in points if p["policy"] == policy and not p["is_ground_truth"]]
        by_var = sorted(cand, key=lambda p: -p["predictors"]["reward_variance"])
        d = {"best": name, "best_value": rows[0]["mean"], "best_std": rows[0]["std"],
             "variance_rank": 1 + [p["reward_model"] for p in by_var].index(name), "n": len(rows)}
        if len(rows) > 1:
            gap = resolved_difference(seeds(policy, name), seeds(policy, rows[1]["reward_model"]))
            d.update(runner_up=rows[1]["reward_model"], runner_up_value=rows[1]["mean"], margin=gap["difference"],
                     margin_se=gap["se"], margin_resolved=gap["resolved"])
        # How this policy's best does against every other policy's best, under this policy.
        d["against_other_bests"] = {
            other: resolved_difference(seeds(policy, name), seeds(policy, b))
            for other, b in best.items() if other != policy and b != name
        }
        details[policy] = d
        s_ = f"{policy}: best {name} {_f(d['best_value'])}"
        if "runner_up" in d:
            s_ += (f" (runner-up {d['runner_up']} {_f(d['runner_up_value'])}, margin {_f(d['margin'])}, "
                   f"{_noise(d['margin_se'])})")
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
        summary = ("the best teachers' order is not resolved beyond two standard errors over seeds (run more seeds); "
                   + summary)
    return {"id": "c", "statement": _C_STATEMENT, "status": status, "outcome": outcome, "summary": summary,
            "evidence": evidence}


_C_STATEMENT = "The RM that raises the ground-truth reward most differs between policies."

# The paper's predictors claim (d) compares the forecast with.
RIVALS = ("reward_variance", "onpolicy_accuracy", "offpolicy_accuracy", "variance_and_accuracy")
SURE = 0.95  # bootstrap probability a comparison of correlations needs to count as resolved


def claim_forecast_ranks_best(
    scopes: Mapping[str, Mapping[str, Any]], forecast: str, outcome: str, *, n_resamples: int, seed: int
) -> dict[str, Any]:
    """Claim (d): per policy, the forecast's Spearman with the outcome beats each of the paper's predictors'.

    Arguments:
        scopes: `{policy: {"predictors": {name: (n,) array or None}, "values": (n, n_seeds) outcome per seed,
            "reward_models": names}}` over all RMs of the policy (the high-variance inaccurate RM included).
        forecast: the primary forecast's predictor name; outcome: the outcome it is judged on.
        n_resamples, seed: the bootstrap over seeds (each RM's seeds resampled) that judges the comparison.

    Returns:
        The claim: per policy held when the forecast's Spearman exceeds every rival's in at least 95% of the
        seed resamples, not held when some rival's exceeds the forecast's that often, else undetermined.
    """
    evidence: dict[str, Any] = {}
    for policy, sc in scopes.items():
        x, values = sc["predictors"], np.asarray(sc["values"], dtype=np.float64)
        if x.get(forecast) is None or values.shape[0] < 3 or n_resamples < 1:
            evidence[policy] = {"status": UNDETERMINED,
                                "reason": f"needs {forecast} values, 3 or more RMs and a seed bootstrap"}
            continue
        y = values.mean(axis=1)  # (n,)
        boot = seed_bootstrap(values, n_resamples, seed)  # (B, n)
        rho = {name: correlation(x[name], y, "spearman") for name in (forecast, *RIVALS) if x.get(name) is not None}
        rows = {name: correlation_rows(np.broadcast_to(x[name], boot.shape), boot, "spearman") for name in rho}
        p_beats = {name: float(np.mean(rows[forecast] > rows[name])) for name in rho if name != forecast}
        p_loses = {name: float(np.mean(rows[forecast] < rows[name])) for name in p_beats}
        if p_beats and min(p_beats.values()) >= SURE:
            status = HELD
        elif any(p >= SURE for p in p_loses.values()):
            status = NOT_HELD
        else:
            status = UNDETERMINED
        evidence[policy] = {"status": status, "spearman": {k: None if math.isnan(v) else v for k, v in rho.items()},
                            "p_forecast_higher": p_beats, "n": int(values.shape[0]),
                            "reward_models": list(sc["reward_models"])}
    parts = []
    for policy, e in evidence.items():
        if "spearman" not in e:
            parts.append(f"{policy}: {e['reason']}")
            continue
        rivals = ", ".join(f"{k} {_f(v)} (P={e['p_forecast_higher'][k]:.2f})" for k, v in e["spearman"].items()
                           if k != forecast)
        parts.append(f"{policy} (n={e['n']}): {forecast} {_f(e['spearman'][forecast])} vs {rivals}")
    return {
        "id": "d",
        "statement": f"Across all RMs (the high-variance inaccurate one included), the forecast ({forecast}) ranks "
                     "RMs by ground-truth gain better (Spearman) than reward variance, either accuracy, or their "
                     "average; P = seed-bootstrap probability that the forecast's Spearman is higher.",
        "status": _overall(evidence),
        "outcome": outcome,
        "summary": f"Spearman with {outcome}: " + "; ".join(parts),
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
