"""Every job of the code location, and the names the schedules, the sensor, the demo and the tests use.

Jobs select asset groups; definitions.py adds them to the location, and automation/ builds the
schedules and the landing sensor from their names.

Backfills (Materialize → partition range in the UI) run one partition per run: the daily assets
read `context.partition_key` (one day). That is Dagster's default for assets without a backfill
policy, so none is set (passing `backfill_policy` prints a BetaWarning in 1.13); test_backfill.py's
30-day backfill through the daemon checks one partition per run. How many of those runs execute at
once is the instance's run queue (dagster.yaml, written by demo.ensure_dagster_home):

    concurrency:
      runs:
        max_concurrent_runs: 2
        tag_concurrency_limits:
          - key: dagster/partition     # the sensor's and the schedule's run of one day never overlap
            value: {applyLimitPerUniqueValue: true}
            limit: 1
"""

import dagster as dg

INGEST_TO_CORPUS_JOB = "ingest_to_corpus"
INGEST_TO_PUBLISH_JOB = "ingest_to_publish"
BUILD_DATASETS_JOB = "build_datasets"
TRAIN_MODELS_JOB = "train_models"
PREDICT_AND_PUBLISH_JOB = "predict_and_publish"
RETRAIN_DATASETS_AND_MODELS_JOB = "retrain_datasets_and_models"
APPLY_RETENTION_JOB = "apply_retention"  # an op job (no assets): automation/retention.py
SEND_REVIEW_TASKS_JOB = "send_review_tasks"
PULL_REVIEW_CORRECTIONS_JOB = "pull_review_corrections"

ingest_to_corpus_job = dg.define_asset_job(
    INGEST_TO_CORPUS_JOB,
    selection=dg.AssetSelection.groups("ingest", "clean", "corpus"),
    description="Hive exports of one day → raw → clean → corpus Parquet and label distribution, with their checks.",
)
build_datasets_job = dg.define_asset_job(
    BUILD_DATASETS_JOB,
    selection=dg.AssetSelection.groups("datasets"),
    description="train/dev/test splits of every scheme over the trailing window of corpus partitions.",
)
train_models_job = dg.define_asset_job(
    TRAIN_MODELS_JOB,
    selection=dg.AssetSelection.groups("models"),
    description="Every scheme × model type: train, evaluate, log to MLflow, register, promote (one at a time).",
)
predict_and_publish_job = dg.define_asset_job(
    PREDICT_AND_PUBLISH_JOB,
    selection=dg.AssetSelection.groups("predictions", "analytics"),
    description="Champion labels for one day's corpus, drift checks, then publish and refresh the DuckDB "
    "views unless label_drift is ERROR.",
)
# What the 02:00 schedule and the landing sensor run: the whole day, from exports to analysts.
ingest_to_publish_job = dg.define_asset_job(
    INGEST_TO_PUBLISH_JOB,
    selection=dg.AssetSelection.groups("ingest", "clean", "corpus", "predictions", "analytics"),
    description="One day end to end: exports → raw → clean → corpus → champion labels → drift checks → "
    "publish → DuckDB views (the last two not when label_drift is ERROR).",
)
# One run for datasets and models: the models depend on the datasets, so they train on the splits
# built minutes before in the same run (two schedules would race when the split takes long).
retrain_datasets_and_models_job = dg.define_asset_job(
    RETRAIN_DATASETS_AND_MODELS_JOB,
    selection=dg.AssetSelection.groups("datasets", "models"),
    description="Nightly: train/dev/test splits over the trailing window, then every model → challenger → promotion.",
)

# Review (issue #17): out of the nightly jobs, since they need a reachable Label Studio.
send_review_tasks_job = dg.define_asset_job(
    SEND_REVIEW_TASKS_JOB,
    selection=dg.AssetSelection.groups("review_tasks"),
    description="One day's audit sample and hard cases of every scheme → Label Studio tasks.",
)
pull_review_corrections_job = dg.define_asset_job(
    PULL_REVIEW_CORRECTIONS_JOB,
    selection=dg.AssetSelection.groups("review_corrections"),
    description="Reviewers' completed annotations from Label Studio → lake/review/corrections (upsert), audited precision.",
)

JOBS = [
    ingest_to_corpus_job,
    build_datasets_job,
    train_models_job,
    predict_and_publish_job,
    ingest_to_publish_job,
    retrain_datasets_and_models_job,
    send_review_tasks_job,
    pull_review_corrections_job,
]
