"""The nightly schedule picks yesterday's Asia/Shanghai partition; the retrain cron is configurable."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.definitions.schedule_definition import ScheduleExecutionData

from dagster_autotag.automation import build_daily_schedule, build_retrain_schedule
from dagster_autotag.jobs import INGEST_TO_PUBLISH_JOB, RETRAIN_DATASETS_AND_MODELS_JOB, TRAIN_MODELS_JOB
from dagster_autotag.partitions import daily_partitions
from dagster_autotag_tests.automation.repo import repository

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _tick(schedule: dg.ScheduleDefinition, when: datetime, instance: dg.DagsterInstance) -> ScheduleExecutionData:
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=repository()
    ) as context:
        return schedule.evaluate_tick(context)


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
    schedule = build_daily_schedule(INGEST_TO_PUBLISH_JOB)
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Asia/Shanghai"
    with dg.instance_for_test() as instance:
        data = _tick(schedule, tick, instance)
    assert [r.partition_key for r in data.run_requests] == [expected]
    assert data.run_requests[0].run_key == expected


def test_nightly_schedule_skips_before_first_partition() -> None:
    first = daily_partitions.start.date()
    tick = datetime(first.year, first.month, first.day, 2, 0, tzinfo=SHANGHAI)
    with dg.instance_for_test() as instance:
        data = _tick(build_daily_schedule(INGEST_TO_PUBLISH_JOB), tick, instance)
    assert not data.run_requests and data.skip_message


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
    assert not skipped.run_requests and "2024-05-01" in skipped.skip_message
    assert [r.partition_key for r in other_day.run_requests] == ["2024-05-02"]


def test_retrain_cron_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_retrain_schedule(RETRAIN_DATASETS_AND_MODELS_JOB).cron_schedule == "0 4 * * *"
    monkeypatch.setenv("AUTOTAG_RETRAIN_CRON", "30 5 * * 1")
    schedule = build_retrain_schedule(RETRAIN_DATASETS_AND_MODELS_JOB)
    assert schedule.cron_schedule == "30 5 * * 1"
    assert schedule.execution_timezone == "Asia/Shanghai"
    assert schedule.job_name == RETRAIN_DATASETS_AND_MODELS_JOB


def test_schedules_load_in_definitions() -> None:
    """The retrain job selects datasets then models in one run; everything resolves with the assets."""
    repo = repository()
    job = repo.get_job(RETRAIN_DATASETS_AND_MODELS_JOB)
    graph = repo.asset_graph
    assert {graph.get(k).group_name for k in job.asset_layer.executable_asset_keys} == {"datasets", "models"}
    assert {s.name for s in repo.schedule_defs} == {"ingest_to_publish_nightly", "retrain_datasets_and_models_schedule"}
    # the train job alone still works with a schedule too
    assert build_retrain_schedule(TRAIN_MODELS_JOB).job_name == "train_models"


def test_analytics_asset_wires_into_the_graph() -> None:
    graph = repository().asset_graph
    node = graph.get(dg.AssetKey(["analytics", "duckdb_views"]))
    assert node.group_name == "analytics"
    assert {dg.AssetKey(["corpus", "items"]), dg.AssetKey(["corpus", "label_distribution"])} <= set(node.parent_keys)
