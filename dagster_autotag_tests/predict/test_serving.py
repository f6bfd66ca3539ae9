"""Which model serves a scheme (predict/serving.py): measured scores, the cost budget, ties, pins, and the
decision as registry tags — pure, no MLflow."""

import json

import pytest

from dagster_autotag.predict.serving import (
    Candidate,
    ServingError,
    ServingRecord,
    choose_serving,
    measure_speed,
    parse_pin,
)
from dagster_autotag.train.configs import LinearConfig
from dagster_autotag.train.scheme_model import train_scheme_model
from dagster_autotag_tests.train.test_scheme_model import GATE, LABELS, rows

S = "p0_newcar"
BUDGET = 3600.0


def candidate(kind: str, score: float | None, cost: float | None, version: str = "1") -> Candidate:
    return Candidate(kind, f"autotag.{S}.{kind}", version, f"run-{kind}", score, cost)


def chosen_rows(decision) -> dict[str, bool]:
    return {r["kind"]: r["chosen"] for r in decision.rows}


def test_a_worse_ensemble_is_not_chosen():
    """The issue's case: the ensemble was the default kind although linear scored better."""
    candidates = [
        candidate("ensemble", 0.770, 60.0),
        candidate("linear", 0.812, 5.0),
        candidate("textcnn", 0.790, 25.0),
    ]
    decision = choose_serving(S, candidates, "micro_f1", BUDGET)
    assert decision.chosen.kind == "linear" and not decision.pinned
    assert decision.reason.startswith(f"autotag.{S}.linear v1: best micro_f1 on the current test split (0.8120)")
    assert "compared with textcnn 0.7900, ensemble 0.7700" in decision.reason
    assert chosen_rows(decision) == {"linear": True, "textcnn": False, "ensemble": False}  # cheapest kind first
    assert {r["kind"]: r["note"] for r in decision.rows}["ensemble"] == "lower micro_f1"


def test_a_kind_over_the_budget_is_not_chosen_even_when_best():
    candidates = [candidate("bert", 0.90, 6000.0), candidate("textcnn", 0.85, 25.0), candidate("linear", 0.80, 5.0)]
    decision = choose_serving(S, candidates, "micro_f1", BUDGET)
    assert decision.chosen.kind == "textcnn"
    bert = next(r for r in decision.rows if r["kind"] == "bert")
    assert not bert["within_budget"] and not bert["chosen"] and bert["note"].startswith("over budget (6,000 > 3,600")
    assert "over budget: bert (6,000 s)" in decision.reason
    # without a budget (null in corpus.yaml) the best model serves, whatever it costs
    assert choose_serving(S, candidates, "micro_f1", None).chosen.kind == "bert"


def test_a_tie_goes_to_the_cheaper_kind():
    tied = [candidate("ensemble", 0.8001, 60.0), candidate("linear", 0.8000, 5.0)]
    decision = choose_serving(S, tied, "micro_f1", BUDGET)
    assert decision.chosen.kind == "linear"
    assert "tied with ensemble 0.8001: the cheaper kind serves" in decision.reason
    assert next(r for r in decision.rows if r["kind"] == "ensemble")["note"].startswith("tied with linear")
    clearly_better = [candidate("ensemble", 0.8003, 60.0), candidate("linear", 0.8000, 5.0)]
    assert choose_serving(S, clearly_better, "micro_f1", BUDGET).chosen.kind == "ensemble"


def test_a_pin_wins_and_is_reported_as_pinned():
    candidates = [candidate("linear", 0.81, 5.0), candidate("ensemble", 0.77, 6000.0, version="4")]
    decision = choose_serving(S, candidates, "micro_f1", BUDGET, pin="ensemble")
    assert decision.pinned and decision.chosen.kind == "ensemble"
    assert decision.reason == (
        f"autotag.{S}.ensemble v4: pinned by run config (ensemble), not chosen by measurement; "
        "over the budget (6,000 > 3,600 s per 100k items)"
    )
    assert choose_serving(S, candidates, "micro_f1", BUDGET, pin="ensemble:4").chosen.version == "4"
    with pytest.raises(ServingError, match="the pin 'ensemble:3' names none of"):
        choose_serving(S, candidates, "micro_f1", BUDGET, pin="ensemble:3")
    with pytest.raises(ServingError, match="the pin 'bert' names none of"):
        choose_serving(S, candidates, "micro_f1", BUDGET, pin="bert")


@pytest.mark.parametrize("pin", ["linear:", "linear:x", ":3", ""])
def test_a_malformed_pin_is_refused(pin):
    with pytest.raises(ServingError, match="'kind' or 'kind:version'"):
        parse_pin(pin)


def test_pins_parse_to_kind_and_version():
    assert parse_pin("linear") == ("linear", None) and parse_pin(" textcnn : 3 ") == ("textcnn", "3")


