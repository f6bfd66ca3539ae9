"""Five sample days through the ingest_to_corpus job, one partition per run, into one home; a day run twice
leaves the same rows (partitions are replaced, never appended to)."""

import os
import time
from pathlib import Path

import dagster as dg
import duckdb

from dagster_autotag.definitions import build_definitions
from dagster_autotag.demo import INSTANCE_CONCURRENCY
from dagster_autotag.jobs import INGEST_TO_CORPUS_JOB
from dagster_autotag.lake import table_glob
from dagster_autotag.resources import LakeResource, LandingExportSource
from dagster_autotag.sample.generator import generate_landing
from dagster_autotag_tests.webserver import dagster_dev, graphql

DAYS, START, ITEMS = 5, "2024-06-01", 200


def _items_per_day(lake: Path) -> dict[str, tuple[int, int]]:
    """dt -> (rows, distinct itemids) of corpus/items."""
    sql = f"""
        SELECT dt::VARCHAR, count(*), count(DISTINCT itemid)
        FROM read_parquet('{table_glob(lake, "corpus", "items")}', hive_partitioning = true)
        GROUP BY ALL ORDER BY 1
    """
    return {dt: (rows, ids) for dt, rows, ids in duckdb.sql(sql).fetchall()}


def test_backfill_five_days_and_rerun_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    days = generate_landing(home / "landing", DAYS, START, ITEMS, 0)
    defs = build_definitions(
        export_source=LandingExportSource(landing_dir=str(home / "landing")), lake=LakeResource(home=str(home))
    )
    job = defs.resolve_job_def(INGEST_TO_CORPUS_JOB)
    with dg.instance_for_test() as instance:
        for dt in days:
            assert job.execute_in_process(partition_key=dt, instance=instance).success
        lake = home / "lake"
        before = _items_per_day(lake)
        assert sorted(before) == days
        assert all(rows == ids and rows > 0 for rows, ids in before.values()), before

        rerun = days[2]
        part = lake / "corpus" / "items" / f"dt={rerun}" / "part-0.parquet"
        first_bytes = part.read_bytes()
        assert job.execute_in_process(partition_key=rerun, instance=instance).success
        assert _items_per_day(lake) == before
        assert part.read_bytes() == first_bytes  # same input, same bytes
        assert not any((lake / "_staging").iterdir())  # no half-written leftovers


BACKFILL_DAYS, BACKFILL_START, BACKFILL_ITEMS = 30, "2024-07-01", 40
LAUNCH_BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status numPartitions } ... on PythonError { message } } }"""
BACKFILL_TIMEOUT_S = 900


def test_thirty_day_asset_backfill_through_the_daemon(tmp_path: Path) -> None:
    """What a data engineer does in the UI: an asset backfill of a month over the daily assets,
    run by `dagster dev`'s daemon through the run queue (at most two runs at once, one partition
    per run). Steps run in-process (the backfill's run config), so the month takes minutes, not an
    interpreter start per step."""
    home = tmp_path / "home"
    days = generate_landing(home / "landing", BACKFILL_DAYS, BACKFILL_START, BACKFILL_ITEMS, 3)
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    # the instance `make demo` sets up, with the queue polled every second instead of every 5
    config = "telemetry:\n  enabled: false\nrun_queue:\n  dequeue_interval_seconds: 1\n" + INSTANCE_CONCURRENCY
    (dagster_home / "dagster.yaml").write_text(config)
    # 40-item days carry the sample's deliberate dirt in a larger share than the 1% default allows
    env = {
        **os.environ,
        "AUTOTAG_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "AUTOTAG_QUARANTINE_LIMIT": "0.2",
    }
    daily = build_definitions().resolve_job_def(INGEST_TO_CORPUS_JOB).asset_layer.executable_asset_keys
    params = {
        "assetSelection": [{"path": key.path} for key in daily],
        "partitionNames": days,
        "runConfigData": {"execution": {"config": {"in_process": {}}}},
        "title": "30-day test backfill",
    }
    with dagster_dev(env) as url:
        launched = graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        while True:
            status = graphql(url, BACKFILL_STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]
            if status.get("status") not in ("REQUESTED", "CANCELING", "FAILING"):  # no longer in progress
                break
            assert time.monotonic() < deadline, f"backfill still {status} after {BACKFILL_TIMEOUT_S}s"
            time.sleep(3)
    assert status == {"status": "COMPLETED_SUCCESS", "numPartitions": BACKFILL_DAYS}, status

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": launched["backfillId"]}))
    runs = [r.dagster_run for r in records]
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
    # One partition per run (Dagster's default, jobs.py), each day once: a run over several partitions
    # would carry dagster/asset_partition_range_start/_end instead of dagster/partition.
    assert sorted(r.tags.get("dagster/partition", "<range>") for r in runs) == days, [r.tags for r in runs]
    assert max_overlap([(r.start_time, r.end_time) for r in records]) <= 2  # the queue's limit held
    per_day = _items_per_day(home / "lake")
    assert sorted(per_day) == days
    assert all(rows == ids and rows > 0 for rows, ids in per_day.values()), per_day  # no duplicate rows
    assert not any((home / "lake" / "_staging").iterdir())


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment (an end before a start at the same instant)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak
