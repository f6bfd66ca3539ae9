"""An exclusive scheme end to end through the assets (issue #14 §3), on tiny generated exports:
landing → raw → clean → corpus → datasets/topics (the manifest says the data agrees) → linear and
TextCNN softmax models and their ensemble in MLflow → the measured serving model → daily labels
with at most one topic per item, each under its gate."""

import json

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import pytest

from dagster_autotag.corpus.config import parse_corpus_config
from dagster_autotag.definitions import build_definitions
from dagster_autotag.lake import read_partition, write_partition
from dagster_autotag.predict.assets import LABELS_KEY
from dagster_autotag.resources import LakeResource, LandingExportSource, MlflowResource
from dagster_autotag.train.registry import CHAMPION, load_scheme_model, registered_model_name
from dagster_autotag_tests.corpus.bdci import write_landing_partition
from dagster_autotag_tests.demo_home import tracking_uri
from dagster_autotag_tests.test_definitions import materializations

DAYS = ["2024-06-01", "2024-06-02"]
SCHEME, GATE = "topics", "主题"
TOPICS = {"体育": "比赛进球", "财经": "股市上涨", "科技": "芯片发布"}
OTHER = "其他"  # another gate's items: the scheme's negatives
FILLER = "今天记者报道消息表示目前相关方面已经开始进行"
TAGS = [("80000", GATE, "80000", GATE)] + [
    (str(80001 + i), name, f"80000,{80001 + i}", f"{GATE},{name}") for i, name in enumerate(TOPICS)
] + [("81000", OTHER, "81000", OTHER), ("81001", "杂谈", "81000,81001", f"{OTHER},杂谈")]  # fmt: skip


def news_rows(dt: str, n: int, seed: int) -> list[tuple]:
    """news_pool rows: half topic news (one topic tag each), half 其他/杂谈 (no topic cue)."""
    rng = np.random.default_rng(seed)
    names, out = list(TOPICS), []
    for i in range(n):
        words = [FILLER[j : j + 2] for j in rng.integers(0, len(FILLER) - 1, size=5)]
        if rng.random() < 0.5:
            k = int(rng.integers(0, len(names)))
            words.insert(int(rng.integers(0, len(words))), TOPICS[names[k]])
            tag = str(80001 + k)
        else:
            words.insert(0, "天气")
            tag = "81001"
        out.append((f"{dt}-{i}", "".join(words), None, tag, "news", "A", "PGC", f"{dt} 08:00:00"))
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("exclusive_home")
    for seed, dt in enumerate(DAYS):
        tags = [(i, name, "内容标签", path, path_name, "1") for i, name, path, path_name in TAGS]
        write_landing_partition(
            home / "landing", dt, {"news_pool": news_rows(dt, 260, seed), "asr": [], "ocr": [], "tag_dim": tags}
        )
    return home


