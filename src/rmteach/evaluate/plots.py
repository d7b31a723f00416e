"""evaluate's figure: where each RM's teaching signal sits over the prompts (`concentration.png`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def concentration_curve(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of the total held by the top fraction of prompts: (x, y), both from 0 to 1.

    x = k / n for k = 0..n, y = the sum of the k largest values over the sum of all (0 everywhere when the sum
    is 0: no signal to place).

    >>> [a.tolist() for a in concentration_curve(np.array([1.0, 3.0]))]
    [[0.0, 0.5, 1.0], [0.0, 0.75, 1.0]]
    """
    v = np.sort(np.clip(np.asarray(values, dtype=np.float64).ravel(), 0.0, None))[::-1]  # (n,), largest first
    total = float(v.sum())
    y = np.concatenate([[0.0], np.cumsum(v) / total]) if total > 0 else np.zeros(v.size + 1)
    return np.linspace(0.0, 1.0, v.size + 1), y


def concentration_figure(prompts: Any, policy: str) -> Any:
    """One curve per RM (prompts.parquet's rows): its reward variance's share held by its top prompts."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", label="spread evenly")
    for name, rows in prompts.groupby("reward_model", sort=False):
        x, y = concentration_curve(rows["variance"].to_numpy())
        gt = bool(rows["is_ground_truth"].iloc[0])
        ax.plot(x, y, label=f"{name} (ground truth)" if gt else str(name), linestyle="--" if gt else "-")
    ax.set_xlabel("fraction of prompts (highest variance first)")
    ax.set_ylabel("share of the RM's reward variance")
    ax.set_title(f"where each RM's teaching signal sits, policy {policy}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
