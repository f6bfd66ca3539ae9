"""A sensor on the landing directory: one run per day whose four exports are complete.

Hive/Hadoop writers leave an empty `_SUCCESS` in a folder once its files are written; a day is
complete when every export table has `landing/<table>/dt=<day>/_SUCCESS`. The cursor maps each
requested day to the newest marker time it saw, so a re-export (new `_SUCCESS`) runs the day again
while an unchanged day is never requested twice; the run key carries the same pair, which makes
Dagster drop a repeat even if the cursor is reset.
"""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from dagster_autotag.ingest.tables import EXPORT_TABLES
from dagster_autotag.partitions import daily_partitions
from dagster_autotag.settings import landing_dir as default_landing_dir

SUCCESS_MARKER = "_SUCCESS"
_DT_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
MAX_REQUESTS_PER_TICK = 31  # a month of landed days per tick; the rest on the next ticks


def complete_days(landing: Path, tables: tuple[str, ...] = tuple(EXPORT_TABLES)) -> dict[str, int]:
    """dt -> newest `_SUCCESS` mtime (ns) over the tables, for days where every table has one."""
    markers: dict[str, list[int]] = {}
    for table in tables:
        folder = landing / table
        if not folder.is_dir():
            return {}
        for day in folder.iterdir():
            match = _DT_DIR.match(day.name)  # hidden `.dt=…tmp` folders of a writer don't match
            marker = day / SUCCESS_MARKER
            if match and marker.is_file():
                markers.setdefault(match.group(1), []).append(marker.stat().st_mtime_ns)
    return {dt: max(times) for dt, times in markers.items() if len(times) == len(tables)}


def build_landing_sensor(
    job_name: str,
    landing: Path | None = None,
    partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions,
    minimum_interval_seconds: int = 60,
) -> dg.SensorDefinition:
    """landing: default $AUTOTAG_HOME/landing, resolved at each tick. The sensor is named after its job."""

    @dg.sensor(
        name=f"{job_name}_landing_sensor",
        job_name=job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        description=f"Requests {job_name} for a day once all four landing exports have _SUCCESS.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        root = landing or default_landing_dir()
        done: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        now = datetime.now(UTC)
        fresh, out_of_range = [], []
        for dt, stamp in sorted(complete_days(root).items()):
            if done.get(dt) == stamp:
                continue
            with dg.partition_loading_context(effective_dt=now):
                valid = partitions_def.has_partition_key(dt)
            # A day before AUTOTAG_START_DATE, or one not over yet: not a partition (now); left
            # out of the cursor, so a day that ends later is picked up then.
            (fresh if valid else out_of_range).append((dt, stamp))
        fresh = fresh[:MAX_REQUESTS_PER_TICK]
        requests = [
            dg.RunRequest(run_key=f"{dt}@{stamp}", partition_key=dt, tags={"autotag/trigger": "landing_sensor"})
            for dt, stamp in fresh
        ]
        done.update(fresh)
        if out_of_range:
            context.log.info(f"landing days outside the partitions, skipped: {[dt for dt, _ in out_of_range]}")
        if not requests:
            return dg.SensorResult(
                skip_reason=f"no new complete landing day in {root}", cursor=json.dumps(done, sort_keys=True)
            )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(done, sort_keys=True))

    return landing_sensor
