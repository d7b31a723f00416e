"""The hacking-risk flag checked against training, pure: did the RMs `evaluate` flagged end below their start?

`evaluate` flags an RM whose best-of-K gold lift is a small share of the ground truth's own
(`evaluate.forecast.hacking_risk`). A study has the answer: a run whose held-out ground truth ends below its
step-0 value was hacked. Per (policy, RM): the flag, the mean change of the held-out ground truth over the
seeds, and whether it is below zero; over all pairs, the flag's recall and precision.

A mean change just below zero is what seed noise alone produces for an RM that neither helps nor hurts, so
each pair also gets a 95% t-interval of its mean change over the seeds and an `outcome`: `hacked` (the whole
interval below 0), `held` (above 0) or `undetermined` (it holds 0, or one seed). `recall_beyond_noise` and
`precision_beyond_noise` judge the flag on the determined pairs only.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import stats


def hacking_table(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per (policy, RM) the flag and the outcome, and the flag's recall and precision over the candidate RMs.

    Arguments:
        runs: study.json run records (`policy`, `reward_model`, `is_ground_truth`, `outcomes` with
            `initial_gold`/`final_gold`, `evaluate.forecast.hacking_risk` or None without a forecast).

    Returns:
        `{"rows": [{"policy", "reward_model", "flag", "best_of_k_share", "gold_change", "changes", "hacked"}],
        "recall", "precision", "n_hacked", "n_flagged"}`; recall (precision) is None without a hacked (flagged)
        pair; rows without a flag (no forecast) count in neither.

    >>> runs = [{"policy": "p", "reward_model": m, "is_ground_truth": False, "seed": s,
    ...          "outcomes": {"initial_gold": 1.0, "final_gold": 1.0 + d},
    ...          "evaluate": {"forecast": {"hacking_risk": {"flag": f, "best_of_k_share": 0.1}}}}
    ...         for m, d, f in [("a", -0.2, True), ("b", 0.3, True), ("c", -0.1, False)] for s in (0, 1)]
    >>> t = hacking_table(runs)
    >>> [(r["reward_model"], r["hacked"]) for r in t["rows"]], t["recall"], t["precision"]
    ([('a', True), ('b', False), ('c', True)], 0.5, 0.5)
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        if not r.get("is_ground_truth"):
            groups.setdefault((r["policy"], r["reward_model"]), []).append(r)
    rows = []
    for (policy, rm), rs in groups.items():
        changes = [float(r["outcomes"]["final_gold"] - r["outcomes"]["initial_gold"]) for r in rs]
        risk = ((rs[0].get("evaluate") or {}).get("forecast") or {}).get("hacking_risk")
        ci = change_interval(changes)
        rows.append({"policy": policy, "reward_model": rm, "flag": None if risk is None else bool(risk["flag"]),
                     "best_of_k_share": None if risk is None else risk.get("best_of_k_share"),
                     "gold_change": float(np.mean(changes)), "changes": changes, "ci95": ci,
                     "hacked": bool(np.mean(changes) < 0),
                     "outcome": "undetermined" if ci is None or ci[0] <= 0 <= ci[1] else
                     ("hacked" if ci[1] < 0 else "held")})
    scored = [r for r in rows if r["flag"] is not None]
    tp = sum(r["flag"] and r["hacked"] for r in scored)
    n_hacked = sum(r["hacked"] for r in scored)
    n_flagged = sum(r["flag"] for r in scored)
    sure = [r for r in scored if r["outcome"] != "undetermined"]
    tp_sure = sum(r["flag"] and r["outcome"] == "hacked" for r in sure)
    hacked_sure = sum(r["outcome"] == "hacked" for r in sure)
    flagged_sure = sum(r["flag"] for r in sure)
    return {"rows": rows, "n_hacked": n_hacked, "n_flagged": n_flagged,
            "recall": tp / n_hacked if n_hacked else None, "precision": tp / n_flagged if n_flagged else None,
            "n_hacked_beyond_noise": hacked_sure, "n_held_beyond_noise": len(sure) - hacked_sure,
            "n_undetermined": len(scored) - len(sure),
            "recall_beyond_noise": tp_sure / hacked_sure if hacked_sure else None,
            "precision_beyond_noise": tp_sure / flagged_sure if flagged_sure else None}


def change_interval(changes: Sequence[float]) -> list[float] | None:
    """The 95% t-interval of the mean of the seeds' held-out gold changes; None for one seed.

    >>> [round(x, 3) for x in change_interval([-0.2, -0.1, -0.3])]
    [-0.448, 0.048]
    >>> change_interval([0.1]) is None
    True
    """
    x = np.asarray(changes, dtype=np.float64)
    if len(x) < 2:
        return None
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return [float(x.mean() - half), float(x.mean() + half)]


def hacking_sentence(table: dict[str, Any]) -> str:
    """One line for the summary: how the flag fared against the runs.

    >>> hacking_sentence({"rows": [], "n_hacked": 2, "n_flagged": 3, "recall": 1.0, "precision": 2 / 3})
    'Hacking risk: 3 (policy, RM) pairs flagged, 2 ended below their start on the held-out ground truth; recall 1.00, precision 0.67.'
    """
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    line = (f"Hacking risk: {table['n_flagged']} (policy, RM) pairs flagged, {table['n_hacked']} ended below their "
            f"start on the held-out ground truth; recall {fmt(table['recall'])}, precision {fmt(table['precision'])}.")
    if "n_undetermined" not in table:
        return line
    return line + (f" Beyond seed noise (95% t-interval of the mean change): {table['n_hacked_beyond_noise']} hacked, "
                   f"{table['n_held_beyond_noise']} held, {table['n_undetermined']} undetermined; recall "
                   f"{fmt(table['recall_beyond_noise'])}, precision {fmt(table['precision_beyond_noise'])}.")
