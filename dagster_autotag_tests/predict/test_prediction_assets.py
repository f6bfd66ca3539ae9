"""predictions/daily_labels, predictions/published and models/<scheme>/serving through Dagster, on a copy of
the demo home (corpus/items 2024-05-01..03, datasets, MLflow champions of p0_newcar and the serving decision
the demo recorded)."""

import json
import os
import shutil

import dagster as dg
import mlflow
import polars as pl
import pytest

from dagster_autotag.corpus.config import load_corpus_config
from dagster_autotag.definitions import build_definitions
from dagster_autotag.lake import write_partition
from dagster_autotag.predict.assets import (
    DRIFT_FILE,
    LABELS_KEY,
    PUBLISHED_KEY,
    TABLE_COLUMNS,
    build_prediction_assets,
    build_serving_asset,
    serving_key,
)
from dagster_autotag.predict.batch import MODEL_SCHEMA, PREDICTION_SCHEMA
from dagster_autotag.predict.champion import load_champion, read_serving_record, serving_model_name
from dagster_autotag.predict.model_changes import model_changes_path, read_changes
from dagster_autotag.predict.reference import cached_reference_profile
from dagster_autotag.predict.serving import cost_rank, inference_device
from dagster_autotag.resources import LakeResource, LandingExportSource, MlflowResource
from dagster_autotag_tests.demo_home import tracking_uri
from dagster_autotag_tests.test_definitions import check_outcomes, materializations

SCHEME = "p0_newcar"
GATE = "新车资讯"
SPY = "新车资讯/谍照"


@pytest.fixture
def home_copy(demo_home, tmp_path):
    home = tmp_path / "home"
    # the demo already predicted and published its days: start these tests without those outputs
    ignore = shutil.ignore_patterns("landing", "dagster", "predictions", "published")
    shutil.copytree(demo_home.path, home, ignore=ignore)
    return home


def prediction_assets():
    return build_prediction_assets([load_corpus_config().scheme(SCHEME)])


def resources(home, uri: str | None = None) -> dict:
    return {"lake": LakeResource(home=str(home)), "mlflow": MlflowResource(tracking_uri=uri or tracking_uri(home))}


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def serving_record(home):
    return read_serving_record(mlflow.MlflowClient(tracking_uri(home)), SCHEME)


def best_by_measurement(record) -> dict:
    """The row that should serve: the best score within the budget, ties to the cheaper kind."""
    eligible = [r for r in record.rows if r["score"] is not None and r["within_budget"]]
    best = max(r["score"] for r in eligible)
    return min((r for r in eligible if best - r["score"] <= 1e-4), key=lambda r: cost_rank(r["kind"]))


def test_the_assets_are_in_the_code_location():
    merged = build_definitions(export_source=LandingExportSource(landing_dir="/nonexistent"))
    graph = merged.resolve_asset_graph()
    assert graph.get(LABELS_KEY).group_name == graph.get(PUBLISHED_KEY).group_name == "predictions"
    servings = {serving_key("p0_newcar"), serving_key("p1_guide")}
    assert graph.get(LABELS_KEY).parent_keys == {dg.AssetKey(["corpus", "items"]), *servings}
    for key in servings:  # in group models (jobs train_models, retrain_datasets_and_models), after every kind
        assert graph.get(key).group_name == "models"
        scheme = key.path[1]
        assert graph.get(key).parent_keys == {
            dg.AssetKey(["models", scheme, k]) for k in ("linear", "textcnn", "ensemble")
        }
    assert graph.get(PUBLISHED_KEY).parent_keys == {LABELS_KEY}
    assert graph.get(LABELS_KEY).partitions_def == graph.get(dg.AssetKey(["corpus", "items"])).partitions_def
    labels = next(a for a in merged.assets if LABELS_KEY in a.keys)
    specs = {c.name: c for c in labels.check_specs}
    assert specs["label_drift"].blocking and not specs["input_drift"].blocking


