"""Freshness of the daily exports, visible on each raw/<table> asset as its `export_freshness` check.

Why not Dagster's own: `build_time_partition_freshness_checks` (superseded since 1.12) gives one
check of one severity per asset, and two with different severities collide on the check name; the
new `FreshnessPolicy` is judged per asset, not per partition, and only when the instance enables
`freshness:` in dagster.yaml. One check with two deadlines (alerts/freshness.py) fits daily exports:
- when raw/<table> materialises day D, the step records the check as passed, with how late D came;
- `export_freshness_sensor` watches the newest day whose WARN deadline has passed and, while that
  day has not arrived, records the check as failed (WARN, then ERROR) and posts the alert webhook
  (once per day, table and severity). Evaluations carry the day as their partition.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from dagster_autotag.alerts.freshness import ERROR, FreshnessRule, judge, watched_day
from dagster_autotag.alerts.webhook import Alert, send_alert
from dagster_autotag.partitions import TIMEZONE, daily_partitions

FRESHNESS_CHECK = "export_freshness"


def freshness_rule() -> FreshnessRule:
    return FreshnessRule.from_env(TIMEZONE)


def freshness_spec() -> tuple[str, bool, str]:
    rule = freshness_rule()
    return (
        FRESHNESS_CHECK,
        False,
        f"WARN when a day's export has not arrived {rule.warn_after_hours:g} h after the day ends "
        f"(Asia/Shanghai), ERROR after {rule.error_after_hours:g} h (export_freshness_sensor; "
        "AUTOTAG_FRESHNESS_WARN_HOURS / _ERROR_HOURS)",
    )


def arrived_check(asset_key: dg.AssetKey, dt: str, arrived_at: datetime | None = None) -> dg.AssetCheckResult:
    """The check as the materialisation of day `dt` records it: the day is here; how late it came."""
    verdict = judge(dt, arrived_at or datetime.now(UTC), datetime.now(UTC), freshness_rule())
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=FRESHNESS_CHECK,
        passed=True,
        metadata={"due": verdict.due.isoformat(timespec="minutes"), "late_hours": round(verdict.late_hours, 2)},
        description=verdict.describe(),
    )


def build_freshness_sensor(
    asset_keys: list[dg.AssetKey],
    partitions_def: dg.TimeWindowPartitionsDefinition = daily_partitions,
    minimum_interval_seconds: int = 300,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="export_freshness_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        description="Fails raw/<table>'s export_freshness check (WARN, then ERROR) while the newest due day "
        "has not arrived, and posts the alert webhook. Stopped by default: turn it on where exports arrive daily.",
    )
    def export_freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = datetime.now(UTC)
        rule = freshness_rule()
        dt = watched_day(now, rule)
        with dg.partition_loading_context(effective_dt=now):
            if not partitions_def.has_partition_key(dt):
                return dg.SensorResult(skip_reason=f"{dt} is not a partition (before AUTOTAG_START_DATE)")
        reported: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        events, late = [], []
        for key in asset_keys:
            verdict = judge(dt, _arrived_at(context.instance, key, dt), now, rule)
            marker, name = f"{dt}:{verdict.severity or 'OK'}", key.to_user_string()
            if reported.get(name) == marker:
                continue
            reported[name] = marker
            if verdict.passed:
                continue
            late.append((name, verdict))
            events.append(
                dg.AssetCheckEvaluation(
                    asset_key=key,
                    check_name=FRESHNESS_CHECK,
                    passed=False,
                    partition=dt,  # partition-aware: a backfill of another day does not mask this one
                    severity=dg.AssetCheckSeverity.ERROR if verdict.severity == ERROR else dg.AssetCheckSeverity.WARN,
                    metadata={
                        "day": dt,
                        "due": verdict.due.isoformat(timespec="minutes"),
                        "late_hours": round(verdict.late_hours, 2),
                    },
                    description=verdict.describe(),
                )
            )
        cursor = json.dumps(reported, sort_keys=True)
        if not late:
            return dg.SensorResult(skip_reason=f"exports of {dt}: nothing new to report", cursor=cursor)
        severity = ERROR if any(v.severity == ERROR for _, v in late) else late[0][1].severity
        outcome = send_alert(
            Alert(
                what=f"exports of {dt} late ({severity}): {', '.join(n for n, _ in late)}",
                partition=dt,
                severity=severity,
                details={name: verdict.describe() for name, verdict in late},
            )
        )
        context.log.info(f"{len(late)} late export(s) of {dt}; alert webhook: {outcome}")
        return dg.SensorResult(asset_events=events, cursor=cursor)

    return export_freshness_sensor


def _arrived_at(instance: dg.DagsterInstance, key: dg.AssetKey, dt: str) -> datetime | None:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[dt]), limit=1)
    return datetime.fromtimestamp(records.records[0].timestamp, UTC) if records.records else None
