"""`rmteach curate`: the rules on hand-built per-prompt tables, then end to end on the tiny models, every selection
and share recomputed from prompts.parquet with plain Python."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli, write_eval_config

from rmteach.core.blocks import DataConfig
from rmteach.core.data import load_prompts
from rmteach.core.errors import UserError
from rmteach.core.selection import keep_count, kept_rows, parse_keep, select, summarize

WORDS = [f"w{i}" for i in range(12)]
N = 10  # prompts of the end-to-end source
MAX_PROMPTS = 6  # the ground truth scores (and the forecast covers) the first 6 only


def w1_count(prompts, completions, **kwargs):
    """A coarse RM (a callable): the number of 'w1' in the response, so many groups tie or are dead."""
    return [float(c.split().count("w1")) for c in completions]


def _table(variance=None, zero_std=None, term=None, accuracy=None) -> pd.DataFrame:
    n = len(next(x for x in (variance, zero_std, term, accuracy) if x is not None))
    return pd.DataFrame({"variance": variance if variance is not None else [1.0] * n,
                         "zero_std": zero_std if zero_std is not None else [False] * n,
                         "forecast_term": term if term is not None else [math.nan] * n,
                         "onpolicy_accuracy": accuracy if accuracy is not None else [math.nan] * n})


def _kept(mask) -> list[int]:
    return [i for i, k in enumerate(mask) if k]


def _rank_of(seed: int, n: int) -> list[int]:
    """The documented tie order: a seeded permutation, the lower its value the earlier."""
    return list(np.random.default_rng(seed).permutation(n))


# ----------------------------------------------------------------------------------------------------------
# 1. The rules by hand


@pytest.mark.parametrize("text, value", [("100", 100), ("1", 1), (" 7 ", 7), ("0.25", 0.25), ("1.0", 1.0),
                                         (".5", 0.5), (3, 3), (0.5, 0.5)])
def test_keep_is_a_count_or_a_fraction(text, value):
    got = parse_keep(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["0", "-2", "1.5", "0.0", "-0.5", "nan", "inf", "half", "", True, None, 0, 2.0])
def test_a_bad_keep_is_refused(text):
    with pytest.raises(UserError, match="--keep"):
        parse_keep(text)


@pytest.mark.parametrize("keep, n, expected", [(0.25, 10, 3), (0.1, 30, 3), (0.5, 3, 2), (0.5, 4, 2), (1.0, 7, 7),
                                               (0.01, 5, 1), (0.3, 10, 3), (0.7, 10, 7), (3, 3, 3), (1, 9, 1)])
def test_keep_count_rounds_a_fraction_up_exactly(keep, n, expected):
    assert keep_count(keep, n) == expected


def test_keep_count_refuses_more_than_there_are():
    with pytest.raises(ValueError):
        keep_count(4, 3)


def test_variance_keeps_the_highest_and_breaks_ties_by_the_seed():
    t = _table(variance=[0.2, 0.9, 0.5, 0.9, 0.5, 0.0])
    picked = set()
    for seed in range(20):
        kept = _kept(select(t, "variance", 3, seed))
        # 0.9 and 0.9 always; one of the two 0.5s: the one the seed's permutation puts first
        rank = _rank_of(seed, 6)
        assert kept == sorted([1, 3, 2 if rank[2] < rank[4] else 4])
        assert kept == _kept(select(t, "variance", 3, seed))  # the same seed, the same set
        picked.add(tuple(kept))
    assert picked == {(1, 2, 3), (1, 3, 4)}  # a different seed changes only which tied prompt is kept
    assert _kept(select(t, "variance", 4, 0)) == [1, 2, 3, 4]  # no tie at the cut: no seed matters
    assert _kept(select(t, "variance", 0.5, 0)) == _kept(select(t, "variance", 3, 0))  # ceil(0.5 * 6) = 3
    assert _kept(select(t, "variance", 0.34, 0)) == [1, 2, 3] or _kept(select(t, "variance", 0.34, 0)) == [1, 3, 4]
    assert _kept(select(t, "variance", 1.0, 5)) == list(range(6))


def test_distinct_scores_select_the_same_prompts_under_every_seed():
    t = _table(variance=[0.3, 0.1, 0.7, 0.2, 0.6])
    assert {tuple(_kept(select(t, "variance", 2, s))) for s in range(30)} == {(2, 4)}


def test_forecast_keeps_the_highest_terms_among_the_prompts_that_have_one():
    t = _table(term=[0.3, math.nan, -0.1, 0.3, math.nan, 0.8])  # 4 eligible
    assert _kept(select(t, "forecast", 4, 0)) == [0, 2, 3, 5]  # NaN terms are never kept
    assert _kept(select(t, "forecast", 1.0, 0)) == [0, 2, 3, 5]  # the fraction is of the eligible prompts
    for seed in range(10):  # 0.5 of 4 = 2: 0.8, then one of the two 0.3s
        rank = _rank_of(seed, 6)
        assert _kept(select(t, "forecast", 0.5, seed)) == sorted([5, 0 if rank[0] < rank[3] else 3])
    with pytest.raises(ValueError):
        select(t, "forecast", 5, 0)  # more than eligible: the command refuses it before (below)


def test_zero_std_drops_only_the_dead_groups():
    t = _table(variance=[0.0, 0.4, 0.0, 0.0], zero_std=[True, False, False, True])  # a tiny variance that is not 0
    assert _kept(select(t, "zero_std", None, 0)) == [1, 2]
    with pytest.raises(ValueError):
        select(t, "zero_std", 0.5, 0)


def test_summarize_by_hand():
    t = _table(variance=[3.0, 1.0, 0.0, 4.0], term=[1.0, -0.5, math.nan, 2.5], accuracy=[0.9, math.nan, 0.5, 0.7])
    s = summarize(t, np.array([True, False, False, True]))
    assert s["variance_share"] == pytest.approx(7 / 8)
    assert s["forecast_kept"] == pytest.approx(3.5) and s["forecast_total"] == pytest.approx(3.0)
    assert s["forecast_share"] == pytest.approx(3.5 / 3.0)
    assert s["forecast_gain"] == pytest.approx((3.5 / 2) / (3.0 / 3))  # kept mean (1, 2.5) over the mean of 3 terms
    assert s["accuracy_kept"] == pytest.approx(0.8) and s["accuracy_dropped"] == pytest.approx(0.5)
    flat = summarize(_table(variance=[0.0, 0.0], term=[-1.0, 0.5]), np.array([True, False]))
    assert flat["variance_share"] is None and flat["forecast_share"] is None  # no variance; a negative total
    assert flat["forecast_gain"] is None
    assert flat["accuracy_kept"] is None and flat["forecast_kept"] == -1.0
    none = summarize(_table(variance=[1.0, 1.0]), np.array([True, False]))
    assert none["forecast_share"] is None and none["forecast_total"] is None


def test_kept_rows_keep_columns_order_and_ids():
    rows = [{"prompt": "a", "x": 1}, {"prompt": "b", "x": [2]}, {"id": "k", "prompt": "c"}, {"prompt": "d", "id": None}]
    ids = ["0", "1", "k", "3"]
    out = kept_rows(rows, ids, np.array([False, True, True, True]), "id")
    assert out == [{"prompt": "b", "x": [2], "id": 1}, {"id": "k", "prompt": "c"}, {"prompt": "d", "id": 3}]
    assert rows[1] == {"prompt": "b", "x": [2]} and rows[3]["id"] is None  # the source rows are not changed


# ----------------------------------------------------------------------------------------------------------
# 2. End to end on the tiny models


@pytest.fixture(scope="module")
def evals(tiny, tmp_path_factory):
    """Two evaluate outputs over one source of 10 prompts with extra columns: one with a ground truth (scored on the
    first 6 prompts), one without; they share the policy's samples."""
    from rmteach.cli import main

    root = tmp_path_factory.mktemp("curate")
    source = root / "prompts.jsonl"
    rows = [{"key": f"q{i}", "instruction": " ".join(WORDS[i: i + 3]), "reference": str(i % 3),
             "meta": {"level": i % 4, "tags": ["t"] * (i % 2)}} for i in range(N)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    prompts = {"path": str(source), "columns": {"prompt": "instruction", "id": "key"}}
    rms = [{"name": "rm_llama", "path": str(tiny["rm_llama"]), "batch_size": 5},
           {"name": "gold_cubed", "callable": "rm_fns:gold_cubed"},
           {"name": "w1_count", "callable": "test_curate:w1_count"},
           {"name": "flat", "callable": "rm_fns:constant"}]
    for name, changes in (("gold", {"forecast": {"max_prompts": MAX_PROMPTS}}),
                          ("nogold", {"ground_truth": None, "reward_models": rms[1:]})):
        cfg = write_eval_config(root / f"{name}.yaml", tiny, **{"preferences": None, "cache_dir": str(root / "cache"),
                                                                "prompts": prompts, "reward_models": rms, **changes})
        assert main(["evaluate", "--config", str(cfg), "--out", str(root / name)]) == 0
    outs = {name: root / name for name in ("gold", "nogold")}
    return outs, source, rows


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _expected(frame: pd.DataFrame, rm: str, rule: str, keep, seed: int) -> list[int]:
    """The kept prompt indices, recomputed with sorted() over the RM's rows (the documented rule)."""
    mine = frame[frame.reward_model == rm].reset_index(drop=True)
    if rule == "zero_std":
        return [i for i in range(len(mine)) if not mine.zero_std[i]]
    col = {"variance": "variance", "forecast": "forecast_term"}[rule]
    ok = [i for i in range(len(mine)) if not math.isnan(mine[col][i])]
    k = keep if isinstance(keep, int) else math.ceil(round(keep * len(ok), 9))
    tie = _rank_of(seed, len(mine))
    return sorted(sorted(ok, key=lambda i: (-mine[col][i], tie[i]))[:k])


def _check_run(out, ev, source_rows, rule, keep, rms, seed, stdout):
    frame = pd.read_parquet(ev / "prompts.parquet")
    cur = json.loads((out / "curation.json").read_text())
    assert cur["schema"] == "rmteach.curate/1" and cur["rule"] == rule and cur["keep"] == keep
    assert cur["seed"] == seed and cur["evaluate"] == str(ev) and [c["name"] for c in cur["reward_models"]] == rms
    gains = {}
    for rm in rms:
        idx = _expected(frame, rm, rule, keep, seed)
        got = _lines(out / rm / "prompts.jsonl")
        assert got == [source_rows[i] for i in idx]  # the source rows themselves: ids, every column, their order
        card = next(c for c in cur["reward_models"] if c["name"] == rm)
        assert card["kept_ids"] == [source_rows[i]["key"] for i in idx]
        assert (card["n_kept"], card["n_total"]) == (len(idx), N)
        mine = frame[frame.reward_model == rm].reset_index(drop=True)
        v = list(mine.variance)
        assert card["variance_share"] == (pytest.approx(sum(v[i] for i in idx) / sum(v)) if sum(v) > 0 else None)
        terms = [(i, t) for i, t in enumerate(mine.forecast_term) if not math.isnan(t)]
        total = sum(t for _, t in terms)
        share = sum(t for i, t in terms if i in idx) / total if terms and total > 0 else None
        assert card["forecast_share"] == (None if share is None else pytest.approx(share))
        kept_terms = [t for i, t in terms if i in idx]
        gain = (sum(kept_terms) / len(kept_terms)) / (total / len(terms)) if share is not None and kept_terms else None
        assert card["forecast_gain"] == (None if gain is None else pytest.approx(gain))
        acc = list(mine.onpolicy_accuracy)
        kept_acc = [acc[i] for i in idx if not math.isnan(acc[i])]
        dropped_acc = [acc[i] for i in range(len(acc)) if i not in idx and not math.isnan(acc[i])]
        assert card["accuracy_kept"] == (pytest.approx(sum(kept_acc) / len(kept_acc)) if kept_acc else None)
        assert card["accuracy_dropped"] == (pytest.approx(sum(dropped_acc) / len(dropped_acc)) if dropped_acc else None)
        # what train and study read: the same prompts as the source's, by the curated file's ready config
        ready = DataConfig(**{**card["prompts"], "path": str(out / card["prompts"]["path"])})
        src = {p.id: p for p in load_prompts(DataConfig(path=str(ev.parent / "prompts.jsonl"),
                                                        columns={"prompt": "instruction", "id": "key"}))}
        assert load_prompts(ready) == [src[source_rows[i]["key"]] for i in idx]
        assert rm in stdout and f"{len(idx)} of {N}" in stdout
        gains[rm] = gain
    # The verdict under the table, by hand from the gains above: >= 1.9 likely faster, < 1.5 little to gain.
    known = {rm: g for rm, g in gains.items() if g is not None}
    fast = [rm for rm, g in known.items() if g >= 1.9]
    little = [rm for rm, g in known.items() if g < 1.5]
    if fast:
        assert f"Likely to train faster (forecast gain >= 1.9): {', '.join(fast)}." in stdout
    if little:
        assert f"Little to gain (under 1.5): {', '.join(little)}." in stdout
    if not known:
        assert "Likely to train faster" not in stdout and "Little to gain" not in stdout
    return cur


@pytest.mark.parametrize("rule, keep, rms, seed", [
    ("variance", "0.5", None, 0), ("variance", "3", ["w1_count", "flat"], 4), ("forecast", "0.5", ["rm_llama"], 0),
    ("forecast", "6", ["gold_cubed", "w1_count"], 1), ("zero_std", None, ["w1_count", "rm_llama"], 0),
    ("zero_std", None, ["gold"], 0)])
def test_curate_writes_the_source_rows_of_the_recomputed_selection(evals, tmp_path, capsys, rule, keep, rms, seed):
    (outs, _, rows) = evals
    out = tmp_path / "cur"
    argv = ["curate", "--evaluate", outs["gold"], "--rule", rule, "--out", out, "--seed", seed]
    argv += (["--keep", keep] if keep else []) + (["--rm", *rms] if rms else [])
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    names = rms or ["rm_llama", "gold_cubed", "w1_count", "flat"]  # every candidate, not the ground truth
    parsed = None if keep is None else parse_keep(keep)
    cur = _check_run(out, outs["gold"], rows, rule, parsed, names, seed, stdout)
    assert any(c["forecast_gain"] is not None for c in cur["reward_models"])  # so the verdict above was checked
    if rms == ["gold"]:  # the ground truth, named: only the 6 prompts it scored can be kept
        assert cur["reward_models"][0]["n_eligible"] <= MAX_PROMPTS
    assert sorted(p.name for p in out.iterdir()) == sorted([".rmteach-out.json", "curation.json", "summary.md",
                                                            *names])
    assert "| reward model |" in (out / "summary.md").read_text()
    # the same run again is byte-identical; a different one needs --overwrite
    before = (out / "curation.json").read_bytes()
    assert run_cli(argv, capsys)[0] == 0 and (out / "curation.json").read_bytes() == before


def test_variance_on_an_evaluate_without_ground_truth(evals, tmp_path, capsys):
    (outs, _, rows) = evals
    out = tmp_path / "cur"
    code, stdout, err = run_cli(["curate", "--evaluate", outs["nogold"], "--rule", "variance", "--keep", "0.3",
                                 "--out", out], capsys)
    assert code == 0, err
    cur = _check_run(out, outs["nogold"], rows, "variance", 0.3, ["gold_cubed", "w1_count", "flat"], 0, stdout)
    assert cur["ground_truth"] is None
    assert all(c["forecast_share"] is None and c["accuracy_kept"] is None for c in cur["reward_models"])


BAD = [  # (argv after the evaluate folder, words the one line must hold)
    (["--rule", "variance", "--keep", "0.5", "--rm", "nope"], ["'nope'", "rm_llama", "gold_cubed", "flat"]),
    (["--rule", "variance", "--keep", "0"], ["--keep 0", ">= 1"]),
    (["--rule", "variance", "--keep", "1.5"], ["--keep 1.5", "(0, 1]"]),
    (["--rule", "variance", "--keep", str(N + 1)], [f"--keep {N + 1}", f"{N} prompts"]),
    (["--rule", "forecast", "--keep", "7", "--rm", "rm_llama"], ["--keep 7", f"{MAX_PROMPTS} prompts with"]),
    (["--rule", "variance"], ["needs --keep"]),
    (["--rule", "zero_std", "--keep", "0.5"], ["--keep is not an option"]),
    (["--rule", "zero_std"], ["'flat'", "dead"]),  # the constant RM: nothing left to keep
    (["--rule", "best", "--keep", "0.5"], ["unknown --rule 'best'", "variance, zero_std, forecast"]),
    (["--rule", "variance", "--keep", "0.5", "--seed", "-1"], ["--seed"]),
]


@pytest.mark.parametrize("argv, words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_writes_nothing(evals, tmp_path, capsys, argv, words):
    (outs, _, _) = evals
    out = tmp_path / "cur"
    code, stdout, err = run_cli(["curate", "--evaluate", outs["gold"], "--out", out, *argv], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("rmteach curate: error:") and all(w in err for w in words), err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_forecast_without_ground_truth_and_a_missing_table_are_refused(evals, tmp_path, capsys):
    (outs, source, _) = evals
    out = tmp_path / "cur"
    code, _, err = run_cli(["curate", "--evaluate", outs["nogold"], "--rule", "forecast", "--keep", "0.5",
                            "--out", out], capsys)
    assert code == 2 and "needs a ground truth" in err and "--rule variance" in err and len(err.splitlines()) == 1
    old = tmp_path / "old"
    shutil.copytree(outs["gold"], old)
    (old / "prompts.parquet").unlink()
    code, _, err = run_cli(["curate", "--evaluate", old, "--rule", "variance", "--keep", "2", "--out", out], capsys)
    assert code == 2 and "no prompts.parquet" in err and "rerun rmteach evaluate" in err and "Traceback" not in err
    (old / "report.json").unlink()
    code, _, err = run_cli(["curate", "--evaluate", old, "--rule", "variance", "--keep", "2", "--out", out], capsys)
    assert code == 2 and "report.json" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_source_changed_since_the_evaluate_is_refused(evals, tmp_path, capsys):
    (outs, source, rows) = evals
    ev = tmp_path / "ev"
    shutil.copytree(outs["gold"], ev)
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]), encoding="utf-8")
    report = json.loads((ev / "report.json").read_text())
    report["config"]["prompts"]["path"] = str(changed)  # as if the file had been rewritten in place
    (ev / "report.json").write_text(json.dumps(report))
    code, _, err = run_cli(["curate", "--evaluate", ev, "--rule", "variance", "--keep", "2", "--out",
                            tmp_path / "cur"], capsys)
    assert code == 2 and "changed since the evaluate" in err and not (tmp_path / "cur").exists()


