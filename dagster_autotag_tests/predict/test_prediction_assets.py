"""predictions/daily_labels and predictions/published through Dagster, on a copy of the demo home
(corpus/items 2024-05-01..03, datasets, MLflow champions of p0_newcar)."""

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
from dagster_autotag.predict.assets import DRIFT_FILE, LABELS_KEY, PUBLISHED_KEY, TABLE_COLUMNS, build_prediction_assets
from dagster_autotag.predict.batch import MODEL_SCHEMA, PREDICTION_SCHEMA
from dagster_autotag.predict.champion import load_champion
from dagster_autotag.predict.reference import cached_reference_profile
from dagster_autotag.resources import LakeResource, LandingExportSource, MlflowResource
from dagster_autotag.train.registry import CHAMPION
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


def test_the_assets_are_in_the_code_location():
    merged = build_definitions(export_source=LandingExportSource(landing_dir="/nonexistent"))
    graph = merged.resolve_asset_graph()
    assert graph.get(LABELS_KEY).group_name == graph.get(PUBLISHED_KEY).group_name == "predictions"
    assert graph.get(LABELS_KEY).parent_keys == {dg.AssetKey(["corpus", "items"])}
    assert graph.get(PUBLISHED_KEY).parent_keys == {LABELS_KEY}
    assert graph.get(LABELS_KEY).partitions_def == graph.get(dg.AssetKey(["corpus", "items"])).partitions_def
    labels = next(a for a in merged.assets if LABELS_KEY in a.keys)
    specs = {c.name: c for c in labels.check_specs}
    assert specs["label_drift"].blocking and not specs["input_drift"].blocking


def test_predicts_a_demo_day_with_shipped_labels_only_and_publishes_it(home_copy):
    dt = "2024-05-03"
    result = dg.materialize(prediction_assets(), partition_key=dt, resources=resources(home_copy))
    assert result.success
    assert check_outcomes(result) == {
        "predictions/daily_labels:label_drift": True,
        "predictions/daily_labels:input_drift": True,  # compared with 05-01 and 05-02
    }
    table = pl.read_parquet(home_copy / "lake/predictions/daily_labels" / f"dt={dt}" / "part-0.parquet")
    assert table.columns == TABLE_COLUMNS and "dt" not in table.columns  # dt only in the path
    assert {c: table.schema[c] for c in [*PREDICTION_SCHEMA, *MODEL_SCHEMA]} == {**PREDICTION_SCHEMA, **MODEL_SCHEMA}
    corpus = pl.read_parquet(home_copy / "lake/corpus/items" / f"dt={dt}" / "part-0.parquet")
    assert table.height == corpus.height and set(table["scheme"]) == {SCHEME}
    assert table["itemid"].to_list() == corpus["itemid"].to_list()

    client = mlflow.MlflowClient(tracking_uri(home_copy))
    champion = client.get_model_version_by_alias(f"autotag.{SCHEME}.ensemble", CHAMPION)  # the default kind
    assert set(table["model_name"]) == {f"autotag.{SCHEME}.ensemble"}
    assert set(table["model_version"]) == {str(champion.version)} and set(table["model_run_id"]) == {champion.run_id}
    meta = materializations(result)["predictions/daily_labels"]
    shipped = set(meta["models"].value[SCHEME]["shipped"])
    assert GATE in shipped and meta[f"champion/{SCHEME}"].value.startswith(f"autotag.{SCHEME}.ensemble v")

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


def spy_shot_partition(home, dt: str) -> None:
    """A day on which every item is 谍照 news: real items of the demo days, repeated to 400."""
    lake = home / "lake"
    days = [pl.read_parquet(lake / "corpus/items" / f"dt=2024-05-0{d}" / "part-0.parquet") for d in (1, 2, 3)]
    spy = pl.concat(days).filter(pl.col(f"{SCHEME}_labels").list.contains(SPY))
    copies = [spy.with_columns(pl.col("itemid") + f"-{k}") for k in range(400 // spy.height + 1)]
    write_partition(lake, "corpus", "items", dt, pl.concat(copies).head(400))


def test_a_drifted_partition_fails_label_drift_and_is_not_published(home_copy):
    dt = "2024-05-04"
    spy_shot_partition(home_copy, dt)
    config = {"ops": {"predictions__daily_labels": {"config": {"model_kinds": {SCHEME: "linear"}}}}}
    result = dg.materialize(
        prediction_assets(), partition_key=dt, resources=resources(home_copy), run_config=config, raise_on_error=False
    )
    assert not result.success
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

    # A later run of published alone refuses too, unless forced.
    publish = [a for a in prediction_assets() if a.key == PUBLISHED_KEY]
    alone = dg.materialize(publish, partition_key=dt, resources=resources(home_copy), raise_on_error=False)
    assert not alone.success and not published_dir.exists()
    failure = next(e for e in alone.all_events if e.is_step_failure)
    assert "label_drift was ERROR" in failure.step_failure_data.error.to_string()
    forced = {"ops": {"predictions__published": {"config": {"force": True}}}}
    assert dg.materialize(publish, partition_key=dt, resources=resources(home_copy), run_config=forced).success
    assert (published_dir / "part-0.parquet").exists()


def test_without_a_champion_the_run_says_how_to_train_one(home_copy, tmp_path):
    empty_store = f"sqlite:///{tmp_path / 'empty-mlflow.db'}"
    result = dg.materialize(
        prediction_assets(), partition_key="2024-05-01", resources=resources(home_copy, empty_store),
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.to_string()
    assert "no champion model for scheme 'p0_newcar'" in message
    assert "autotag.p0_newcar.ensemble@champion" in message and "autotag.p0_newcar.linear@champion" in message
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