def test_nothing_within_the_budget_is_an_error_that_says_what_to_change():
    candidates = [candidate("bert", 0.90, 6000.0), candidate("linear", None, 5.0)]
    with pytest.raises(ServingError) as caught:
        choose_serving(S, candidates, "micro_f1", BUDGET)
    message = str(caught.value)
    assert "no model may serve: none was scored within the inference budget (3,600 s per 100k items)" in message
    assert f"autotag.{S}.bert v1: 0.9000, 6,000 s per 100k items" in message
    assert f"autotag.{S}.linear v1: not scored" in message
    assert "inference_budget_s_per_100k" in message and "model_versions" in message
    with pytest.raises(ServingError, match="no model to choose from"):
        choose_serving(S, [], "micro_f1", BUDGET)


def test_an_unknown_speed_counts_as_within_the_budget_and_is_flagged():
    decision = choose_serving(S, [candidate("textcnn", 0.8, None), candidate("linear", 0.7, 5.0)], "micro_f1", 10.0)
    assert decision.chosen.kind == "textcnn"
    assert "speed unknown, within the budget of 10 s" in decision.reason
    assert next(r for r in decision.rows if r["chosen"])["note"] == "serving; speed unknown"


def record(champions=None, device="cpu", budget=BUDGET) -> ServingRecord:
    candidates = [candidate("linear", 0.81, 5.0), candidate("textcnn", 0.79, 25.0)]
    decision = choose_serving(S, candidates, "micro_f1", budget)
    champions = champions or {"linear": "1", "textcnn": "1"}
    return ServingRecord.of(decision, champions, device, "2024-05-04T02:00:00+00:00", "test.parquet (213 rows)")


def test_the_record_round_trips_through_registry_tags():
    kept = record()
    tags = kept.to_tags()
    assert all(k.startswith("serving.") and len(v) <= 5000 for k, v in tags.items())
    assert list(tags)[-1] == "serving.champions"  # written last: a half-written record reads as stale
    assert tags["serving.kind"] == "linear" and tags["serving.version"] == "1"
    back = ServingRecord.from_tags(S, {**tags, "other": "x"})
    assert back == kept
    assert ServingRecord.from_tags(S, {}) is None
    assert ServingRecord.from_tags(S, {k: v for k, v in tags.items() if k != "serving.champions"}) is None
    assert "| linear | 1 | 0.8100 |" in kept.markdown() and "measured on cpu" in kept.markdown()


def test_the_record_is_stale_when_a_champion_moves_or_the_device_or_budget_changes():
    kept = record()
    assert kept.stale_because({"linear": "1", "textcnn": "1"}, "cpu", BUDGET) is None
    assert kept.stale_because({"linear": "2", "textcnn": "1"}, "cpu", BUDGET) == "champions moved: linear v1 → v2"
    assert kept.stale_because({"linear": "1", "textcnn": "1", "bert": "1"}, "cpu", BUDGET) == (
        "champions moved: bert none → v1"
    )
    assert kept.stale_because({"linear": "1", "textcnn": "1"}, "cuda (H200)", BUDGET) == (
        "decided on cpu, predicting on cuda (H200)"
    )
    assert kept.stale_because({"linear": "1", "textcnn": "1"}, "cpu", None) == "budget 3,600 → no s per 100k items"
    # a record whose choice is not its kind's champion (written half-way) is stale too
    odd = ServingRecord.of(
        choose_serving(S, [candidate("linear", 0.8, 5.0, version="2")], "micro_f1", BUDGET), {"linear": "1"}, "cpu", ""
    )
    assert odd.stale_because({"linear": "1"}, "cpu", BUDGET) == f"autotag.{S}.linear v2 is not the linear champion"


def test_speed_is_timed_over_up_to_max_items_cycling_short_splits(tmp_path):
    for seed, split in enumerate(("train", "dev", "test")):
        rows(200, seed).write_parquet(tmp_path / f"{split}.parquet")
    manifest = {"gate": [GATE], "labels": LABELS, "rare_labels": []}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    model = train_scheme_model("linear", LinearConfig(min_df=1), tmp_path).model
    texts = [f"新车谍照曝光 {i}" for i in range(100)]
    speed = measure_speed(model, texts, max_items=500)
    assert speed.items == 500 and speed.seconds > 0  # 100 texts, 16 for the warm-up: cycled
    assert speed.seconds_per_100k == pytest.approx(1e5 * speed.seconds / 500)
    assert speed.metrics()["inference.items_per_s"] == pytest.approx(500 / speed.seconds)
    slow = measure_speed(model, texts, max_items=100_000, max_seconds=0.0)
    assert slow.items == 32  # one timed batch at least, then the time cap stops it
    assert measure_speed(model, []) is None
