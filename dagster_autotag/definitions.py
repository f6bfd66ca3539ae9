"""The code location: every layer's assets and checks, the jobs (jobs.py) with their schedules and
sensor (automation/), plus the resources they share.

Source of the exports: AUTOTAG_SOURCE=landing (default; $AUTOTAG_HOME/landing) or hive
(HiveServer2 via pyhive, configured by AUTOTAG_HIVE_* environment variables).
"""

import os

import dagster as dg

from dagster_autotag.analytics.assets import analytics_assets
from dagster_autotag.automation import build_landing_sensor, build_schedules
from dagster_autotag.automation.alerts import build_run_failure_alert_sensor
from dagster_autotag.automation.executor import forkserver_executor
from dagster_autotag.automation.freshness import build_freshness_sensor
from dagster_autotag.automation.retention import apply_retention_job, build_retention_schedule
from dagster_autotag.automation.review_sensor import build_review_sensor
from dagster_autotag.clean.raw_step import raw_key
from dagster_autotag.clean.table_steps import table_steps
from dagster_autotag.corpus.assets import build_corpus_assets
from dagster_autotag.corpus.config import CorpusConfig, load_corpus_config
from dagster_autotag.ingest.tables import EXPORT_TABLES
from dagster_autotag.jobs import (
    INGEST_TO_PUBLISH_JOB,
    JOBS,
    PULL_REVIEW_CORRECTIONS_JOB,
    RETRAIN_DATASETS_AND_MODELS_JOB,
)
from dagster_autotag.predict.assets import build_prediction_assets, build_serving_assets
from dagster_autotag.quality.assets import build_label_issues_asset
from dagster_autotag.resources import (
    ExportSource,
    LabelStudioResource,
    LakeResource,
    MlflowResource,
    export_source_from_env,
)
from dagster_autotag.review.assets import build_review_assets
from dagster_autotag.train.assets import build_training_assets


def build_definitions(
    export_source: ExportSource | None = None,
    lake: LakeResource | None = None,
    corpus_config: CorpusConfig | None = None,
    mlflow: MlflowResource | None = None,
    label_studio: LabelStudioResource | None = None,
) -> dg.Definitions:
    """corpus_config: default = corpus.yaml in the package, or the file $AUTOTAG_CORPUS_CONFIG names."""
    corpus_config = corpus_config or load_corpus_config()
    schemes = list(corpus_config.schemes.values())
    return dg.Definitions(
        assets=[
            *table_steps,
            *build_corpus_assets(corpus_config),
            *build_training_assets(schemes),
            *build_serving_assets(schemes),
            *build_prediction_assets(schemes),
            *[build_label_issues_asset(s) for s in schemes],
            *analytics_assets,
            *build_review_assets(schemes),
        ],
        jobs=[*JOBS, apply_retention_job],
        schedules=[
            *build_schedules(INGEST_TO_PUBLISH_JOB, RETRAIN_DATASETS_AND_MODELS_JOB),
            build_retention_schedule(),
        ],
        sensors=[
            build_landing_sensor(INGEST_TO_PUBLISH_JOB),
            build_freshness_sensor([raw_key(t) for t in EXPORT_TABLES.values()]),
            build_run_failure_alert_sensor(),
            build_review_sensor(PULL_REVIEW_CORRECTIONS_JOB),
        ],
        executor=forkserver_executor,
        resources={
            "export_source": export_source or export_source_from_env(),
            "lake": lake
            or LakeResource(quarantine_share_limit=float(os.environ.get("AUTOTAG_QUARANTINE_LIMIT", "0.01"))),
            "mlflow": mlflow or MlflowResource(),
            "label_studio": label_studio or LabelStudioResource(),
        },
    )


defs = build_definitions()
