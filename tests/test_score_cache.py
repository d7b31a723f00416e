"""Per-RM score caches: a rerun (e.g. after a kill mid-scoring) does not score finished HF RMs again."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import write_eval_config

from rmteach.backends import reward_hf
from rmteach.core.config import load_config
from rmteach.evaluate.config import EvaluateConfig
from rmteach.evaluate.run import evaluate, run_evaluate


def _no_hf_loads(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("an HF reward model was loaded again")

    monkeypatch.setattr(reward_hf.HFRewardModel, "__init__", refuse)


@pytest.mark.slow
def test_a_rerun_after_a_failure_scores_only_what_was_not_finished(tiny, tmp_path, monkeypatch):
    # First run: the two HF RMs score, then a callable RM fails (as a kill would stop the run).
    rms = [{"name": "rm_llama", "path": str(tiny["rm_llama"]), "batch_size": 5},
           {"name": "rm_other_tok", "path": str(tiny["rm_other_tok"]), "batch_size": 7},
           {"name": "broken", "callable": "rm_fns:raises"}]
    bad = load_config(EvaluateConfig, write_eval_config(tmp_path / "bad.yaml", tiny, reward_models=rms))
    with pytest.raises(Exception):
        evaluate(bad)
    # The fixed config reruns: the HF RMs come from the cache (loading one would fail), the callable is scored.
    rms[2] = {"name": "gold_cubed", "callable": "rm_fns:gold_cubed"}
    fixed = load_config(EvaluateConfig, write_eval_config(tmp_path / "fixed.yaml", tiny, reward_models=rms))
    with monkeypatch.context() as m:
        _no_hf_loads(m)
        cached = run_evaluate(fixed, tmp_path / "cached")
    fresh = run_evaluate(fixed.model_copy(update={"cache_dir": str(tmp_path / "other_cache")}), tmp_path / "fresh")
    strip = lambda r: {k: v for k, v in r.items() if k != "config"}  # noqa: E731 - the cache_dir differs
    assert strip(cached) == strip(fresh)
    timing = json.loads((tmp_path / "cached" / "timing.json").read_text())
    assert set(timing["scoring_s"]) == {"rm_llama", "rm_other_tok", "gold_cubed", "gold"}


@pytest.mark.slow
def test_the_cache_key_follows_what_changes_the_scores(tiny, tmp_path, monkeypatch):
    cfg = load_config(EvaluateConfig, write_eval_config(tmp_path / "e.yaml", tiny))
    first, _ = evaluate(cfg)
    # Another batch size changes no score: cached. Another max_length can: scored again.
    cfg2 = cfg.model_copy(deep=True)
    cfg2.reward_models[0].batch_size = 2
    with monkeypatch.context() as m:
        _no_hf_loads(m)
        again, _ = evaluate(cfg2)
    assert [c["normalization"] for c in again["reward_models"]] == [c["normalization"] for c in first["reward_models"]]
    cfg3 = cfg.model_copy(deep=True)
    cfg3.reward_models[0].max_length = 9
    loads = []
    original = reward_hf.HFRewardModel.__init__

    def counting(self, rm_cfg, **kwargs):
        loads.append(rm_cfg.name)
        original(self, rm_cfg, **kwargs)

    monkeypatch.setattr(reward_hf.HFRewardModel, "__init__", counting)
    third, data = evaluate(cfg3)
    assert loads == ["rm_llama"]  # only the changed RM was scored again
    assert np.isfinite(data.rewards["rm_llama"].onpolicy).all()
