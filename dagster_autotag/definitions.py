"""The code location: every layer's assets, checks and jobs, plus the resources they share.

Source of the exports: AUTOTAG_SOURCE=landing (default; $AUTOTAG_HOME/landing) or hive
(HiveServer2 via pyhive, configured by AUTOTAG_HIVE_* environment variables).
"""

import os

import dagster as dg

from dagster_autotag.analytics.assets import DUCKDB_VIEWS_KEY, analytics_assets
from dagster_autotag.automation import build_landing_sensor, build_schedules, retrain_job
from dagster_autotag.automation.executor import forkserver_executor
from dagster_autotag.clean.table_steps import table_steps
from dagster_autotag.corpus.assets import build_corpus_assets
from dagster_autotag.corpus.config import CorpusConfig, load_corpus_config
from dagster_autotag.predict.assets import build_prediction_assets
from dagster_autotag.resources import ExportSource, LakeResource, MlflowResource, export_source_from_env
from dagster_autotag.train.assets import build_training_assets

DAILY_JOB = "daily_ingest"
NIGHTLY_JOB = "daily_pipeline"
DATASETS_JOB = "build_datasets"
TRAIN_JOB = "train_models"
PREDICT_JOB = "predict_daily"


daily_ingest_job = dg.define_asset_job(
    DAILY_JOB,
    selection=dg.AssetSelection.groups("ingest", "clean", "corpus"),
    description="Hive exports of one day → raw → clean → corpus Parquet and label distribution, with their checks.",
)
datasets_job = dg.define_asset_job(
    DATASETS_JOB,
    selection=dg.AssetSelection.groups("datasets"),
    description="train/dev/test splits of every scheme over the trailing window of corpus partitions.",
)
train_job = dg.define_asset_job(
    TRAIN_JOB,
    selection=dg.AssetSelection.groups("models"),
    description="Every scheme × model type: train, evaluate, log to MLflow, register, promote (one at a time).",
)
predict_job = dg.define_asset_job(
    PREDICT_JOB,
    selection=dg.AssetSelection.groups("predictions") | dg.AssetSelection.assets(DUCKDB_VIEWS_KEY),
    description="Champion labels for one day's corpus, drift checks, then publish and refresh the DuckDB "
    "views unless label_drift is ERROR.",
)
# What the 02:00 schedule and the landing sensor run: the whole day, from exports to analysts.
nightly_job = dg.define_asset_job(
    NIGHTLY_JOB,
    selection=dg.AssetSelection.groups("ingest", "clean", "corpus", "predictions")
    | dg.AssetSelection.assets(DUCKDB_VIEWS_KEY),
    description="One day end to end: exports → raw → clean → corpus → champion labels → drift checks → "
    "publish → DuckDB views (the last two not when label_drift is ERROR).",
)


def build_definitions(
    export_source: ExportSource | None = None,
    lake: LakeResource | None = None,
    corpus_config: CorpusConfig | None = None,
    mlflow: MlflowResource | None = None,
) -> dg.Definitions:
    """corpus_config: default = corpus.yaml in the package, or the file $AUTOTAG_CORPUS_CONFIG names."""
    corpus_config = corpus_config or load_corpus_config()
    return dg.Definitions(
        assets=[
            *table_steps,
            *build_corpus_assets(corpus_config),
            *build_training_assets(list(corpus_config.schemes.values())),
            *build_prediction_assets(list(corpus_config.schemes.values())),
            *analytics_assets,
        ],
        jobs=[daily_ingest_job, datasets_job, train_job, predict_job, nightly_job, retrain_job],
        schedules=build_schedules(nightly_job, retrain_job),
        sensors=[build_landing_sensor(nightly_job)],
        executor=forkserver_executor,
        resources={
            "export_source": export_source or export_source_from_env(),
            "lake": lake
            or LakeResource(quarantine_share_limit=float(os.environ.get("AUTOTAG_QUARANTINE_LIMIT", "0.01"))),
            "mlflow": mlflow or MlflowResource(),
        },
    )


defs = build_definitions()
