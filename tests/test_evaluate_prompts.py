"""Per-prompt diagnostics of `rmteach evaluate` (prompts.parquet, the concentration summary), recomputed from
rewards.parquet with pandas and plain loops, and by hand on hand-built tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli, write_eval_config

from rmteach.core.metrics import concentration
from rmteach.evaluate.report import RewardTable, rm_metrics

COLUMNS = ["prompt_id", "reward_model", "is_ground_truth", "variance", "zero_std", "reward_mean", "reward_std",
           "onpolicy_accuracy", "forecast_term"]
FLAT = {"name": "flat", "callable": "rm_fns:constant"}


def _evaluate(tiny, root, **changes):
    """One evaluate run through the CLI with its own sample cache; returns (report, rewards, prompts, out)."""
    from rmteach.cli import main

    cfg = write_eval_config(root / "eval.yaml", tiny, preferences=None, cache_dir=str(root / "cache"), **changes)
    assert main(["evaluate", "--config", str(cfg), "--out", str(root / "out")]) == 0
    out = root / "out"
    return (json.loads((out / "report.json").read_text()), pd.read_parquet(out / "rewards.parquet"),
            pd.read_parquet(out / "prompts.parquet"), out)


@pytest.fixture(scope="module")
def rloo(tiny, tmp_path_factory):
    """The default candidates, a constant RM and a ground truth; RLOO (z normalized over all samples)."""
    root = tmp_path_factory.mktemp("eval_prompts")
    base = [{"name": "rm_llama", "path": str(tiny["rm_llama"]), "batch_size": 5},
            {"name": "gold_cubed", "callable": "rm_fns:gold_cubed"}, FLAT]
    return _evaluate(tiny, root, reward_models=base)


@pytest.fixture(scope="module")
def grpo_cut(tiny, tmp_path_factory):
    """GRPO group scaling, the ground truth scored on the first 5 of 8 prompts only."""
    root = tmp_path_factory.mktemp("eval_prompts_grpo")
    return _evaluate(tiny, root, reward_models=[{"name": "gold_cubed", "callable": "rm_fns:gold_cubed"}, FLAT],
                     forecast={"algorithm": "grpo", "max_prompts": 5})


# ----------------------------------------------------------------------------------------------------------
# Independent recomputation (pandas and loops, not rmteach)


def _rows(frame: pd.DataFrame, name: str) -> list[list[float]]:
    """Raw rewards of one RM, one list of K per prompt, prompts in file order."""
    mine = frame[frame.reward_model == name]
    return [list(g.sort_values("sample").reward) for _, g in mine.groupby("prompt_id", sort=False)]


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _agreement(r: list[float], g: list[float]) -> float:
    pairs = [(i, j) for i in range(len(r)) for j in range(i + 1, len(r))]
    return sum(_sign(r[i] - r[j]) == _sign(g[i] - g[j]) for i, j in pairs) / len(pairs)


def _cov(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / (len(a) - 1)


def _normalized(rows: list[list[float]]) -> list[list[float]]:
    flat = [x for row in rows for x in row]
    mean = sum(flat) / len(flat)
    sd = math.sqrt(sum((x - mean) ** 2 for x in flat) / (len(flat) - 1))
    return [[0.0 if sd == 0 else (x - mean) / sd for x in row] for row in rows]


def _standardized(row: list[float]) -> list[float]:
    mean = sum(row) / len(row)
    sd = math.sqrt(_cov(row, row))
    return [0.0 if sd == 0 else (x - mean) / sd for x in row]


def _expected(frame: pd.DataFrame, name: str, gold: str | None, group: bool) -> pd.DataFrame:
    """prompts.parquet's rows for one RM, by a second formula: pandas for variance, loops for the rest."""
    mine = frame[frame.reward_model == name]
    z = mine.assign(z=(mine.reward - mine.reward.mean()) / mine.reward.std(ddof=1) if mine.reward.std() > 0 else 0.0)
    by = z.groupby("prompt_id", sort=False)
    rows = _rows(frame, name)
    g_rows = _rows(frame, gold) if gold else []
    signal = [_standardized(r) for r in rows] if group else _normalized(rows)
    rms = math.sqrt(sum(_cov(s, s) for s in signal) / len(signal))  # the default trainer's step is scale-free
    signal = [[x / rms for x in s] for s in signal] if rms > 0 else signal
    gn = _normalized(g_rows) if gold else []
    acc = [_agreement(rows[i], g_rows[i]) if i < len(g_rows) else math.nan for i in range(len(rows))]
    term = [_cov(signal[i], gn[i]) if i < len(gn) else math.nan for i in range(len(rows))]
    return pd.DataFrame({"prompt_id": list(by.groups), "variance": by.z.var(ddof=1).to_numpy(),
                         "zero_std": by.reward.nunique().to_numpy() == 1, "reward_mean": by.reward.mean().to_numpy(),
                         "onpolicy_accuracy": acc, "forecast_term": term})


