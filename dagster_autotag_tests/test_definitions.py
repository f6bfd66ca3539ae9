"""The code location as Dagster sees it, and partitions materialised through Dagster itself."""

import re

import dagster as dg
import polars as pl
import pytest

from dagster_autotag.analytics.assets import DUCKDB_VIEWS_KEY
from dagster_autotag.clean.table_steps import table_steps
from dagster_autotag.definitions import build_definitions
from dagster_autotag.jobs import (
    BUILD_DATASETS_JOB,
    INGEST_TO_CORPUS_JOB,
    INGEST_TO_PUBLISH_JOB,
    PREDICT_AND_PUBLISH_JOB,
    TRAIN_MODELS_JOB,
)
from dagster_autotag.partitions import daily_partitions
from dagster_autotag.predict.champion import how_to_train
from dagster_autotag.resources import LakeResource, LandingExportSource
from dagster_autotag_tests.landing_data import write_partition

DT = "2024-05-01"


def resources(tmp_path, limit=0.01):
    return {
        "export_source": LandingExportSource(landing_dir=str(tmp_path / "landing")),
        "lake": LakeResource(home=str(tmp_path), quarantine_share_limit=limit),
    }


def check_outcomes(result) -> dict[str, bool]:
    return {
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.asset_check_key.name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def materializations(result) -> dict[str, dict]:
    return {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def test_location_has_all_assets_grouped_with_checks_and_one_partitions_definition(location):
    graph = location.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {
        "raw/news_pool": "ingest",
        "raw/asr": "ingest",
        "raw/ocr": "ingest",
        "raw/tag_dim": "ingest",
        "clean/news_items": "clean",
        "clean/video_asr": "clean",
        "clean/video_ocr": "clean",
        "clean/tags": "clean",
        "corpus/items": "corpus",
        "corpus/label_distribution": "corpus",
        "datasets/p0_newcar": "datasets",
        "datasets/p1_guide": "datasets",
        "quality/label_issues/p0_newcar": "datasets",
        "quality/label_issues/p1_guide": "datasets",
        **{
            f"models/{s}/{k}": "models"
            for s in ("p0_newcar", "p1_guide")
            for k in ("linear", "textcnn", "ensemble", "serving")
        },
        "predictions/daily_labels": "predictions",
        "predictions/published": "predictions",
        "analytics/duckdb_views": "analytics",
        "review/tasks": "review_tasks",
        "review/corrections": "review_corrections",
    }
    daily = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    windowed = ("datasets/", "models/", "analytics/", "quality/", "review/corrections")
    assert {k for k in groups if not k.startswith(windowed)} == daily  # they read windows, not days
    partitions = {graph.get(k).partitions_def for k in graph.get_all_asset_keys()} - {None}
    assert len(partitions) == 1 and next(iter(partitions)).timezone == "Asia/Shanghai"
    checks = {f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys}
    assert {
        "raw/news_pool:schema_contract",
        "raw/news_pool:quarantine_share",
        "raw/news_pool:not_empty",
        "raw/news_pool:export_freshness",
        "clean/news_items:itemid_unique",
        "corpus/items:itemid_unique",
        "datasets/p0_newcar:no_item_in_two_splits",
        "datasets/p0_newcar:sub_label_implies_gate",
        "datasets/p0_newcar:labels_in_every_split",
    } <= checks


# What each job runs, by asset group: the job names promise it (jobs.py).
JOB_GROUPS = {
    "ingest_to_corpus": {"ingest", "clean", "corpus"},
    "build_datasets": {"datasets"},
    "train_models": {"models"},
    "predict_and_publish": {"predictions", "analytics"},
    "ingest_to_publish": {"ingest", "clean", "corpus", "predictions", "analytics"},
    "retrain_datasets_and_models": {"datasets", "models"},
    "apply_retention": set(),  # an op job: no assets
    "send_review_tasks": {"review_tasks"},
    "pull_review_corrections": {"review_corrections"},
}


def test_each_job_runs_the_groups_its_name_says(location):
    graph = location.resolve_asset_graph()
    jobs = {
        job.name for job in location.resolve_all_job_defs() if not job.name.startswith("__")
    }  # not the implicit one
    assert jobs == set(JOB_GROUPS)
    for name, groups in JOB_GROUPS.items():
        keys = location.resolve_job_def(name).asset_layer.executable_asset_keys
        assert {graph.get(k).group_name for k in keys} == groups, name
        assert keys == {k for k in graph.get_all_asset_keys() if graph.get(k).group_name in groups}, name
    # the DuckDB views have no automation condition: these two jobs are what refreshes them
    with_views = {
        n for n in JOB_GROUPS if DUCKDB_VIEWS_KEY in location.resolve_job_def(n).asset_layer.executable_asset_keys
    }
    assert with_views == {PREDICT_AND_PUBLISH_JOB, INGEST_TO_PUBLISH_JOB}


def test_the_no_champion_hint_names_jobs_that_run_what_it_asks_for(location):
    """predict/champion.py stays free of Dagster, so its hint spells the job names out: they must exist."""
    hint = how_to_train("p0_newcar")
    named = re.findall(r"\(job (\w+)\)", hint)
    assert named == [BUILD_DATASETS_JOB, TRAIN_MODELS_JOB], hint
    for job, asset in zip(named, ["datasets/p0_newcar", "models/p0_newcar/linear"]):
        keys = location.resolve_job_def(job).asset_layer.executable_asset_keys
        assert dg.AssetKey.from_user_string(asset) in keys and asset in hint


def test_definitions_are_loadable(location):
    """What `dagster definitions validate` checks in-process (`make test` runs the CLI on workspace.yaml
    before pytest): unique names, resolvable jobs, satisfied resources, and schedules and sensors
    that name jobs of the location."""
    dg.Definitions.validate_loadable(location)


def test_materialize_a_partition_through_dagster(tmp_path):
    write_partition(tmp_path / "landing", DT, n_news=30)
    result = dg.materialize(table_steps, partition_key=DT, resources=resources(tmp_path))
    assert result.success
    outcomes = check_outcomes(result)
    assert len(outcomes) == 24 and all(outcomes.values()), outcomes  # export_freshness: passed on arrival

    news_meta = materializations(result)["clean/news_items"]
    assert news_meta["rows_out"].value == 30
    assert {"path", "preview", "dagster/row_count"} <= set(news_meta)
    items = pl.read_parquet(tmp_path / "lake/clean/news_items" / f"dt={DT}" / "part-0.parquet")
    assert items.height == 30 and items["itemid"].is_unique().all()


def test_each_table_is_one_step_and_a_clean_asset_can_be_rebuilt_alone(tmp_path):
    write_partition(tmp_path / "landing", DT, n_news=12)
    both = dg.materialize(table_steps, partition_key=DT, resources=resources(tmp_path))
    steps = {e.step_key for e in both.get_asset_materialization_events()}
    assert len(steps) == 4 and len(materializations(both)) == 8  # raw + clean per table, one step each

    items = tmp_path / "lake/clean/news_items" / f"dt={DT}" / "part-0.parquet"
    written = items.read_bytes()
    items.unlink()
    clean_only = dg.materialize(
        table_steps,
        selection=dg.AssetSelection.assets(dg.AssetKey(["clean", "news_items"])),
        partition_key=DT,
        resources=resources(tmp_path),
    )
    assert set(materializations(clean_only)) == {"clean/news_items"}  # raw/news_pool not re-ingested
    assert set(check_outcomes(clean_only)) == {"clean/news_items:itemid_unique", "clean/news_items:not_empty"}
    assert items.read_bytes() == written


def test_too_much_quarantine_fails_the_blocking_check_and_stops_clean(tmp_path):
    write_partition(tmp_path / "landing", DT, n_news=20, bad_news=5)  # 5 of 25 rows quarantined
    result = dg.materialize(
        table_steps, partition_key=DT, resources=resources(tmp_path, limit=0.01), raise_on_error=False
    )
    outcomes = check_outcomes(result)
    assert outcomes["raw/news_pool:quarantine_share"] is False
    materialized = set(materializations(result))
    assert "raw/news_pool" in materialized
    assert "clean/news_items" not in materialized  # blocked downstream
    assert "clean/tags" in materialized  # unrelated branches still run


def test_missing_landing_partition_fails_the_asset_with_the_expected_path(tmp_path):
    result = dg.materialize(
        table_steps,
        selection=dg.AssetSelection.assets(dg.AssetKey(["raw", "news_pool"])),
        partition_key=DT,
        resources=resources(tmp_path),
        raise_on_error=False,
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    messages = [error.message] + ([error.cause.message] if error.cause else [])
    assert any("landing/news_pool/dt=2024-05-01" in m for m in messages), messages


def test_build_definitions_accepts_explicit_resources(tmp_path):
    given = resources(tmp_path)
    built = build_definitions(**given)
    assert {key: built.resources[key] for key in given} == given
    assert built.resolve_job_def(INGEST_TO_CORPUS_JOB).partitions_def == daily_partitions


@pytest.mark.parametrize(("env", "kind"), [("AUTOTAG_BERT_MODEL_DIR", "bert"), ("AUTOTAG_ENCODER_DIR", "knn")])
def test_the_asset_list_follows_the_encoder_directories(location_env, tmp_path, env, kind):
    """Why `location` pins the environment: AUTOTAG_BERT_MODEL_DIR adds a bert model per scheme,
    AUTOTAG_ENCODER_DIR a knn model."""
    without = set(build_definitions().resolve_asset_graph().get_all_asset_keys())
    location_env.setenv(env, str(tmp_path))
    with_kind = set(build_definitions().resolve_asset_graph().get_all_asset_keys())
    assert {k.to_user_string() for k in with_kind - without} == {f"models/p0_newcar/{kind}", f"models/p1_guide/{kind}"}


def test_a_pool_without_a_limit_is_reported(tmp_path):
    """Pools throttle cost only (pools.py): an instance without limits is said to be one, in the run log
    and the materialization's metadata; a default limit or one set for the pool is read back."""
    from dagster_autotag.pools import DUCKDB_POOL, TRAINING_POOL, pool_limit, pool_metadata

    with dg.instance_for_test() as instance:
        assert pool_limit(instance, TRAINING_POOL) is None
        context = dg.build_asset_context(instance=instance)
        assert pool_metadata(context, DUCKDB_POOL) == {
            "pool_limit": f"{DUCKDB_POOL}: no limit (runs at once with the others; see the run log)"
        }
        instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, 3)
        assert pool_limit(instance, DUCKDB_POOL) == 3
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance:
        assert pool_limit(instance, TRAINING_POOL) == 1
        assert pool_metadata(dg.build_asset_context(instance=instance), TRAINING_POOL) == {
            "pool_limit": f"{TRAINING_POOL}: 1"
        }


def test_trainings_share_one_pool_limited_to_one_run(location, tmp_path, monkeypatch):
    from dagster_autotag.demo import ensure_dagster_home
    from dagster_autotag.train.assets import TRAINING_POOL

    models = [a for a in location.assets if any(k.path[0] == "models" for k in a.keys)]
    assert models and {a.node_def.pool for a in models} == {TRAINING_POOL}
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:  # the written config is one Dagster accepts
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
