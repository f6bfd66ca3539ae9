"""Nightly schedules: yesterday's daily partition at 02:00, and the retrain over the trailing window.

Times are Asia/Shanghai, like the partitions. Schedules start STOPPED (Dagster's default): turn them
on in the UI or with `dagster schedule start`, so a `dagster dev` on a laptop does not start ingesting.
"""

import os
from datetime import datetime

import dagster as dg

from dagster_autotag.automation.jobs import AnyJob
from dagster_autotag.partitions import TIMEZONE, daily_partitions

DAILY_CRON = "0 2 * * *"
RETRAIN_CRON_ENV = "AUTOTAG_RETRAIN_CRON"
DEFAULT_RETRAIN_CRON = "0 4 * * *"
RETRAIN_JOB = "nightly_retrain"
# Statuses of a run that already covers the partition (the landing sensor may have launched it).
_LIVE_OR_DONE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUCCESS,
]

# One run for datasets and models: the models depend on the datasets, so they train on the splits
# built minutes before in the same run (two schedules would race when the split takes long).
retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.groups("datasets", "models"),
    description="Nightly: train/dev/test splits over the trailing window, then every model → challenger → promotion.",
)


def last_complete_partition(tick: datetime, partitions_def: dg.TimeWindowPartitionsDefinition) -> str | None:
    """The newest partition whose day has ended at `tick` (yesterday for a 02:00 tick)."""
    with dg.partition_loading_context(effective_dt=tick):
        return partitions_def.get_last_partition_key()


def build_daily_schedule(
    daily_job: AnyJob,
    partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions,
    cron: str = DAILY_CRON,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{daily_job.name}_nightly",
        job=daily_job,
        cron_schedule=cron,
        execution_timezone=TIMEZONE,
        description="Yesterday's partition (Asia/Shanghai) through the daily job; skipped when a run already covers it.",
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        dt = last_complete_partition(context.scheduled_execution_time, partitions_def)
        if dt is None:
            return dg.SkipReason(f"no complete partition before {context.scheduled_execution_time}")
        existing = context.instance.get_run_records(
            dg.RunsFilter(job_name=daily_job.name, tags={"dagster/partition": dt}, statuses=_LIVE_OR_DONE),
            limit=1,
        )
        if existing:
            return dg.SkipReason(f"partition {dt} already has run {existing[0].dagster_run.run_id}")
        return dg.RunRequest(run_key=dt, partition_key=dt, tags={"autotag/trigger": "schedule"})

    return nightly


def retrain_cron() -> str:
    return os.environ.get(RETRAIN_CRON_ENV, "").strip() or DEFAULT_RETRAIN_CRON


def build_retrain_schedule(job: AnyJob = retrain_job, cron: str | None = None) -> dg.ScheduleDefinition:
    """cron: default $AUTOTAG_RETRAIN_CRON, else 04:00 — after the 02:00 daily run has written
    yesterday's corpus partition, which the trailing window then ends at."""
    return dg.ScheduleDefinition(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=cron or retrain_cron(),
        execution_timezone=TIMEZONE,
        tags={"autotag/trigger": "schedule"},
        description="Retrain every scheme over the trailing window; promotion decides the champion.",
    )


def build_schedules(
    daily_job: AnyJob,
    retrain: AnyJob = retrain_job,
) -> list[dg.ScheduleDefinition]:
    return [build_daily_schedule(daily_job), build_retrain_schedule(retrain)]
