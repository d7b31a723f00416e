"""The trainer the forecast assumes: `forecast.trainer` / `forecast.train_config` in evaluate, filled by study."""

from __future__ import annotations

import pytest
import yaml

from rmteach.core.config import validate
from rmteach.core.errors import UserError
from rmteach.evaluate.config import TRAINER_KEYS, ForecastConfig, TrainerAssumption
from rmteach.evaluate.report import trainer_block, trainer_line
from rmteach.study.grid import with_trainer_forecast
from rmteach.train.config import TrainConfig


def test_trainer_defaults_are_train_defaults():
    """Unset, the forecast assumes what `rmteach train` would run: each key's default is TrainConfig's."""
    for key in TRAINER_KEYS:
        assert TrainerAssumption.model_fields[key].default == TrainConfig.model_fields[key].default, key


def test_train_config_path_fills_trainer_and_algorithm(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"algorithm": "grpo", "grpo_scale_rewards": "batch", "optimizer": "sgd",
                                    "learning_rate": 0.01, "max_grad_norm": 0.0, "kl_coef": 0.0, "steps": 300,
                                    "policy": {"path": "x"}, "report_to": []}))
    fc = ForecastConfig(train_config=str(path))
    assert (fc.algorithm, fc.grpo_scale_rewards) == ("grpo", "batch")
    t = fc.assumed_trainer
    assert (t.optimizer, t.learning_rate, t.max_grad_norm, t.kl_coef, t.steps) == ("sgd", 0.01, 0.0, 0.0, 300)
    assert not t.scale_free
    # an algorithm the forecast block sets itself wins over the train config's
    assert ForecastConfig(train_config=str(path), algorithm="rloo").algorithm == "rloo"


def test_trainer_and_train_config_together_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("optimizer: sgd\n")
    with pytest.raises(UserError, match="not both"):
        validate(ForecastConfig, {"train_config": str(path), "trainer": {"optimizer": "sgd"}}, "forecast")
    with pytest.raises(UserError, match="no such|not found|does not exist|missing"):
        validate(ForecastConfig, {"train_config": str(tmp_path / "absent.yaml")}, "forecast")
    with pytest.raises(UserError, match="lr"):
        validate(ForecastConfig, {"trainer": {"lr": 0.1}}, "forecast")  # unknown keys are rejected


@pytest.mark.parametrize("train, scale_free", [
    ({"optimizer": "sgd", "max_grad_norm": 0.0}, False),
    ({"optimizer": "sgd", "max_grad_norm": 1.0}, True),
    ({"optimizer": "sgd", "max_grad_norm": 0.0, "rloo_normalize_advantages": True}, True),
    ({"optimizer": "adamw", "max_grad_norm": 0.0}, True),
])
def test_scale_free(train, scale_free):
    assert TrainerAssumption(**train).scale_free is scale_free


def test_study_passes_its_train_block_and_defaults():
    block = with_trainer_forecast({}, {"optimizer": "sgd", "learning_rate": 0.003, "steps": 60})
    t = block["forecast"]["trainer"]
    assert (t["optimizer"], t["learning_rate"], t["steps"]) == ("sgd", 0.003, 60)
    assert t["kl_coef"] == TrainConfig.model_fields["kl_coef"].default  # unset in the block: train's default
    # a forecast block that names its own trainer keeps it
    own = with_trainer_forecast({"forecast": {"trainer": {"optimizer": "adamw"}}}, {"optimizer": "sgd"})
    assert own["forecast"]["trainer"] == {"optimizer": "adamw"}


def test_report_states_the_trainer_and_warns_without_one():
    given = trainer_block(ForecastConfig(trainer={"optimizer": "sgd", "learning_rate": 0.003, "max_grad_norm": 0,
                                                  "kl_coef": 0, "steps": 60}))
    assert given["trainer_warning"] is None and given["trainer"]["given"] is True
    assert given["trainer"]["description"] == "rloo, sgd, lr 0.003, no clipping, KL 0, 60 steps"
    assert trainer_line({"forecast": {"available": True, **given}}).startswith("The forecast assumes this trainer")
    default = trainer_block(ForecastConfig())
    assert default["trainer"]["given"] is False and "adamw" in default["trainer_warning"]
    assert trainer_line({"forecast": {"available": True, **default}}).startswith("Warning: no trainer given")
    assert trainer_line({"forecast": {"available": False}}) is None


