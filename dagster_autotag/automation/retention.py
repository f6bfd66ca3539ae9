"""The retention job and its schedule (what expires, and what never does: retention/)."""

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from dagster_autotag.jobs import APPLY_RETENTION_JOB
from dagster_autotag.partitions import TIMEZONE
from dagster_autotag.resources import LakeResource, MlflowResource
from dagster_autotag.retention.options import RetentionOptions
from dagster_autotag.retention.run import run_retention
from dagster_autotag.run_config import config_from_dataclass

RETENTION_CRON_ENV = "AUTOTAG_RETENTION_CRON"
DEFAULT_RETENTION_CRON = "30 5 * * *"  # after the 02:00 day and the 04:00 retrain


class RetentionRunConfig(config_from_dataclass(RetentionOptions)):
    pass


@dg.op(
    description="Deletes expired staging leftovers, old bulky partitions, unused token caches and the "
    "MLflow artifacts of archived model versions; never what a published day or a champion needs.",
)
def delete_expired(
    context: dg.OpExecutionContext, config: RetentionRunConfig, lake: LakeResource, mlflow: MlflowResource
):
    options = config.to_dataclass()
    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    report = run_retention(lake.lake(), mlflow.configured_uri(), options, today, datetime.now(UTC))
    context.log.info(
        f"retention{' (dry run)' if options.dry_run else ''}: {report.deleted}, "
        f"{report.freed_bytes / 2**20:.1f} MiB; kept though expired: {len(report.kept)}"
    )
    for line in report.paths[:200]:
        context.log.debug(line)
    return dg.Output(
        None,
        metadata={
            "deleted": dg.MetadataValue.json(report.deleted),
            "freed_mib": round(report.freed_bytes / 2**20, 1),
            "archived_versions": dg.MetadataValue.json(report.archived_versions),
            "kept": dg.MetadataValue.json(report.kept[:200]),
            "dry_run": options.dry_run,
        },
    )


@dg.job(
    name=APPLY_RETENTION_JOB,
    executor_def=dg.in_process_executor,
    description="Retention: staging leftovers, old raw/clean/quarantine partitions, token caches, "
    "artifacts of archived model versions.",
)
def apply_retention_job():
    delete_expired()


def build_retention_schedule(cron: str | None = None) -> dg.ScheduleDefinition:
    """cron: default $AUTOTAG_RETENTION_CRON, else 05:30 Asia/Shanghai. Stopped by default, like the others."""
    return dg.ScheduleDefinition(
        name=f"{APPLY_RETENTION_JOB}_schedule",
        job=apply_retention_job,
        cron_schedule=cron or os.environ.get(RETENTION_CRON_ENV, "").strip() or DEFAULT_RETENTION_CRON,
        execution_timezone=TIMEZONE,
        tags={"autotag/trigger": "schedule"},
        description="Daily retention pass (run config: RetentionOptions).",
    )