def test_predicts_a_demo_day_with_shipped_labels_only_and_publishes_it(home_copy):
    dt = "2024-05-02"
    # 800 items a day: a rare label's share moves by chance past the default WARN (0.1); test_drift.py
    # covers the thresholds, this test the labels and their publishing
    config = {"ops": {"predictions__daily_labels": {"config": {"drift_warn": 0.2, "drift_error": 0.3}}}}
    result = dg.materialize(prediction_assets(), partition_key=dt, resources=resources(home_copy), run_config=config)
    assert result.success
    assert check_outcomes(result) == {
        "predictions/daily_labels:label_drift": True,
        "predictions/daily_labels:input_drift": True,  # compared with 05-01
    }
    table = pl.read_parquet(home_copy / "lake/predictions/daily_labels" / f"dt={dt}" / "part-0.parquet")
    assert table.columns == TABLE_COLUMNS and "dt" not in table.columns  # dt only in the path
    assert {c: table.schema[c] for c in [*PREDICTION_SCHEMA, *MODEL_SCHEMA]} == {**PREDICTION_SCHEMA, **MODEL_SCHEMA}
    corpus = pl.read_parquet(home_copy / "lake/corpus/items" / f"dt={dt}" / "part-0.parquet")
    assert table.height == corpus.height and set(table["scheme"]) == {SCHEME}
    assert table["itemid"].to_list() == corpus["itemid"].to_list()

    # the model the demo's models/p0_newcar/serving recorded: the best on the test split, not a fixed kind
    record = serving_record(home_copy)
    assert record.kind == best_by_measurement(record)["kind"]
    assert set(table["model_name"]) == {record.name} and set(table["model_version"]) == {record.version}
    assert set(table["model_run_id"]) == {record.run_id}
    meta = materializations(result)["predictions/daily_labels"]
    model = meta["models"].value[SCHEME]
    shipped = set(model["shipped"])
    assert GATE in shipped and meta[f"champion/{SCHEME}"].value.startswith(f"{record.name} v{record.version}")
    assert model["decision"].startswith(f"registry ({serving_model_name(SCHEME)}, decided ")  # not decided again
    assert model["why"] == record.reason and len(model["compared"]) == 3
    assert record.reason in meta[f"serving/{SCHEME}"].value and "| ensemble | 1 |" in meta[f"serving/{SCHEME}"].value

    predicted = set(table["labels"].explode().drop_nulls())
    assert predicted and predicted <= shipped  # never an unshipped label
    assert set(table["scores"].explode().struct.field("label")) == shipped
    with_sub = table.filter(pl.col("labels").list.len() > 0)
    assert with_sub["labels"].list.first().to_list() == [GATE] * with_sub.height  # the gate comes first
    assert (table["gate"] == table["labels"].list.contains(GATE)).all()
    assert ((table["gate_score"] >= 0) & (table["gate_score"] <= 1)).all()
    rules = table.filter(pl.col("rule_labels").list.len() > 0)
    assert rules.height > 0 and rules.select(pl.col("labels_all").list.contains("车展/北京车展").all()).item()

    published = home_copy / "lake/published/daily_labels" / f"dt={dt}" / "part-0.parquet"
    assert pl.read_parquet(published).equals(table)
    verdict = json.loads((home_copy / "lake/predictions/daily_labels" / f"dt={dt}" / DRIFT_FILE).read_text())
    assert verdict["label_drift"] == "ok"
    assert len(list((home_copy / "lake/predictions/_reference").glob("*.json"))) == 1  # kept for the next day


def serving_asset():
    return build_serving_asset(load_corpus_config().scheme(SCHEME))


def test_the_serving_asset_records_the_measured_choice_and_a_budget_override_is_not_recorded(home_copy):
    client = mlflow.MlflowClient(tracking_uri(home_copy))
    client.delete_registered_model(serving_model_name(SCHEME))  # as before any decision
    assert serving_record(home_copy) is None
    result = dg.materialize([serving_asset()], resources=resources(home_copy))
    meta = materializations(result)[f"models/{SCHEME}/serving"]
    record = serving_record(home_copy)
    best = best_by_measurement(record)
    assert meta["serving_model"].value == f"{best['model']} v{best['version']}" == record.describe()
    scores = {r["kind"]: r["score"] for r in record.rows}
    assert set(scores) == {"linear", "textcnn", "ensemble"} and all(s is not None for s in scores.values())
    if scores["ensemble"] < max(scores.values()):  # the case: a worse ensemble does not serve
        assert record.kind != "ensemble"
    assert record.champions == {"linear": "1", "textcnn": "1", "ensemble": "1"}
    assert record.budget_s_per_100k == 3600.0 and record.device == inference_device() and record.metric == "micro_f1"
    assert all(0 < r["seconds_per_100k"] < 3600 for r in record.rows)  # measured here, all within the budget
    assert meta["reason"].value == record.reason and "| kind | version | micro_f1 now |" in meta["scores"].value
    assert client.get_registered_model(serving_model_name(SCHEME)).latest_versions == []  # a pointer, no versions

    # This run's budget differs from the scheme's: it decides for itself and leaves the record alone.
    config = {"ops": {"predictions__daily_labels": {"config": {"inference_budgets_s_per_100k": {SCHEME: 1e9}}}}}
    run = dg.materialize(
        prediction_assets(), partition_key="2024-05-02", resources=resources(home_copy), run_config=config
    )
    decision = materializations(run)["predictions/daily_labels"]["models"].value[SCHEME]["decision"]
    assert (
        decision
        == "decided now (budget 3,600 → 1,000,000,000 s per 100k items); not recorded: this run's budget overrides"
    )
    assert serving_record(home_copy) == record


