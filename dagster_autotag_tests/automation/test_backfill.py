"""Five sample days through the daily job, one partition per run, into one home; a day run twice
leaves the same rows (partitions are replaced, never appended to)."""

from pathlib import Path

import dagster as dg
import duckdb

from dagster_autotag.automation import DAILY_BACKFILL_POLICY
from dagster_autotag.definitions import DAILY_JOB, build_definitions
from dagster_autotag.ingest.landing import LandingExportSource
from dagster_autotag.lake import table_glob
from dagster_autotag.resources import LakeResource
from dagster_autotag.sample.generator import generate_landing

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
    assert DAILY_BACKFILL_POLICY.max_partitions_per_run == 1
    home = tmp_path / "home"
    days = generate_landing(home / "landing", DAYS, START, ITEMS, 0)
    defs = build_definitions(
        export_source=LandingExportSource(landing_dir=str(home / "landing")), lake=LakeResource(home=str(home))
    )
    job = defs.resolve_job_def(DAILY_JOB)
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
