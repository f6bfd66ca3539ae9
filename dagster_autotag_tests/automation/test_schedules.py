"""The nightly schedule picks yesterday's Asia/Shanghai partition; the retrain cron is configurable;
the location's schedules and sensor are the ones the README names."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from dagster_autotag.automation import build_daily_schedule, build_retrain_schedule
from dagster_autotag.jobs import INGEST_TO_PUBLISH_JOB, RETRAIN_DATASETS_AND_MODELS_JOB
from dagster_autotag.partitions import daily_partitions

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _tick(schedule: dg.ScheduleDefinition, when: datetime, instance: dg.DagsterInstance):
    """One evaluation, by invoking the schedule (Dagster's documented way to unit-test one): a
    RunRequest or a SkipReason."""
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
        return schedule(context)


@pytest.mark.parametrize(
    ("tick", "expected"),
    [
        (datetime(2024, 5, 2, 2, 0, tzinfo=SHANGHAI), "2024-05-01"),
        # 18:00 UTC on May 1 is 02:00 on May 2 in Shanghai: still yesterday = May 1, not April 30
        (datetime(2024, 5, 1, 18, 0, tzinfo=ZoneInfo("UTC")), "2024-05-01"),
        (datetime(2024, 3, 1, 2, 0, tzinfo=SHANGHAI), "2024-02-29"),
    ],
)
def test_nightly_schedule_selects_yesterday(tick: datetime, expected: str) -> None:
    with dg.instance_for_test() as instance:
        request = _tick(build_daily_schedule(INGEST_TO_PUBLISH_JOB), tick, instance)
    assert isinstance(request, dg.RunRequest), request
    assert (request.partition_key, request.run_key) == (expected, expected)
    assert request.tags["autotag/trigger"] == "schedule"


def test_nightly_schedule_skips_before_first_partition() -> None:
    first = daily_partitions.start.date()
    tick = datetime(first.year, first.month, first.day, 2, 0, tzinfo=SHANGHAI)
    with dg.instance_for_test() as instance:
        result = _tick(build_daily_schedule(INGEST_TO_PUBLISH_JOB), tick, instance)
    assert isinstance(result, dg.SkipReason) and "no complete partition" in result.skip_message


def test_nightly_schedule_skips_a_day_the_sensor_already_ran() -> None:
    schedule = build_daily_schedule(INGEST_TO_PUBLISH_JOB)
    with dg.instance_for_test() as instance:
        instance.add_run(
            dg.DagsterRun(
                job_name=INGEST_TO_PUBLISH_JOB,
                status=dg.DagsterRunStatus.SUCCESS,
                tags={"dagster/partition": "2024-05-01"},
            )
        )
        skipped = _tick(schedule, datetime(2024, 5, 2, 2, 0, tzinfo=SHANGHAI), instance)
        other_day = _tick(schedule, datetime(2024, 5, 3, 2, 0, tzinfo=SHANGHAI), instance)
    assert isinstance(skipped, dg.SkipReason) and "2024-05-01" in skipped.skip_message
    assert isinstance(other_day, dg.RunRequest) and other_day.partition_key == "2024-05-02"


def test_retrain_cron_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTAG_RETRAIN_CRON", raising=False)
    assert build_retrain_schedule(RETRAIN_DATASETS_AND_MODELS_JOB).cron_schedule == "0 4 * * *"
    monkeypatch.setenv("AUTOTAG_RETRAIN_CRON", "30 5 * * 1")
    assert build_retrain_schedule(RETRAIN_DATASETS_AND_MODELS_JOB).cron_schedule == "30 5 * * 1"
    monkeypatch.setenv("AUTOTAG_RETRAIN_CRON", "  ")  # blank: the default, not an invalid cron
    assert build_retrain_schedule(RETRAIN_DATASETS_AND_MODELS_JOB).cron_schedule == "0 4 * * *"


def test_the_location_schedules_and_senses_what_the_readme_says(location: dg.Definitions) -> None:
    """Names derived from the jobs, times in Asia/Shanghai, everything stopped until turned on, and
    the retrain job running datasets then models in one run."""
    repo = location.get_repository_def()
    nightly = repo.get_schedule_def("ingest_to_publish_nightly")
    retrain = repo.get_schedule_def("retrain_datasets_and_models_schedule")
    sensor = repo.get_sensor_def("ingest_to_publish_landing_sensor")
    retention = repo.get_schedule_def("apply_retention_schedule")
    freshness = repo.get_sensor_def("export_freshness_sensor")
    failures = repo.get_sensor_def("alert_on_run_failure")
    review = repo.get_sensor_def("pull_review_corrections_sensor")  # README: Review loop
    assert {s.name for s in repo.schedule_defs} == {nightly.name, retrain.name, retention.name}
    assert {s.name for s in repo.sensor_defs} == {sensor.name, freshness.name, failures.name, review.name}
    assert (retention.job_name, retention.cron_schedule, retention.execution_timezone) == (
        "apply_retention", "30 5 * * *", "Asia/Shanghai",
    )  # fmt: skip
    assert retention.default_status == dg.DefaultScheduleStatus.STOPPED
    assert freshness.default_status == dg.DefaultSensorStatus.STOPPED  # on where exports arrive daily
    assert failures.default_status == dg.DefaultSensorStatus.RUNNING  # silent until the webhook is set
    assert (review.job_name, review.minimum_interval_seconds) == ("pull_review_corrections", 300)
    assert review.default_status == dg.DefaultSensorStatus.STOPPED
    assert (nightly.job_name, nightly.cron_schedule, nightly.execution_timezone) == (
        "ingest_to_publish", "0 2 * * *", "Asia/Shanghai",
    )  # fmt: skip
    assert (retrain.job_name, retrain.cron_schedule, retrain.execution_timezone) == (
        "retrain_datasets_and_models", "0 4 * * *", "Asia/Shanghai",
    )  # fmt: skip
    assert (sensor.job_name, sensor.minimum_interval_seconds) == ("ingest_to_publish", 60)
    assert {nightly.default_status, retrain.default_status} == {dg.DefaultScheduleStatus.STOPPED}
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    # the schedule and the sensor pick days of the partitions the job runs on
    assert repo.get_job(INGEST_TO_PUBLISH_JOB).partitions_def == daily_partitions
    graph = repo.asset_graph
    retrain_keys = repo.get_job(RETRAIN_DATASETS_AND_MODELS_JOB).asset_layer.executable_asset_keys
    assert {graph.get(k).group_name for k in retrain_keys} == {"datasets", "models"}


def test_analytics_asset_wires_into_the_graph(location: dg.Definitions) -> None:
    node = location.resolve_asset_graph().get(dg.AssetKey(["analytics", "duckdb_views"]))
    assert node.group_name == "analytics"
    assert {dg.AssetKey(["corpus", "items"]), dg.AssetKey(["corpus", "label_distribution"])} <= set(node.parent_keys)
