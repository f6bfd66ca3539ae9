"""Nightly schedules: yesterday's daily partition at 02:00, and the retrain over the trailing window.

Times are Asia/Shanghai, like the partitions. Schedules start STOPPED (Dagster's default): turn them
on in the UI or with `dagster schedule start`, so a `dagster dev` on a laptop does not start ingesting.
"""

import os
from datetime import datetime

import dagster as dg

from dagster_autotag.partitions import TIMEZONE, daily_partitions

DAILY_CRON = "0 2 * * *"
RETRAIN_CRON_ENV = "AUTOTAG_RETRAIN_CRON"
DEFAULT_RETRAIN_CRON = "0 4 * * *"
# Statuses of a run that already covers the partition (the landing sensor may have launched it).
_LIVE_OR_DONE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUCCESS,
]


def last_complete_partition(tick: datetime, partitions_def: dg.TimeWindowPartitionsDefinition) -> str | None:
    """The newest partition whose day has ended at `tick` (yesterday for a 02:00 tick)."""
    with dg.partition_loading_context(effective_dt=tick):
        return partitions_def.get_last_partition_key()


def build_daily_schedule(
    job_name: str,
    partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions,
    cron: str = DAILY_CRON,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{job_name}_nightly",
        job_name=job_name,
        cron_schedule=cron,
        execution_timezone=TIMEZONE,
        description=f"Yesterday's partition (Asia/Shanghai) through {job_name}; skipped when a run already covers it.",
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        dt = last_complete_partition(context.scheduled_execution_time, partitions_def)
        if dt is None:
            return dg.SkipReason(f"no complete partition before {context.scheduled_execution_time}")
        existing = context.instance.get_run_records(
            dg.RunsFilter(job_name=job_name, tags={"dagster/partition": dt}, statuses=_LIVE_OR_DONE),
            limit=1,
        )
        if existing:
            return dg.SkipReason(f"partition {dt} already has run {existing[0].dagster_run.run_id}")
        return dg.RunRequest(run_key=dt, partition_key=dt, tags={"autotag/trigger": "schedule"})

    return nightly


def retrain_cron() -> str:
    return os.environ.get(RETRAIN_CRON_ENV, "").strip() or DEFAULT_RETRAIN_CRON


def build_retrain_schedule(job_name: str, cron: str | None = None) -> dg.ScheduleDefinition:
    """cron: default $AUTOTAG_RETRAIN_CRON, else 04:00 — after the 02:00 daily run has written
    yesterday's corpus partition, which the trailing window then ends at."""
    return dg.ScheduleDefinition(
        name=f"{job_name}_schedule",
        job_name=job_name,
        cron_schedule=cron or retrain_cron(),
        execution_timezone=TIMEZONE,
        tags={"autotag/trigger": "schedule"},
        description="Retrain every scheme over the trailing window; promotion decides the champion.",
    )


def build_schedules(daily_job_name: str, retrain_job_name: str) -> list[dg.ScheduleDefinition]:
    """The location's schedules, given the names of the jobs they run (jobs.py); each is named after its job."""
    return [build_daily_schedule(daily_job_name), build_retrain_schedule(retrain_job_name)]
