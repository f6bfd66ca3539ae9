"""When a day's exports are late: WARN a configurable number of hours after the day ends, ERROR later.

Day D (a daily partition, Asia/Shanghai) ends at midnight; its exports, and so raw/<table> for D,
are due `warn_after_hours` later (default 3: 03:00, an hour after the 02:00 nightly run), and
`error_after_hours` later (default 6) a missing day is an ERROR. At any moment the day watched is the
newest one whose WARN deadline has passed, as Dagster's time-partition freshness checks do.
Configured by AUTOTAG_FRESHNESS_WARN_HOURS / AUTOTAG_FRESHNESS_ERROR_HOURS.
"""

import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WARN_HOURS_ENV = "AUTOTAG_FRESHNESS_WARN_HOURS"
ERROR_HOURS_ENV = "AUTOTAG_FRESHNESS_ERROR_HOURS"
WARN, ERROR = "WARN", "ERROR"


@dataclass(frozen=True)
class FreshnessRule:
    warn_after_hours: float = 3.0
    error_after_hours: float = 6.0
    timezone: str = "Asia/Shanghai"

    def __post_init__(self):
        if not 0 <= self.warn_after_hours <= self.error_after_hours:
            raise ValueError(
                f"freshness hours must satisfy 0 ≤ warn ≤ error, got warn={self.warn_after_hours}, "
                f"error={self.error_after_hours}"
            )

    @classmethod
    def from_env(cls, timezone: str = "Asia/Shanghai") -> "FreshnessRule":
        def hours(name: str, default: float) -> float:
            raw = os.environ.get(name, "").strip()
            try:
                return float(raw) if raw else default
            except ValueError:
                raise ValueError(f"{name} must be a number of hours, got {raw!r}") from None

        return cls(hours(WARN_HOURS_ENV, cls.warn_after_hours), hours(ERROR_HOURS_ENV, cls.error_after_hours), timezone)

    def day_end(self, dt: str) -> datetime:
        return datetime.combine(date.fromisoformat(dt) + timedelta(days=1), time(), ZoneInfo(self.timezone))

    def warn_at(self, dt: str) -> datetime:
        return self.day_end(dt) + timedelta(hours=self.warn_after_hours)

    def error_at(self, dt: str) -> datetime:
        return self.day_end(dt) + timedelta(hours=self.error_after_hours)


@dataclass(frozen=True)
class Freshness:
    dt: str
    severity: str | None  # None: on time, or not due yet; WARN / ERROR: missing past that deadline
    due: datetime  # the WARN deadline
    arrived_at: datetime | None
    late_hours: float  # how far past the WARN deadline it arrived, or is now, while missing

    @property
    def passed(self) -> bool:
        return self.severity is None

    def describe(self) -> str:
        if self.arrived_at is not None:
            late = f", {self.late_hours:.1f} h after the deadline" if self.late_hours > 0 else ""
            return f"{self.dt} arrived at {self.arrived_at.isoformat(timespec='minutes')}{late}"
        if self.severity is None:
            return f"{self.dt} not due until {self.due.isoformat(timespec='minutes')}"
        return f"{self.dt} missing {self.late_hours:.1f} h after its deadline {self.due.isoformat(timespec='minutes')}"


def watched_day(now: datetime, rule: FreshnessRule) -> str:
    """The newest day whose WARN deadline has passed at `now`."""
    local = now.astimezone(ZoneInfo(rule.timezone))
    day = local.date() - timedelta(days=1)
    while rule.warn_at(day.isoformat()) > local:
        day -= timedelta(days=1)
    return day.isoformat()


def judge(dt: str, arrived_at: datetime | None, now: datetime, rule: FreshnessRule) -> Freshness:
    due = rule.warn_at(dt)
    if arrived_at is not None:
        return Freshness(dt, None, due, arrived_at, max(0.0, (arrived_at - due).total_seconds() / 3600))
    late = max(0.0, (now - due).total_seconds() / 3600)
    severity = ERROR if now >= rule.error_at(dt) else WARN if now >= due else None
    return Freshness(dt, severity, due, None, late)