def test_daily_labels_decide_again_when_a_champion_moves(home_copy, monkeypatch):
    """A worse linear model is forced to champion (promotion_tolerance 1): the record no longer holds,
    the next day's run scores every champion again, records the new choice and predicts with it."""
    monkeypatch.setenv("AUTOTAG_HOME", str(home_copy))
    before = serving_record(home_copy)
    defs = build_definitions(
        export_source=LandingExportSource(landing_dir=str(home_copy / "landing")),
        lake=LakeResource(home=str(home_copy)),
        # an experiment of the copy's own: the demo's stores artifacts in the shared demo home
        mlflow=MlflowResource(tracking_uri=tracking_uri(home_copy), experiment="home-copy"),
    )
    linear = next(a for a in defs.assets if dg.AssetKey(["models", SCHEME, "linear"]) in a.keys)
    # C = 1e-6: weights squeezed to ~0, nothing reaches the precision floor; promoted all the same
    worse = {"c": 1e-6, "class_weight": None, "promotion_tolerance": 1.0}
    trained = dg.materialize(
        [linear], resources=defs.resources, run_config={"ops": {f"models__{SCHEME}__linear": {"config": worse}}}
    )
    assert materializations(trained)[f"models/{SCHEME}/linear"]["promoted"].value is True

    result = dg.materialize(prediction_assets(), partition_key="2024-05-03", resources=resources(home_copy))
    model = materializations(result)["predictions/daily_labels"]["models"].value[SCHEME]
    assert model["decision"] == "decided now (champions moved: linear v1 → v2)"
    after = serving_record(home_copy)
    assert after.champions == {**before.champions, "linear": "2"} and after.decided_at >= before.decided_at
    assert after.kind == best_by_measurement(after)["kind"] != "linear"  # v2 scores ~0
    changes = read_changes(model_changes_path(home_copy / "lake"), SCHEME)
    promotion = next(c for c in reversed(changes) if c.action == "promotion")
    assert (promotion.model, promotion.from_version, promotion.to_version) == (f"autotag.{SCHEME}.linear", "1", "2")
    if (after.name, after.version) != (before.name, before.version):  # the model that labels the days changed
        serving = changes[-1]
        assert (serving.action, serving.from_version, serving.to_version) == (
            "serving",
            before.describe(),
            after.version,
        )
    assert {r["kind"]: r["version"] for r in after.rows}["linear"] == "2"
    assert (model["name"], model["version"]) == (after.name, after.version)
    table = pl.read_parquet(home_copy / "lake/predictions/daily_labels/dt=2024-05-03/part-0.parquet")
    assert set(table["model_name"]) == {after.name}