def _check(report, rewards, prompts, *, group: bool) -> None:
    gold = report["ground_truth"]
    assert list(prompts.columns) == COLUMNS
    cards = {rm["name"]: rm for rm in report["reward_models"]}
    assert list(dict.fromkeys(prompts.reward_model)) == list(cards)  # the ground truth last
    for name, card in cards.items():
        got = prompts[prompts.reward_model == name].reset_index(drop=True)
        want = _expected(rewards, name, gold, group)
        assert list(got.prompt_id) == list(want.prompt_id)
        assert (got.is_ground_truth == (name == gold)).all()
        assert list(got.zero_std) == list(want.zero_std)
        for col in ("variance", "reward_mean", "onpolicy_accuracy", "forecast_term"):
            np.testing.assert_allclose(got[col], want[col], rtol=1e-9, atol=1e-12, err_msg=f"{name} {col}")
        # The report's figures are means over the file's rows.
        assert got.variance.mean() == pytest.approx(card["reward_variance"]["mean"], rel=1e-12, abs=1e-15)
        assert got.zero_std.mean() == pytest.approx(card["reward_variance"]["frac_zero_std"])
        if gold:
            scored = got.dropna(subset=["forecast_term"])
            assert len(scored) == report["forecast"]["num_prompts"]
            assert scored.onpolicy_accuracy.mean() == pytest.approx(card["onpolicy_accuracy"], rel=1e-12)
            assert scored.forecast_term.mean() == pytest.approx(card["forecast"]["gold_rate"]["value"], rel=1e-9,
                                                                abs=1e-12)


def _by_hand(variances: list[float]) -> dict:
    """Concentration with a sorted loop: the top ceil(q n) prompts' share, the prompts needed for half."""
    v, n, total = sorted(variances, reverse=True), len(variances), sum(variances)
    if total == 0:
        return {"top_10pct_share": None, "top_25pct_share": None, "prompts_for_half": None, "num_prompts": n}
    half, acc = 0, 0.0
    while acc < total / 2:
        acc += v[half]
        half += 1
    return {"top_10pct_share": sum(v[: max(1, math.ceil(n / 10))]) / total,
            "top_25pct_share": sum(v[: max(1, math.ceil(n / 4))]) / total, "prompts_for_half": half,
            "num_prompts": n}


# ----------------------------------------------------------------------------------------------------------
# End to end