@pytest.fixture(scope="module")
def pipeline(home):
    config = parse_corpus_config(
        {"schemes": {SCHEME: {"gate": [GATE], "label_level": 2, "exclusive": True}}}, source="test_exclusive_assets"
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("AUTOTAG_HOME", str(home))  # MLflow artifacts under this home
    defs = build_definitions(
        export_source=LandingExportSource(landing_dir=str(home / "landing")),
        lake=LakeResource(home=str(home)),
        corpus_config=config,
        mlflow=MlflowResource(tracking_uri=tracking_uri(home)),
    )
    assets, resources = list(defs.assets), dict(defs.resources)
    daily = dg.AssetSelection.groups("ingest", "clean", "corpus")
    for dt in DAYS:
        assert dg.materialize(assets, partition_key=dt, resources=resources, selection=daily).success
    models = dg.AssetSelection.assets(
        *(dg.AssetKey(["models", SCHEME, k]) for k in ("linear", "textcnn", "ensemble", "serving"))
    )
    tiny_cnn = {"embed_dim": 16, "num_filters": 16, "max_epochs": 4, "max_len": 24, "lr": 0.01, "min_freq": 1}
    run_config = {
        "ops": {
            f"datasets__{SCHEME}": {"config": {"min_examples_per_split": 1}},
            f"models__{SCHEME}__linear": {"config": {"min_df": 1}},
            f"models__{SCHEME}__textcnn": {"config": {**tiny_cnn, "threshold_folds": 2}},
        }
    }
    trained = dg.materialize(
        assets, resources=resources, selection=dg.AssetSelection.assets(dg.AssetKey(["datasets", SCHEME])) | models,
        run_config=run_config,
    )  # fmt: skip
    assert trained.success
    drift = {"ops": {"predictions__daily_labels": {"config": {"drift_warn": 0.5, "drift_error": 0.9}}}}
    predicted = dg.materialize(
        assets, partition_key=DAYS[1], resources=resources, selection=dg.AssetSelection.assets(LABELS_KEY),
        run_config=drift, raise_on_error=False,
    )  # fmt: skip
    yield trained, predicted, defs
    mp.undo()


def test_the_manifest_says_the_data_is_single_label(home, pipeline):
    manifest = json.loads((home / "lake/datasets" / SCHEME / "manifest.json").read_text(encoding="utf-8"))
    report = manifest["exclusive"]
    assert report["declared"] and report["data_agrees"] and report["several_labels"] == 0
    assert report["gate_positives"] > 100
    meta = materializations(pipeline[0])[f"datasets/{SCHEME}"]
    assert meta["exclusive"].value == report


def champion(home, kind: str):
    mlflow.set_tracking_uri(tracking_uri(home))
    return load_scheme_model(f"models:/{registered_model_name(SCHEME, kind)}@{CHAMPION}")


def test_every_kind_and_the_ensemble_are_softmax_models_in_the_registry(home, pipeline):
    meta = materializations(pipeline[0])
    for kind in ("linear", "textcnn", "ensemble"):
        assert meta[f"models/{SCHEME}/{kind}"]["promoted"].value is True, kind
        assert champion(home, kind).exclusive, kind
    linear = champion(home, "linear")
    assert linear.label_model.softmax and set(linear.shipped_targets()) >= {f"{GATE}/{t}" for t in TOPICS}


def test_daily_labels_carry_one_topic_under_the_gate(home, pipeline):
    predicted = pipeline[1]
    assert predicted.get_asset_materialization_events(), "predictions/daily_labels was not written"
    table = pl.read_parquet(home / "lake/predictions/daily_labels" / f"dt={DAYS[1]}" / "part-0.parquet")
    topics = table["labels"].list.eval(pl.element().filter(pl.element().str.starts_with(GATE + "/")))
    assert (topics.list.len() <= 1).all() and (topics.list.len() > 0).sum() > 50
    assert (table.filter(topics.list.len() > 0)["gate"]).all()
    # the generated cue decides the topic: the model's choice matches it
    corpus = pl.read_parquet(home / "lake/corpus/items" / f"dt={DAYS[1]}" / "part-0.parquet")
    truth = dict(zip(corpus["itemid"], corpus[f"{SCHEME}_labels"].to_list()))
    right = sum(t == truth[i] for i, t in zip(table["itemid"], topics.to_list()) if t)
    assert right / (topics.list.len() > 0).sum() >= 0.95


def test_a_topic_retired_since_training_is_masked_and_listed(home, pipeline):
    """Last in this module: it rewrites the day's taxonomy and predictions."""
    defs, retired = pipeline[2], f"{GATE}/体育"
    lake = home / "lake"
    tags = read_partition(lake, "clean", "tags", DAYS[1]).collect()
    write_partition(lake, "clean", "tags", DAYS[1], tags.filter(pl.col("name_path") != retired))
    drift = {"ops": {"predictions__daily_labels": {"config": {"drift_warn": 0.5, "drift_error": 0.9}}}}
    result = dg.materialize(
        list(defs.assets), partition_key=DAYS[1], resources=dict(defs.resources),
        selection=dg.AssetSelection.assets(LABELS_KEY), run_config=drift, raise_on_error=False,
    )  # fmt: skip
    model = materializations(result)["predictions/daily_labels"]["models"].value[SCHEME]
    assert model["taxonomy"] == {"retired_masked": [retired], "added_not_predicted": []}
    table = pl.read_parquet(lake / "predictions/daily_labels" / f"dt={DAYS[1]}" / "part-0.parquet")
    predicted = set(table["labels"].explode().drop_nulls())
    assert retired not in predicted and f"{GATE}/财经" in predicted  # the others still predicted
    assert retired not in set(table["scores"].explode().struct.field("label"))
    # the registry's champion is untouched: it still ships the label
    assert (
        retired in champion(home, "linear").shipped_targets() or retired in champion(home, "ensemble").shipped_targets()
    )
