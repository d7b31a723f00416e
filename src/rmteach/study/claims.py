"""The study's claims, pure: each computed from the points and correlations, never assumed.

(a) the perfectly accurate, low-variance RM teaches slower than a less accurate one; (b) reward variance
correlates with the ground-truth gain more strongly than off-policy accuracy; (c) the best teacher differs
between policies. Each claim is held, not held or undetermined, with its evidence and a one-line summary.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

HELD, NOT_HELD, UNDETERMINED = "held", "not held", "undetermined"
PERFECT_TOLERANCE = 1e-9  # "on-policy accuracy 1" up to rounding


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