# ----------------------------------------------------------------------------------------------------------
# The forecast under a scale-free step, and the hacking risk (pure, checked by hand-built tables)

import numpy as np  # noqa: E402

from rmteach.evaluate.forecast import (  # noqa: E402
    HACK_SHARE, HACK_SHARE_UNRESTRAINED, best_of_k_per_prompt, forecast_report, normalize,
)
from rmteach.evaluate.forecast import hacking_risk as _hacking_risk  # noqa: E402


def hacking_risk(r, gn, gold_lift, *, unrestrained):
    """The risk of an RM with rewards r: its mean best-of-K lift, as `forecast_report` passes it."""
    return _hacking_risk(float(best_of_k_per_prompt(r, gn).mean()), gold_lift, unrestrained=unrestrained)


def _blocks(rewards, gold, scale_free):
    blocks, _ = forecast_report(rewards, gold, [n for n in rewards if n != "gold"], group=False, steps=3,
                                step_size=0.1, primary="gold_rate", n_resamples=20, seed=0, scale_free=scale_free)
    return blocks


def test_scale_free_rate_is_the_sgd_rate_over_the_advantage_rms():
    rng = np.random.default_rng(0)
    gold = rng.normal(size=(6, 4))
    flat = gold * np.where(np.arange(6) % 2 == 0, 0.001, 1.0)[:, None]  # gt_lowvar: half the prompts flattened
    rewards = {"gold": gold, "flat": flat, "noisy": gold + rng.normal(size=(6, 4))}
    sgd, free = _blocks(rewards, gold, False), _blocks(rewards, gold, True)
    for name, r in rewards.items():
        z = normalize(r)
        rms = np.sqrt(np.mean([np.var(row, ddof=1) for row in z]))
        assert free[name]["gold_rate"]["value"] == pytest.approx(sgd[name]["gold_rate"]["value"] / rms, rel=1e-12)
    # A scale-free step forgives no flat prompt: `flat` still teaches slower than the ground truth ...
    assert free["flat"]["gold_rate"]["value"] < free["gold"]["gold_rate"]["value"]
    # ... but much less so than plain SGD, where its flat half also shrinks the step
    ratio_sgd = sgd["flat"]["gold_rate"]["value"] / sgd["gold"]["gold_rate"]["value"]
    ratio_free = free["flat"]["gold_rate"]["value"] / free["gold"]["gold_rate"]["value"]
    assert ratio_sgd < ratio_free < 1


def test_hacking_risk_by_hand():
    gold = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]])
    gn = normalize(gold)
    lift = float(np.mean(gn.max(axis=1) - gn.mean(axis=1)))
    same = hacking_risk(gold, gn, lift, unrestrained=False)
    assert same == {"best_of_k_share": pytest.approx(1.0), "threshold": HACK_SHARE, "flag": False}
    worst = hacking_risk(-gold, gn, lift, unrestrained=True)  # picks the ground truth's worst sample
    assert worst["best_of_k_share"] == pytest.approx(-1.0) and worst["flag"]
    assert worst["threshold"] == HACK_SHARE_UNRESTRAINED > HACK_SHARE
    # second best on every prompt: gn's second-highest minus the mean, over the best's
    second = hacking_risk(np.array([[0.0, 1.0, 3.0, 2.0], [2.0, 3.0, 1.0, 0.0]]), gn, lift, unrestrained=False)
    want = np.mean(np.sort(gn, axis=1)[:, -2] - gn.mean(axis=1)) / lift
    assert second["best_of_k_share"] == pytest.approx(want) and want == pytest.approx(1 / 3)
    assert second["flag"] is False and hacking_risk(np.array([[0.0, 1.0, 3.0, 2.0], [2.0, 3.0, 1.0, 0.0]]), gn,
                                                    lift, unrestrained=True)["flag"] is True
    assert hacking_risk(gold, gn, 0.0, unrestrained=True) == {"best_of_k_share": None, "threshold":
                                                               HACK_SHARE_UNRESTRAINED, "flag": False}


