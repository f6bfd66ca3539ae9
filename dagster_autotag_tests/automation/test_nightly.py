"""The 02:00 run end to end: the partition the schedule picks, through exports → … → DuckDB, on a
copy of the demo home (landing files for 2024-05-01..03, datasets, a p0_newcar champion)."""

import shutil
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from dagster_autotag.analytics.views import DB_FILE
from dagster_autotag.definitions import build_definitions
from dagster_autotag.jobs import INGEST_TO_PUBLISH_JOB
from dagster_autotag.resources import LakeResource, LandingExportSource, MlflowResource
from dagster_autotag_tests.demo_home import tracking_uri
from dagster_autotag_tests.test_definitions import check_outcomes, materializations

DAILY_ASSETS = {
    *(f"raw/{t}" for t in ("news_pool", "asr", "ocr", "tag_dim")),
    *(f"clean/{t}" for t in ("news_items", "video_asr", "video_ocr", "tags")),
    "corpus/items",
    "corpus/label_distribution",
    "predictions/daily_labels",
}
# The demo trains p0_newcar only; a scheme without a champion would (rightly) fail the run.
# Demo days hold 800 items: a rare label's share moves by chance past the default WARN (0.1), which
# fails a check; these tests are about publishing (quality/test_drift.py covers the thresholds).
PREDICT_P0 = {"schemes": ["p0_newcar"], "drift_warn": 0.2, "drift_error": 0.3}


@pytest.fixture
def home(demo_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(demo_home.path, home, ignore=shutil.ignore_patterns("dagster", "published", DB_FILE))
    return home


def nightly_run(home, dt: str, predict_config: dict, instance: dg.DagsterInstance):
    defs = build_definitions(
        export_source=LandingExportSource(landing_dir=str(home / "landing")),
        lake=LakeResource(home=str(home)),
        mlflow=MlflowResource(tracking_uri=tracking_uri(home)),
    )
    run_config = {"ops": {"predictions__daily_labels": {"config": predict_config}}}
    job = defs.resolve_job_def(INGEST_TO_PUBLISH_JOB)
    return job.execute_in_process(partition_key=dt, instance=instance, run_config=run_config, raise_on_error=False)


def test_the_scheduled_partition_runs_from_exports_to_duckdb(home, location):
    schedule = location.resolve_schedule_def(f"{INGEST_TO_PUBLISH_JOB}_nightly")
    tick = datetime(2024, 5, 3, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick) as context:
            request = schedule(context)
        assert request.partition_key == "2024-05-02"

        # label_drift ERROR (thresholds no partition passes): written, but neither published nor in DuckDB
        blocked = nightly_run(home, request.partition_key, {**PREDICT_P0, "drift_warn": 0, "drift_error": 0}, instance)
        assert check_outcomes(blocked)["predictions/daily_labels:label_drift"] is False
        assert set(materializations(blocked)) == DAILY_ASSETS
        assert not (home / "lake/published/daily_labels").exists() and not (home / DB_FILE).exists()

        result = nightly_run(home, request.partition_key, PREDICT_P0, instance)
        assert result.success
        assert set(materializations(result)) == DAILY_ASSETS | {"predictions/published", "analytics/duckdb_views"}
        assert all(check_outcomes(result).values()), check_outcomes(result)

    with duckdb.connect(str(home / DB_FILE), read_only=True) as con:
        days = con.execute("SELECT dt::VARCHAR, count(*) FROM predictions GROUP BY ALL").fetchall()
        items = con.execute("SELECT count(*) FROM corpus_items WHERE dt = '2024-05-02'").fetchone()[0]
    assert days == [("2024-05-02", items)] and items > 0  # only the published day, every item of it