def test_overwrite_replaces_only_a_curate_output(evals, tmp_path, capsys):
    (outs, _, _) = evals
    out = tmp_path / "cur"
    base = ["curate", "--evaluate", outs["gold"], "--out", out, "--rule", "variance"]
    assert run_cli(base + ["--keep", "2", "--rm", "w1_count", "flat"], capsys)[0] == 0
    code, _, err = run_cli(base + ["--keep", "3", "--rm", "rm_llama"], capsys)
    assert code == 2 and "--overwrite" in err
    assert run_cli(base + ["--keep", "3", "--rm", "rm_llama", "--overwrite"], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == [".rmteach-out.json", "curation.json", "rm_llama", "summary.md"]
    (out / "notes.txt").write_text("mine\n")
    (out / "rm_llama" / "mine.txt").write_text("mine too\n")
    for extra, keep, word in (([], "3", "notes.txt"), (["--overwrite"], "3", "notes.txt"),
                              (["--overwrite"], "4", "notes.txt"), ([], "4", "--overwrite")):  # same run, other run
        code, _, err = run_cli(base + ["--keep", keep, "--rm", "rm_llama", *extra], capsys)
        assert code == 2 and len(err.splitlines()) == 1 and word in err, err
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "rm_llama" / "mine.txt").exists()
    (out / "notes.txt").unlink()
    code, _, err = run_cli(base + ["--keep", "4", "--rm", "rm_llama", "--overwrite"], capsys)
    assert code == 2 and "rm_llama" in err  # its folder holds a file curate did not write
    code, _, err = run_cli(["curate", "--evaluate", outs["gold"], "--out", outs["nogold"], "--rule", "variance",
                            "--keep", "2", "--overwrite"], capsys)
    assert code == 2 and "evaluate output" in err  # another command's output is never taken