@pytest.mark.parametrize("trainer, threshold", [
    ({"optimizer": "adamw", "kl_coef": 0.0}, HACK_SHARE_UNRESTRAINED),
    ({"optimizer": "adamw", "kl_coef": 0.05}, HACK_SHARE),
    ({"optimizer": "sgd", "max_grad_norm": 0.0, "kl_coef": 0.0}, HACK_SHARE),
])
def test_the_report_picks_the_threshold_from_the_trainer(trainer, threshold):
    t = TrainerAssumption(**trainer)
    gold = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]])
    blocks, _ = forecast_report({"gold": gold, "rm": gold[:, ::-1].copy()}, gold, ["rm"], group=False, steps=2,
                                step_size=0.1, primary="gold_rate", n_resamples=10, seed=0,
                                scale_free=t.scale_free, kl_coef=t.kl_coef)
    assert blocks["rm"]["hacking_risk"]["threshold"] == threshold


def test_train_config_path_is_relative_to_the_evaluate_config(tmp_path, tiny):
    """`forecast.train_config: train.yaml` in an evaluate YAML is read from the YAML's folder, not the cwd."""
    from helpers import write_eval_config

    from rmteach.core.config import load_config
    from rmteach.evaluate.config import EvaluateConfig

    folder = tmp_path / "cfgs"
    folder.mkdir()
    (folder / "train.yaml").write_text("optimizer: sgd\nmax_grad_norm: 0.0\nsteps: 77\n")
    cfg_path = write_eval_config(folder / "eval.yaml", tiny, preferences=None, forecast={"train_config": "train.yaml"})
    cfg = load_config(EvaluateConfig, cfg_path)
    assert cfg.forecast.train_config == str((folder / "train.yaml").resolve())
    assert cfg.forecast.assumed_trainer.steps == 77 and not cfg.forecast.assumed_trainer.scale_free


def test_the_study_judges_the_flag_beyond_seed_noise_by_hand():
    from scipy import stats as st

    from rmteach.study.hacking import hacking_sentence, hacking_table

    pairs = {"a": ([-0.2, -0.21, -0.19], True), "b": ([0.1, 0.12, 0.11], False), "c": ([-0.05, 0.06, -0.02], False),
             "d": ([0.2, 0.22, 0.21], True), "e": ([-0.3, -0.31, -0.32], False)}
    runs = [{"policy": "p", "reward_model": m, "is_ground_truth": False, "seed": s,
             "outcomes": {"initial_gold": 1.0, "final_gold": 1.0 + d},
             "evaluate": {"forecast": {"hacking_risk": {"flag": f, "best_of_k_share": 0.1}}}}
            for m, (ds, f) in pairs.items() for s, d in enumerate(ds)]
    t = hacking_table(runs)
    rows = {r["reward_model"]: r for r in t["rows"]}
    for m, (ds, _) in pairs.items():
        lo, hi = st.t.interval(0.95, len(ds) - 1, loc=np.mean(ds), scale=st.sem(ds))
        assert rows[m]["ci95"] == pytest.approx([lo, hi], abs=1e-9)
    assert {m: r["outcome"] for m, r in rows.items()} == {"a": "hacked", "b": "held", "c": "undetermined",
                                                          "d": "held", "e": "hacked"}
    # literally below the start: a, c, e; flagged: a, d
    assert (t["n_hacked"], t["n_flagged"], t["recall"], t["precision"]) == (3, 2, pytest.approx(1 / 3), 0.5)
    # beyond noise: hacked a, e; held b, d; c left out
    assert (t["n_hacked_beyond_noise"], t["n_held_beyond_noise"], t["n_undetermined"]) == (2, 2, 1)
    assert (t["recall_beyond_noise"], t["precision_beyond_noise"]) == (0.5, 0.5)
    assert "2 hacked, 2 held, 1 undetermined; recall 0.50, precision 0.50" in hacking_sentence(t)
    one_seed = hacking_table([r for r in runs if r["seed"] == 0])
    assert one_seed["n_undetermined"] == 5 and one_seed["recall_beyond_noise"] is None
