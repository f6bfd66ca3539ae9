"""One retention pass: plan, then (unless dry_run) delete; what was deleted, kept and why."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from dagster_autotag.retention.lake_files import apply_lake, plan_lake
from dagster_autotag.retention.mlflow_artifacts import archived_versions, delete_version_artifacts
from dagster_autotag.retention.options import RetentionOptions

log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=dict)  # kind -> count (or would be, in a dry run)
    freed_bytes: int = 0
    paths: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # expired by age, kept because needed
    archived_versions: list[str] = field(default_factory=list)


def run_retention(
    lake: Path,
    tracking_uri: str | None,
    options: RetentionOptions,
    today: date,
    now: datetime | None = None,
) -> RetentionReport:
    """tracking_uri: None, or a sqlite store that does not exist yet, skips MLflow (creating an empty
    store is not retention's business)."""
    now = now or datetime.now(UTC)
    report = RetentionReport(dry_run=options.dry_run)
    plan = plan_lake(lake, options, today, now.timestamp())
    for item in plan.deletions:
        report.deleted[item.kind] = report.deleted.get(item.kind, 0) + 1
        report.paths.append(f"{item.kind}: {item.path} ({item.reason})")
    report.kept = [f"{path} ({why})" for path, why in plan.kept]
    report.freed_bytes = sum(d.bytes for d in plan.deletions)
    if not options.dry_run:
        report.freed_bytes = apply_lake(plan, lake)
    if _store_exists(tracking_uri):
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        for version in archived_versions(client, options, now):
            label = f"{version.name}/{version.version}"
            if not options.dry_run and not delete_version_artifacts(client, version, today.isoformat()):
                continue
            report.archived_versions.append(label)
        report.deleted["mlflow_versions"] = len(report.archived_versions)
    log.info("retention%s: %s", " (dry run)" if options.dry_run else "", report.deleted)
    return report


def _store_exists(tracking_uri: str | None) -> bool:
    if not tracking_uri:
        return False
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).is_file()
    return True
