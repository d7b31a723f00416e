"""`study.points`: the typed point is what the analysis builds, and the study's forecasts come from `evaluate`."""

from __future__ import annotations

from typing import get_type_hints

from rmteach.evaluate import forecast
from rmteach.study import analysis
from rmteach.study.points import OutcomeSummary, Point, aggregate_points, seed_matrix


def _run(rm, seed, value):
    return {"policy": "p", "reward_model": rm, "seed": seed, "is_ground_truth": rm == "gold",
            "predictors": {"reward_variance": 0.5}, "outcomes": {"o": value, "unused": 0.0}}


def test_built_points_have_exactly_the_typed_keys():
    pts = aggregate_points([_run("a", 1, 2.0), _run("gold", 0, 1.0), _run("a", 0, 4.0)], ["o"])
    assert [p["reward_model"] for p in pts] == ["a", "gold"]  # first-seen order
    assert all(set(p) == set(get_type_hints(Point)) for p in pts)
    assert set(pts[0]["outcomes"]) == {"o"} and set(pts[0]["outcomes"]["o"]) == set(get_type_hints(OutcomeSummary))
    assert pts[0]["seeds"] == [0, 1] and pts[0]["outcomes"]["o"]["values"] == [4.0, 2.0]  # sorted by seed
    assert pts[1]["is_ground_truth"] and pts[1]["outcomes"]["o"]["std"] is None
    assert seed_matrix(pts, "o").shape == (2, 1)  # cut to the fewest seeds any point has


def test_study_forecasts_are_evaluates_plus_gradient_alignment():
    assert set(analysis.FORECASTS) == set(forecast.FORECASTS) | {"gradient_alignment"}
    assert [n for n in analysis.FORECASTS if n in forecast.FORECASTS] == list(forecast.FORECASTS)
    assert analysis.FORECASTS == ("gold_rate", "lookahead", "gradient_alignment", "best_of_k_gold_lift")
    assert set(analysis.PREDICTOR_LABELS) == set(analysis.PREDICTORS)
