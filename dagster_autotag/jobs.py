"""Every job of the code location, and the names the schedules, the sensor, the demo and the tests use.

Jobs select asset groups; definitions.py adds them to the location, and automation/ builds the
schedules and the landing sensor from their names.
"""

import dagster as dg

DAILY_JOB = "daily_ingest"
NIGHTLY_JOB = "daily_pipeline"
DATASETS_JOB = "build_datasets"
TRAIN_JOB = "train_models"
PREDICT_JOB = "predict_daily"
RETRAIN_JOB = "nightly_retrain"

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
    selection=dg.AssetSelection.groups("predictions", "analytics"),
    description="Champion labels for one day's corpus, drift checks, then publish and refresh the DuckDB "
    "views unless label_drift is ERROR.",
)
# What the 02:00 schedule and the landing sensor run: the whole day, from exports to analysts.
nightly_job = dg.define_asset_job(
    NIGHTLY_JOB,
    selection=dg.AssetSelection.groups("ingest", "clean", "corpus", "predictions", "analytics"),
    description="One day end to end: exports → raw → clean → corpus → champion labels → drift checks → "
    "publish → DuckDB views (the last two not when label_drift is ERROR).",
)
# One run for datasets and models: the models depend on the datasets, so they train on the splits
# built minutes before in the same run (two schedules would race when the split takes long).
retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.groups("datasets", "models"),
    description="Nightly: train/dev/test splits over the trailing window, then every model → challenger → promotion.",
)

JOBS = [daily_ingest_job, datasets_job, train_job, predict_job, nightly_job, retrain_job]