def spy_shot_partition(home, dt: str) -> None:
    """A day on which every item is 谍照 news: real items of the demo days, repeated to 400."""
    lake = home / "lake"
    days = [pl.read_parquet(lake / "corpus/items" / f"dt=2024-05-0{d}" / "part-0.parquet") for d in (1, 2, 3)]
    spy = pl.concat(days).filter(pl.col(f"{SCHEME}_labels").list.contains(SPY))
    copies = [spy.with_columns(pl.col("itemid") + f"-{k}") for k in range(400 // spy.height + 1)]
    write_partition(lake, "corpus", "items", dt, pl.concat(copies).head(400))


def test_a_drifted_partition_fails_label_drift_and_is_not_published(home_copy, alert_webhook):
    dt = "2024-05-04"
    spy_shot_partition(home_copy, dt)
    config = {"ops": {"predictions__daily_labels": {"config": {"model_versions": {SCHEME: "linear:1"}}}}}
    result = dg.materialize(
        prediction_assets(), partition_key=dt, resources=resources(home_copy), run_config=config, raise_on_error=False
    )
    assert not result.success
    pinned = materializations(result)["predictions/daily_labels"]["models"].value[SCHEME]
    assert (pinned["name"], pinned["version"], pinned["decision"]) == (
        f"autotag.{SCHEME}.linear",
        "1",
        "pinned by run config",
    )
    assert pinned["why"] == f"autotag.{SCHEME}.linear v1: pinned by run config (linear:1), not chosen by measurement"
    evaluations = checks(result)
    drift = evaluations["label_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR
    moved = {r.data["label"]: r.data for r in drift.metadata["moved_labels"].records}
    assert (
        moved[GATE]["status"] == "error" and moved[GATE]["current_share"] > 0.8 > 0.3 > moved[GATE]["reference_share"]
    )
    assert moved[SPY]["current_share"] > moved[SPY]["reference_share"]  # linear ships 谍照
    assert "| p0_newcar | gate | 新车资讯 |" in drift.metadata["report"].value
    inputs = evaluations["input_drift"]
    assert inputs.severity == dg.AssetCheckSeverity.WARN and not inputs.passed  # the dtype mix moved too
    # written (and marked) but not published: the blocking check stopped the downstream step
    assert set(materializations(result)) == {"predictions/daily_labels"}
    assert (
        json.loads((home_copy / "lake/predictions/daily_labels" / f"dt={dt}" / DRIFT_FILE).read_text())["label_drift"]
        == "error"
    )
    published_dir = home_copy / "lake/published/daily_labels" / f"dt={dt}"
    assert not published_dir.exists()
    # and someone is told: one POST to the alert webhook, with the day and the run
    [(_, alert)] = alert_webhook.posts
    assert alert["what"].startswith("label drift ERROR") and alert["partition"] == dt
    assert (
        alert["run"] == f"http://dagster.example/runs/{result.run_id}"
        and "| p0_newcar | gate |" in alert["details"]["report"]
    )

    # A later run of published alone refuses too, unless forced.
    publish = [a for a in prediction_assets() if a.key == PUBLISHED_KEY]
    alone = dg.materialize(publish, partition_key=dt, resources=resources(home_copy), raise_on_error=False)
    assert not alone.success and not published_dir.exists()
    failure = next(e for e in alone.all_events if e.is_step_failure)
    assert "label_drift was ERROR" in failure.step_failure_data.error.to_string()
    forced = {"ops": {"predictions__published": {"config": {"force": True}}}}
    assert dg.materialize(publish, partition_key=dt, resources=resources(home_copy), run_config=forced).success
    assert (published_dir / "part-0.parquet").exists()


def test_a_run_pins_a_kind_and_may_not_pin_two(home_copy):
    pin = {"model_kinds": {SCHEME: "textcnn"}}
    result = dg.materialize(
        prediction_assets(), partition_key="2024-05-01", resources=resources(home_copy),
        run_config={"ops": {"predictions__daily_labels": {"config": pin}}},
    )  # fmt: skip
    model = materializations(result)["predictions/daily_labels"]["models"].value[SCHEME]
    assert (model["kind"], model["decision"]) == ("textcnn", "pinned by run config")
    pinned = read_changes(model_changes_path(home_copy / "lake"), SCHEME)[-1]  # the audit log
    assert (pinned.action, pinned.model, pinned.to_version) == ("pin", f"autotag.{SCHEME}.textcnn", model["version"])
    assert pinned.source == f"dagster run {result.run_id} (predictions/daily_labels 2024-05-01)"
    assert pinned.why.startswith("pinned to textcnn") and pinned.who
    both = {**pin, "model_versions": {SCHEME: "linear:1"}}
    clash = dg.materialize(
        prediction_assets(), partition_key="2024-05-01", resources=resources(home_copy), raise_on_error=False,
        run_config={"ops": {"predictions__daily_labels": {"config": both}}},
    )  # fmt: skip
    message = next(e for e in clash.all_events if e.is_step_failure).step_failure_data.error.to_string()
    assert "run config pins p0_newcar twice: model_kinds 'textcnn', model_versions 'linear:1'" in message


def test_a_runner_up_kind_labels_the_day_too_for_review(home_copy):
    """runner_up_kinds: a second kind's champion labels the day into runner_up_labels (review/tasks sends
    disagreements as hard cases); without it the column is null; the serving kind itself is refused."""
    from dagster_autotag.lake import read_partition
    from dagster_autotag.predict.batch import predict_items

    config = {"model_kinds": {SCHEME: "textcnn"}, "runner_up_kinds": {SCHEME: "linear"}}
    result = dg.materialize(
        prediction_assets(), partition_key="2024-05-01", resources=resources(home_copy),
        run_config={"ops": {"predictions__daily_labels": {"config": config}}},
    )  # fmt: skip
    meta = materializations(result)["predictions/daily_labels"]
    linear = load_champion(tracking_uri(home_copy), SCHEME, ["linear"])
    assert meta[f"runner_up/{SCHEME}"].value == linear.describe()
    table = pl.read_parquet(home_copy / "lake/predictions/daily_labels/dt=2024-05-01/part-0.parquet")
    assert table.columns == TABLE_COLUMNS and table["model_name"].unique().to_list() == [f"autotag.{SCHEME}.textcnn"]
    corpus = read_partition(home_copy / "lake", "corpus", "items", "2024-05-01").collect()
    expected = predict_items(corpus.select("itemid", "dtype", "text"), linear.model)
    got = table.join(expected.select("itemid", pl.col("labels").alias("linear")), on="itemid")
    assert got.height == corpus.height and got["runner_up_labels"].to_list() == got["linear"].to_list()
    assert (got["runner_up_labels"] != got["labels"]).any()  # the two kinds disagree somewhere: hard cases

    plain = dg.materialize(prediction_assets(), partition_key="2024-05-02", resources=resources(home_copy))
    assert plain.success
    table = pl.read_parquet(home_copy / "lake/predictions/daily_labels/dt=2024-05-02/part-0.parquet")
    assert table["runner_up_labels"].null_count() == table.height
    same = {"model_kinds": {SCHEME: "linear"}, "runner_up_kinds": {SCHEME: "linear"}}
    refused = dg.materialize(
        prediction_assets(), partition_key="2024-05-01", resources=resources(home_copy), raise_on_error=False,
        run_config={"ops": {"predictions__daily_labels": {"config": same}}},
    )  # fmt: skip
    message = next(e for e in refused.all_events if e.is_step_failure).step_failure_data.error.to_string()
    assert "p0_newcar's runner-up 'linear' is its serving kind" in message


def test_without_a_champion_the_run_says_how_to_train_one(home_copy, tmp_path):
    empty_store = f"sqlite:///{tmp_path / 'empty-mlflow.db'}"
    result = dg.materialize(
        prediction_assets(), partition_key="2024-05-01", resources=resources(home_copy, empty_store),
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.to_string()
    assert "no champion model for scheme 'p0_newcar' (no autotag.p0_newcar.<kind> has a champion alias)" in message
    assert "materialize datasets/p0_newcar" in message and "models/p0_newcar/linear" in message
    assert "train_models" in message
    assert not (home_copy / "lake/predictions/daily_labels/dt=2024-05-01").exists()


def test_the_reference_profile_is_computed_once_per_champion_and_dataset(home_copy, tmp_path):
    champion = load_champion(tracking_uri(home_copy), SCHEME, ["linear"])
    calls = []
    original = champion.model.predict_proba
    champion.model.predict_proba = lambda texts: calls.append(len(texts)) or original(texts)
    dataset = home_copy / "lake/datasets" / SCHEME
    first = cached_reference_profile(tmp_path, champion.describe(), champion.model, dataset)
    assert calls and first.items > 0
    calls.clear()
    assert cached_reference_profile(tmp_path, champion.describe(), champion.model, dataset) == first
    assert not calls  # read back, not predicted again
    os.utime(dataset / "dev.parquet", ns=(1, 1))  # the dataset was rebuilt: profile it again
    assert cached_reference_profile(tmp_path, champion.describe(), champion.model, dataset) == first
    assert calls
