"""The landing sensor: a day runs once all four exports have _SUCCESS, once per export."""

import os
from pathlib import Path

import dagster as dg
import pytest

from dagster_autotag.automation import build_landing_sensor, complete_days
from dagster_autotag.ingest.tables import EXPORT_TABLES
from dagster_autotag.jobs import INGEST_TO_PUBLISH_JOB

TABLES = list(EXPORT_TABLES)


def land(landing: Path, dt: str, tables: list[str] = TABLES, marker: bool = True) -> None:
    for table in tables:
        folder = landing / table / f"dt={dt}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "000000_0").write_text("x\n")
        if marker:
            (folder / "_SUCCESS").write_bytes(b"")


def tick(sensor: dg.SensorDefinition, cursor: str | None) -> dg.SensorResult:
    """One evaluation, by invoking the sensor (Dagster's documented way to unit-test one): run
    requests, skip reason and the new cursor."""
    with dg.build_sensor_context(cursor=cursor, instance=dg.DagsterInstance.ephemeral()) as context:
        return sensor(context)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


def test_incomplete_day_is_not_requested(landing: Path) -> None:
    land(landing, "2024-05-01", TABLES[:3])  # 3 of 4 markers
    land(landing, "2024-05-01", TABLES[3:], marker=False)  # files without their marker yet
    sensor = build_landing_sensor(INGEST_TO_PUBLISH_JOB, landing=landing)
    data = tick(sensor, None)
    assert not data.run_requests
    assert str(landing) in data.skip_reason.skip_message


def test_complete_day_requested_once(landing: Path) -> None:
    sensor = build_landing_sensor(INGEST_TO_PUBLISH_JOB, landing=landing)
    land(landing, "2024-05-01")
    land(landing, "2024-05-02", TABLES[:3])
    first = tick(sensor, None)
    assert [r.partition_key for r in first.run_requests] == ["2024-05-01"]
    assert first.run_requests[0].run_key.startswith("2024-05-01@")
    assert first.run_requests[0].tags["autotag/trigger"] == "landing_sensor"

    second = tick(sensor, first.cursor)
    assert not second.run_requests

    land(landing, "2024-05-02", TABLES[3:])  # the last export arrives
    third = tick(sensor, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2024-05-02"]


def test_reexport_runs_the_day_again(landing: Path) -> None:
    sensor = build_landing_sensor(INGEST_TO_PUBLISH_JOB, landing=landing)
    land(landing, "2024-05-01")
    first = tick(sensor, None)
    marker = landing / "asr" / "dt=2024-05-01" / "_SUCCESS"
    stat = marker.stat()
    os.utime(marker, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # rewritten a second later
    again = tick(sensor, first.cursor)
    assert [r.partition_key for r in again.run_requests] == ["2024-05-01"]
    assert again.run_requests[0].run_key != first.run_requests[0].run_key


def test_days_outside_the_partitions_are_skipped(landing: Path) -> None:
    sensor = build_landing_sensor(INGEST_TO_PUBLISH_JOB, landing=landing)
    land(landing, "2023-12-31")  # before AUTOTAG_START_DATE (2024-01-01)
    land(landing, "2999-01-01")  # not over yet
    land(landing, "2024-05-03")
    (landing / "asr" / "dt=garbage").mkdir()
    (landing / "asr" / ".dt=2024-05-04.tmp-abc").mkdir()  # a writer's hidden temp folder
    data = tick(sensor, None)
    assert [r.partition_key for r in data.run_requests] == ["2024-05-03"]
    assert "2999-01-01" not in data.cursor  # picked up once that day is a partition


def test_complete_days_without_landing(tmp_path: Path) -> None:
    assert complete_days(tmp_path / "missing") == {}
    data = tick(build_landing_sensor(INGEST_TO_PUBLISH_JOB, landing=tmp_path / "missing"), None)
    assert not data.run_requests
