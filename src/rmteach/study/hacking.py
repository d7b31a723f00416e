"""The hacking-risk flag checked against training, pure: did the RMs `evaluate` flagged end below their start?

`evaluate` flags an RM whose best-of-K gold lift is a small share of the ground truth's own
(`evaluate.forecast.hacking_risk`). A study has the answer: a run whose held-out ground truth ends below its
step-0 value was hacked. Per (policy, RM): the flag, the mean change of the held-out ground truth over the
seeds, and whether it is below zero; over all pairs, the flag's recall and precision.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


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
        rows.append({"policy": policy, "reward_model": rm, "flag": None if risk is None else bool(risk["flag"]),
                     "best_of_k_share": None if risk is None else risk.get("best_of_k_share"),
                     "gold_change": float(np.mean(changes)), "changes": changes,
                     "hacked": bool(np.mean(changes) < 0)})
    scored = [r for r in rows if r["flag"] is not None]
    tp = sum(r["flag"] and r["hacked"] for r in scored)
    n_hacked = sum(r["hacked"] for r in scored)
    n_flagged = sum(r["flag"] for r in scored)
    return {"rows": rows, "n_hacked": n_hacked, "n_flagged": n_flagged,
            "recall": tp / n_hacked if n_hacked else None, "precision": tp / n_flagged if n_flagged else None}


def hacking_sentence(table: dict[str, Any]) -> str:
    """One line for the summary: how the flag fared against the runs.

    >>> hacking_sentence({"rows": [], "n_hacked": 2, "n_flagged": 3, "recall": 1.0, "precision": 2 / 3})
    'Hacking risk: 3 (policy, RM) pairs flagged, 2 ended below their start on the held-out ground truth; recall 1.00, precision 0.67.'
    """
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    return (f"Hacking risk: {table['n_flagged']} (policy, RM) pairs flagged, {table['n_hacked']} ended below their "
            f"start on the held-out ground truth; recall {fmt(table['recall'])}, precision {fmt(table['precision'])}.")
