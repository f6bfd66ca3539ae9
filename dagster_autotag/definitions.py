"""The code location: every layer's assets and checks, the jobs (jobs.py) with their schedules and
sensor (automation/), plus the resources they share.

Source of the exports: AUTOTAG_SOURCE=landing (default; $AUTOTAG_HOME/landing) or hive
(HiveServer2 via pyhive, configured by AUTOTAG_HIVE_* environment variables).
"""

import os

import dagster as dg

from dagster_autotag.analytics.assets import analytics_assets
from dagster_autotag.automation import build_landing_sensor, build_schedules
from dagster_autotag.automation.executor import forkserver_executor
from dagster_autotag.clean.table_steps import table_steps
from dagster_autotag.corpus.assets import build_corpus_assets
from dagster_autotag.corpus.config import CorpusConfig, load_corpus_config
from dagster_autotag.jobs import INGEST_TO_PUBLISH_JOB, JOBS, RETRAIN_DATASETS_AND_MODELS_JOB
from dagster_autotag.predict.assets import build_prediction_assets, build_serving_assets
from dagster_autotag.quality.assets import build_label_issues_asset
from dagster_autotag.resources import ExportSource, LakeResource, MlflowResource, export_source_from_env
from dagster_autotag.train.assets import build_training_assets


def build_definitions(
    export_source: ExportSource | None = None,
    lake: LakeResource | None = None,
    corpus_config: CorpusConfig | None = None,
    mlflow: MlflowResource | None = None,
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
        ],
        jobs=JOBS,
        schedules=build_schedules(INGEST_TO_PUBLISH_JOB, RETRAIN_DATASETS_AND_MODELS_JOB),
        sensors=[build_landing_sensor(INGEST_TO_PUBLISH_JOB)],
        executor=forkserver_executor,
        resources={
            "export_source": export_source or export_source_from_env(),
            "lake": lake
            or LakeResource(quarantine_share_limit=float(os.environ.get("AUTOTAG_QUARANTINE_LIMIT", "0.01"))),
            "mlflow": mlflow or MlflowResource(),
        },
    )


defs = build_definitions()