def test_prompts_parquet_matches_recomputation_rloo(rloo):
    report, rewards, prompts, out = rloo
    _check(report, rewards, prompts, group=False)
    flat = prompts[prompts.reward_model == "flat"]
    assert flat.zero_std.all() and (flat.variance == 0.0).all()
    truth = prompts[prompts.is_ground_truth]
    assert (truth.onpolicy_accuracy == 1.0).all()
    assert (out / "concentration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the figure, beside the table


def test_prompts_parquet_with_grpo_and_ground_truth_on_the_first_prompts(grpo_cut):
    report, rewards, prompts, _ = grpo_cut
    _check(report, rewards, prompts, group=True)
    cubed = prompts[prompts.reward_model == "gold_cubed"]
    assert cubed.forecast_term.isna().tolist() == [False] * 5 + [True] * 3
    assert len(prompts[prompts.is_ground_truth]) == 5  # only the prompts the ground truth scored


def test_concentration_in_report_matches_the_parquet(rloo):
    report, _, prompts, _ = rloo
    for rm in report["reward_models"]:
        want = _by_hand(list(prompts[prompts.reward_model == rm["name"]].variance))
        got = rm["concentration"]
        assert got["prompts_for_half"] == want["prompts_for_half"] and got["num_prompts"] == want["num_prompts"] == 8
        for key in ("top_10pct_share", "top_25pct_share"):
            assert got[key] == (None if want[key] is None else pytest.approx(want[key])), (rm["name"], key)
    flat = next(rm for rm in report["reward_models"] if rm["name"] == "flat")
    assert flat["concentration"]["prompts_for_half"] is None


def test_summary_and_stdout_show_where_the_signal_sits(rloo, tiny, tmp_path, capsys):
    report, _, _, out = rloo
    summary = (out / "summary.md").read_text()
    cards = {rm["name"]: rm["concentration"] for rm in report["reward_models"]}
    c = cards["gold_cubed"]
    row = f"| gold_cubed | {100 * c['top_10pct_share']:.0f}% | {100 * c['top_25pct_share']:.0f}% | " \
          f"{c['prompts_for_half']} of 8 |"
    assert row in summary and "| flat | - | - | - |" in summary
    # Both tables list the RMs in the ranking's order, the ground truth last.
    main, where = summary.split("Where the signal sits")
    names = [[ln.split("|")[1].strip() for ln in part.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
             for part in (main, where)]
    ranked = [o["name"] for o in report["ranking"]["order"]]
    assert names[0] == names[1] == ranked + ["gold (ground truth)"] and len(ranked) == 3
    # A rerun (cached samples and scores) prints the same table and writes byte-identical files.
    cfg = out.parent / "eval.yaml"
    code, stdout, _ = run_cli(["evaluate", "-c", cfg, "-o", tmp_path / "again"], capsys)
    assert code == 0 and "prompts holding half" in stdout and f"{c['prompts_for_half']} of 8" in stdout
    for name in ("prompts.parquet", "report.json", "summary.md"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_without_ground_truth_accuracy_and_forecast_are_missing(tiny, tmp_path):
    report, rewards, prompts, _ = _evaluate(tiny, tmp_path, ground_truth=None,
                                            reward_models=[{"name": "gold_cubed", "callable": "rm_fns:gold_cubed"}])
    _check(report, rewards, prompts, group=False)
    assert len(prompts) == 8 and not prompts.is_ground_truth.any()
    assert prompts.onpolicy_accuracy.isna().all() and prompts.forecast_term.isna().all()
    assert report["reward_models"][0]["concentration"]["num_prompts"] == 8


# ----------------------------------------------------------------------------------------------------------
# Concentration by hand


@pytest.mark.parametrize("variances, want", [
    ([8.0, 2.0, 2.0, 0, 0, 0, 0, 0], (8 / 12, 10 / 12, 1)),  # top 10% of 8 = 1 prompt, top 25% = 2
    ([1.0] * 4, (0.25, 0.25, 2)),  # even: half needs half the prompts
    ([1.0] * 30, (0.1, 8 / 30, 15)),  # 10% of 30 is 3 prompts (not 4: no float ceil), 25% is 8
    ([3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], (0.25, 5 / 12, 4)),  # 3+1+1+1 = 6 = half of 12
    ([0.0] * 5, (None, None, None)),  # no variance anywhere
])
def test_concentration_by_hand(variances, want):
    got = concentration(np.array(variances))
    assert (got["top_10pct_share"], got["top_25pct_share"], got["prompts_for_half"]) == (
        tuple(w if w is None or isinstance(w, int) else pytest.approx(w) for w in want))
    assert got == {k: (pytest.approx(v) if isinstance(v, float) else v) for k, v in _by_hand(variances).items()}


def test_concentration_of_a_hand_built_reward_table():
    # K = 2: a prompt's variance (ddof=1) is d^2 / 2 for rewards d apart; normalizing scales all alike.
    r = np.array([[0.0, 4.0], [1.0, 3.0], [5.0, 3.0], [2.0, 2.0], [7.0, 7.0], [0.0, 0.0], [1.0, 1.0], [3.0, 3.0]])
    card = rm_metrics(RewardTable(onpolicy=r), None, n_resamples=20, seed=0)
    # variances 8, 2, 2, 0, ...: total 12; the top prompt (10% of 8 -> 1) holds 8, the top 2 (25%) hold 10.
    assert card["concentration"] == {"top_10pct_share": pytest.approx(8 / 12),
                                     "top_25pct_share": pytest.approx(10 / 12), "prompts_for_half": 1,
                                     "num_prompts": 8}


def test_concentration_curve_and_figure(tmp_path):
    """The curve by hand; the figure has one line per RM plus the diagonal, and evaluate writes it as a PNG."""
    import pandas as pd

    from rmteach.evaluate.plots import concentration_curve, concentration_figure

    x, y = concentration_curve(np.array([1.0, 0.0, 3.0, 0.0]))
    assert x.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and y.tolist() == [0.0, 0.75, 1.0, 1.0, 1.0]
    assert concentration_curve(np.zeros(3))[1].tolist() == [0.0] * 4  # no signal: nothing to place
    frame = pd.DataFrame({"reward_model": ["a", "a", "g", "g"], "is_ground_truth": [False, False, True, True],
                          "variance": [1.0, 3.0, 2.0, 2.0]})
    ax = concentration_figure(frame, "p").axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["spread evenly", "a", "g (ground truth)"]
    assert ax.lines[1].get_ydata().tolist() == [0.0, 0.75, 1.0]
